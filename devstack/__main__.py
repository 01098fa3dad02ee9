"""``python -m devstack`` (``make run``): the whole eksops stack on one machine.

Reads ``.env`` like every eksops process. What the environment does not name is
embedded: no ``REDIS_URL`` → a Valkey server with its data under ``.run/valkey``; no
``EKS_CLUSTER_NAME`` and no ``KUBECONFIG`` → kubesim. Then the worker, Flower (basic
auth, loopback only) and the HTTP gateway start. The variables a CLI needs to reach
the same queue are written to ``.run/stack.env``. Ctrl-C stops everything in reverse
order; if any service dies, the rest are stopped and the exit code is non-zero.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from dotenv import dotenv_values

from devstack import services
from devstack.services import Service, StackError
from worker.logs import configure_logging, safe_url

logger = logging.getLogger("devstack.main")

ROOT = Path(__file__).resolve().parents[1]


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=ROOT / ".run",
        help="logs, data and stack.env (default: .run)",
    )
    parser.add_argument(
        "--flower-port", type=int, default=int(os.environ.get("FLOWER_PORT", "5555"))
    )
    parser.add_argument(
        "--gateway-port", type=int, default=int(os.environ.get("GATEWAY_PORT", "8000"))
    )
    parser.add_argument(
        "--concurrency", type=int, default=int(os.environ.get("WORKER_CONCURRENCY", "8"))
    )
    parser.add_argument("--no-gateway", action="store_true", help="do not start the HTTP gateway")
    return parser.parse_args()


def _environment() -> dict[str, str]:
    env = {key: value for key, value in dotenv_values(ROOT / ".env").items() if value is not None}
    env.update(os.environ)  # the real environment wins over .env, as in pydantic-settings
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Stack:
    """The started services, in start order."""

    def __init__(self) -> None:
        self.services: list[Service] = []

    def add(self, service: Service) -> Service:
        self.services.append(service.start(ROOT))
        return service

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def dead(self) -> Service | None:
        return next((service for service in self.services if service.exited is not None), None)


def _start(args: argparse.Namespace, stack: Stack) -> list[str]:
    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    env = _environment()
    lines: list[str] = []

    if not env.get("REDIS_URL") and not env.get("CELERY_BROKER_URL"):
        valkey, url = services.valkey(run_dir, env)
        stack.add(valkey)
        services.wait_for(
            services.port_open(int(url.rsplit(":", 1)[1].split("/")[0])),
            what="valkey",
            timeout=15,
            process=valkey.process,
        )
        env["REDIS_URL"] = url
        lines.append(f"  Redis:    {url}  (embedded Valkey, data in {run_dir / 'valkey'})")
    else:
        lines.append(
            f"  Redis:    {safe_url(env.get('REDIS_URL') or env.get('CELERY_BROKER_URL'))}"
        )

    if not env.get("EKS_CLUSTER_NAME") and not env.get("KUBECONFIG"):
        sim, env_file = services.kubesim(run_dir, env, cluster="eksops-local")
        stack.add(sim)
        services.wait_for(env_file.exists, what="kubesim", timeout=30, process=sim.process)
        env.update(services.read_env_file(env_file))
        lines.append(
            f"  Cluster:  kubesim 'eksops-local' at {env['AWS_ENDPOINT_URL_EKS']}  (simulated EKS)"
        )
    else:
        lines.append(f"  Cluster:  {env.get('EKS_CLUSTER_NAME') or env.get('KUBECONFIG')}")

    stack.add(services.worker(env, concurrency=args.concurrency))

    basic_auth = env.get("FLOWER_BASIC_AUTH") or f"eksops:{secrets.token_urlsafe(12)}"
    stack.add(services.flower(run_dir, env, port=args.flower_port, basic_auth=basic_auth))
    user, password = basic_auth.split(":", 1)
    lines.insert(
        0, f"  Flower:   http://127.0.0.1:{args.flower_port}  (user {user}, password {password})"
    )

    if not args.no_gateway:
        gateway = stack.add(services.gateway(run_dir, env, port=args.gateway_port))
        services.wait_for(
            services.port_open(args.gateway_port),
            what="gateway",
            timeout=30,
            process=gateway.process,
        )
        lines.insert(1, f"  Gateway:  http://127.0.0.1:{args.gateway_port}/docs")

    stack_env = run_dir / "stack.env"
    keys = ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
    stack_env.write_text("".join(f"{key}={env[key]}\n" for key in keys if env.get(key)))
    services.wait_for(
        services.port_open(args.flower_port),
        what="flower",
        timeout=30,
        process=stack.services[-1].process,
    )
    return lines


def main() -> int:
    """Run the stack until interrupted; return the exit code."""
    args = _parse()
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    stack = Stack()
    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        lines = _start(args, stack)
    except (StackError, OSError) as exc:
        logger.error("Local stack failed to start: %s", exc)
        stack.stop()
        return 1

    rel = os.path.relpath(args.run_dir / "stack.env")
    banner = [
        "eksops local stack is up",
        *lines,
        "Submit a job from another terminal:",
        f"  set -a; . {rel}; set +a",
        "  .venv/bin/eksops create-job -f examples/job.yaml --wait 60",
        "Stop with Ctrl-C.",
    ]
    sys.stdout.write("\n".join(banner) + "\n")
    sys.stdout.flush()

    code = 0
    while not stopping:
        dead = stack.dead()
        if dead is not None:
            logger.error("%s exited with code %s; stopping the stack", dead.name, dead.exited)
            code = 1
            break
        time.sleep(0.5)
    stack.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())

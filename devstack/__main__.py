"""``python -m devstack`` (``make run``): the whole eksops stack on one machine.

Reads ``.env`` like every eksops process. What the environment does not name is
embedded: no ``REDIS_URL`` → a Valkey server with its data under ``.run/valkey``; no
``EKS_CLUSTER_NAME`` and no ``KUBECONFIG`` → kubesim, with its objects under
``.run/kubesim`` and a kubeconfig for kubectl at ``.run/kubeconfig``. Then the worker
(its metrics on ``WORKER_METRICS_PORT``), Flower (basic auth, loopback only, its task
history kept in ``.run/flower.db``) and the HTTP gateway (``/metrics`` with the fleet
gauges) start; the banner, printed once the worker consumes, says where each is.
Ports and the Flower password are chosen once and kept in ``.run/stack.json``; every
process logs to ``.run/<name>.log``; the variables a CLI needs to reach the same queue
are written to ``.run/stack.env``. One stack per run directory: a second run says
where the first one is and exits. Ctrl-C stops everything in reverse order; if any
service dies, the rest are stopped and the exit code is non-zero.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from dotenv import dotenv_values

from devstack import services
from devstack.services import Service, StackError
from devstack.state import RunLock, StackRunning, StackState
from worker.logs import configure_logging, safe_url

logger = logging.getLogger("devstack.main")

ROOT = Path(__file__).resolve().parents[1]


def _port(value: str | None) -> int | None:
    return int(value) if value else None


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=ROOT / ".run",
        help="logs, data, ports and stack.env (default: .run)",
    )
    parser.add_argument("--flower-port", type=int, default=_port(os.environ.get("FLOWER_PORT")))
    parser.add_argument("--gateway-port", type=int, default=_port(os.environ.get("GATEWAY_PORT")))
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


def _serve_metrics(env: dict[str, str], port: int) -> str:
    """Have the worker serve its metrics on ``port`` (loopback); return the banner line."""
    env["WORKER_METRICS_PORT"] = str(port)
    env.setdefault("WORKER_METRICS_ADDRESS", "127.0.0.1")
    return f"  Metrics:  http://127.0.0.1:{port}/metrics  (the worker's)"


def _start(args: argparse.Namespace, stack: Stack, state: StackState) -> list[str]:
    run_dir: Path = args.run_dir
    env = _environment()
    lines: list[str] = []
    notes: list[str] = []

    def port(name: str, preferred: int | None = None, default: int | None = None) -> int:
        chosen, note = state.port(name, preferred=preferred, default=default)
        if note:
            notes.append(note)
        return chosen

    if not env.get("REDIS_URL") and not env.get("CELERY_BROKER_URL"):
        valkey, url = services.valkey(run_dir, env, port=port("valkey"))
        stack.add(valkey)
        services.wait_for(
            services.port_open(state.ports["valkey"]),
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

    kubeconfig: Path | None = None
    if not env.get("EKS_CLUSTER_NAME") and not env.get("KUBECONFIG"):
        sim, env_file = services.kubesim(run_dir, env, cluster="eksops-local", port=port("kubesim"))
        stack.add(sim)
        services.wait_for(env_file.exists, what="kubesim", timeout=30, process=sim.process)
        env.update(services.read_env_file(env_file))
        kubeconfig = run_dir / "kubeconfig"
        services.write_kubeconfig(env_file, kubeconfig)
        lines.append(
            f"  Cluster:  kubesim 'eksops-local' at {env['AWS_ENDPOINT_URL_EKS']}  (simulated EKS, "
            f"objects in {run_dir / 'kubesim'})"
        )
    else:
        lines.append(f"  Cluster:  {env.get('EKS_CLUSTER_NAME') or env.get('KUBECONFIG')}")

    lines.append(
        _serve_metrics(
            env, port("worker-metrics", _port(env.get("WORKER_METRICS_PORT")), default=9808)
        )
    )
    worker = stack.add(services.worker(run_dir, env, concurrency=args.concurrency))

    flower_port = port("flower", args.flower_port, default=5555)
    basic_auth = env.get("FLOWER_BASIC_AUTH") or f"eksops:{state.flower_password}"
    stack.add(services.flower(run_dir, env, port=flower_port, basic_auth=basic_auth))
    user, password = basic_auth.split(":", 1)
    lines.insert(
        0, f"  Flower:   http://127.0.0.1:{flower_port}  (user {user}, password {password})"
    )

    if not args.no_gateway:
        gateway_port = port("gateway", args.gateway_port, default=8000)
        gateway = stack.add(services.gateway(run_dir, env, port=gateway_port))
        services.wait_for(
            services.port_open(gateway_port), what="gateway", timeout=30, process=gateway.process
        )
        lines.insert(1, f"  Gateway:  http://127.0.0.1:{gateway_port}/docs")
        lines += [
            f"  Metrics:  http://127.0.0.1:{gateway_port}/metrics  (the gateway's, and the fleet: "
            "backlog, live workers, limiters, trackers)",
            f"  Backlog:  http://127.0.0.1:{gateway_port}/health  (or: eksops queue)",
        ]

    stack_env = run_dir / "stack.env"
    keys = ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
    stack_env.write_text("".join(f"{key}={env[key]}\n" for key in keys if env.get(key)))
    services.wait_for(
        services.port_open(flower_port),
        what="flower",
        timeout=30,
        process=stack.services[-1].process,
    )
    services.wait_for(
        worker.logged(services.WORKER_READY), what="worker", timeout=60, process=worker.process
    )
    names = ", ".join(service.name for service in stack.services if service.log_path)
    lines.append(f"  Logs:     {run_dir}/<name>.log for {names}")
    if kubeconfig is not None:
        lines.append(f"  kubectl:  kubectl --kubeconfig {os.path.relpath(kubeconfig)} get jobs -A")
    lines.extend(f"  Note:     {note}" for note in notes)
    return lines


def main() -> int:
    """Run the stack until interrupted; return the exit code."""
    args = _parse()
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    lock = RunLock(args.run_dir)
    try:
        lock.acquire()
    except StackRunning as exc:
        logger.error(
            "An eksops local stack is already running from %s (%s). Stop it first "
            "(Ctrl-C in its terminal), or use another --run-dir.",
            args.run_dir,
            exc,
        )
        return 1
    state_file = args.run_dir / "stack.json"
    state = StackState.load(state_file)
    stack = Stack()
    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        lines = _start(args, stack, state)
    except (StackError, OSError) as exc:
        logger.error("Local stack failed to start: %s", exc)
        dead = stack.dead()
        if dead is not None and dead.log_path is not None:
            logger.error("%s exited with code %s; see %s", dead.name, dead.exited, dead.log_path)
        stack.stop()
        lock.release()
        return 1
    state.save(state_file)
    lock.describe(lines[0].strip() + "; " + lines[1].strip())

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
            where = f"; see {dead.log_path}" if dead.log_path else ""
            logger.error(
                "%s exited with code %s%s; stopping the stack", dead.name, dead.exited, where
            )
            code = 1
            break
        time.sleep(0.5)
    stack.stop()
    lock.release()
    return code


if __name__ == "__main__":
    sys.exit(main())

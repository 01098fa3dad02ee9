"""Kubernetes API clients, one per worker process and cluster, reused across tasks.

EKS mode (no kubeconfig): ``eks.describe_cluster`` gives the endpoint and the CA, TLS is
verified against that CA, and each request carries a bearer token from
:class:`~worker.operations.tokens.TokenSource`. Kubeconfig mode (kind, k3s, minikube)
loads the same client configuration from a kubeconfig. Either way operations get a
:class:`ClusterClient`, whose :meth:`ClusterClient.call` is the one door to the API:
it sets timeouts, re-mints the token once on a 401, and translates every failure into
the eksops error tree.

Clients are built lazily and keyed by process ID, so a prefork child never reuses a
connection pool inherited from its parent.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
import orjson
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from worker.contracts import ClusterRef
from worker.errors import ConfigurationError, Unavailable
from worker.operations import apicalls
from worker.operations.limiter import Limiter, Unlimited
from worker.operations.tokens import TokenSource, mint_token
from worker.operations.translate import translate
from worker.settings import WorkerSettings

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ClusterTarget:
    """Which cluster a request runs against: EKS name + region, or a kubeconfig context."""

    name: str
    region: str | None = None

    @property
    def key(self) -> str:
        """Return the cluster's name in fleet-wide state: ``name@region``."""
        return f"{self.name}@{self.region or 'kubeconfig'}"


class ClusterClient:
    """The API of one cluster, as operations see it."""

    def __init__(
        self,
        target: ClusterTarget,
        api_client: k8s.ApiClient,
        *,
        tokens: TokenSource | None,
        timeout: tuple[float, float],
        limiter: Limiter | None = None,
    ) -> None:
        self.target = target
        self.limiter: Limiter = limiter or Unlimited()
        self.api_client = api_client
        self.core = k8s.CoreV1Api(api_client)
        self.batch = k8s.BatchV1Api(api_client)
        self.tokens = tokens
        self._timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send ``method path`` to the API and return the JSON body as a dict.

        Goes through the generated client's own lower layer (``param_serialize`` for
        URL and auth, ``call_api`` for the pooled, verified-TLS connection) but not its
        per-call pydantic validation of every argument and body, which costs more CPU
        than the rest of the call; the contracts validated the request already.
        """
        return self._with_reauth(lambda: self._send(method, path, body, query))

    def open(
        self,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
        accept: str = "application/json",
    ) -> Any:
        """GET ``path`` and return the open response, its body not read yet (a stream).

        For watches and logs: the limiter's slot covers opening the request, not the
        stream, so a long watch does not hold an in-flight slot. The 401 re-mint and the
        error translation are :meth:`request`'s. The caller reads the body (its errors
        go through ``translate``) and closes it.
        """
        timeout = (self._timeout[0], read_timeout or self._timeout[1])
        return self._with_reauth(
            lambda: self._open("GET", path, None, query, timeout=timeout, accept=accept)
        )

    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Call a generated API ``method`` and return the response body as a dict."""
        kwargs.setdefault("_request_timeout", self._timeout)
        kwargs["_preload_content"] = False
        return self._with_reauth(lambda: self._call_generated(method, args, kwargs))

    def _with_reauth(self, send: Callable[[], T]) -> T:
        try:
            return send()
        except ApiException as exc:
            if exc.status != 401 or self.tokens is None:
                raise translate(exc) from exc
            logger.warning(
                "Kubernetes API answered 401 Unauthorized; re-minting the IAM token and "
                "retrying once"
            )
            self.tokens.invalidate(self._current_token())
        try:
            return send()
        except Exception as exc:
            raise translate(exc) from exc

    def _send(
        self, method: str, path: str, body: Any, query: Mapping[str, str] | None
    ) -> dict[str, Any]:
        response = self._open(
            method, path, body, query, timeout=self._timeout, accept="application/json"
        )
        try:
            data = response.read()
        except Exception as exc:
            raise translate(exc) from exc
        return _json_object(data)

    def _open(
        self,
        method: str,
        path: str,
        body: Any,
        query: Mapping[str, str] | None,
        *,
        timeout: tuple[float, float],
        accept: str,
    ) -> Any:
        """Send the request within a limiter slot; return the response once it is a 2xx."""
        verb_label, resource = apicalls.from_path(method, path, query)
        with self.limiter.slot(), apicalls.measured(verb_label, resource) as code:
            try:
                verb, url, headers, payload, _ = self.api_client.param_serialize(
                    method=method,
                    resource_path=path,
                    query_params=list(query.items()) if query else None,
                    header_params={"Accept": accept, "Content-Type": "application/json"},
                    body=body,
                    auth_settings=["BearerToken"],
                )
                response = self.api_client.call_api(
                    verb, url, header_params=headers, body=payload, _request_timeout=timeout
                )
                code[0] = str(response.status)
                if not 200 <= response.status <= 299:
                    response.read()  # type: ignore[no-untyped-call]
            except Exception as exc:
                raise translate(exc) from exc
            if not 200 <= response.status <= 299:
                error = ApiException(http_resp=response)
                if response.status == 429:
                    self.limiter.pause(translate(error).retry_after or 1.0)
                raise error
            return response

    def _call_generated(
        self, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        verb, resource = apicalls.from_method(getattr(method, "__name__", "call"))
        with self.limiter.slot(), apicalls.measured(verb, resource) as code:
            try:
                response = method(*args, **kwargs)
                code[0] = str(getattr(response, "status", 200))
                data = response.data  # read here: a body cut short raises while reading
            except ApiException as exc:
                code[0] = str(exc.status)
                if exc.status == 429:
                    self.limiter.pause(translate(exc).retry_after or 1.0)
                raise
            except Exception as exc:
                raise translate(exc) from exc
            return _json_object(data)

    def _current_token(self) -> str | None:
        key = self.api_client.configuration.api_key.get("authorization")
        return str(key) if key else None


def _json_object(body: bytes | None) -> dict[str, Any]:
    """Return a success body as a JSON object; anything else is the API failing us."""
    if not body:
        return {}
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Unavailable(
            f"The Kubernetes API answered with a body that is not JSON ({exc}): {body[:80]!r}",
            code="UnreadableResponse",
        ) from None
    if not isinstance(parsed, dict):
        raise Unavailable(
            f"The Kubernetes API answered with JSON that is not an object: {body[:80]!r}",
            code="UnreadableResponse",
        )
    return parsed


def warm_up() -> None:
    """Pay the one-time costs of the first call now, not in the first task.

    The generated API classes build their argument validators on first construction
    (about a second), and the Job schema validator loads its schema once.
    """
    k8s.CoreV1Api(k8s.ApiClient())
    k8s.BatchV1Api(k8s.ApiClient())


class Clusters:
    """Builds and caches a :class:`ClusterClient` per (process, cluster). Thread-safe."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        pool_size: int,
        session_factory: Callable[..., Any] = boto3.session.Session,
        limiter_for: Callable[[ClusterTarget], Limiter] = lambda _target: Unlimited(),
        on_new: Callable[[ClusterTarget], None] = lambda _target: None,
    ) -> None:
        self._settings = settings
        self._pool_size = pool_size
        self._session_factory = session_factory
        self._limiter_for = limiter_for
        self._on_new = on_new  # told of each cluster this process builds a client for
        self._lock = threading.Lock()
        self._clients: dict[tuple[int, ClusterTarget], ClusterClient] = {}

    def target(self, ref: ClusterRef | None) -> ClusterTarget:
        """Resolve a request's cluster reference against the worker's defaults."""
        if self._settings.mode == "kubeconfig":
            return ClusterTarget(name=ref.name if ref else (self._settings.kube_context or ""))
        name = ref.name if ref else str(self._settings.eks_cluster_name)
        region = (ref.region if ref else None) or self._settings.eks_region
        return ClusterTarget(name=name, region=region)

    def _key(self, ref: ClusterRef | None) -> tuple[int, ClusterTarget]:
        return os.getpid(), self.target(ref)

    def get(self, ref: ClusterRef | None = None) -> ClusterClient:
        """Return the client of ``ref`` (default: the configured cluster) for this process."""
        key = self._key(ref)
        client = self._clients.get(key)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._build(key[1])
                self._clients[key] = client
                try:
                    self._on_new(key[1])
                except Exception as exc:  # a registry write must not fail a request
                    logger.warning("Could not register cluster %s: %s", key[1].key, exc)
            return client

    def built(self, ref: ClusterRef | None = None) -> ClusterClient | None:
        """Return the client of ``ref`` if this process has built it already, else None."""
        return self._clients.get(self._key(ref))

    def token_mints(self) -> int:
        """Return how many tokens this process has minted (for cost reporting)."""
        return sum(c.tokens.mint_count for c in self._clients.values() if c.tokens)

    def _configuration(self) -> k8s.Configuration:
        configuration = k8s.Configuration()
        configuration.connection_pool_maxsize = self._pool_size
        # Reconnect once on a failed connect; everything else is retried by the task
        # layer's policy, declared once, never here.
        configuration.retries = urllib3.Retry(
            total=1,
            connect=1,
            read=0,
            status=0,
            redirect=0,
            other=0,
            # 429/503 with Retry-After must reach the task layer as a Kubernetes Status
            # (Throttled with retry_after), not be retried or swallowed by urllib3.
            respect_retry_after_header=False,
            raise_on_status=False,
        )
        return configuration

    def _build(self, target: ClusterTarget) -> ClusterClient:
        if self._settings.mode == "kubeconfig":
            configuration, tokens = self._kubeconfig(target), None
        else:
            configuration, tokens = self._eks(target)
        return ClusterClient(
            target,
            k8s.ApiClient(configuration),
            tokens=tokens,
            timeout=(
                self._settings.k8s_connect_timeout_seconds,
                self._settings.k8s_read_timeout_seconds,
            ),
            limiter=self._limiter_for(target),
        )

    def _kubeconfig(self, target: ClusterTarget) -> k8s.Configuration:
        configuration = self._configuration()
        try:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(self._settings.kubeconfig),
                context=target.name or None,
                client_configuration=configuration,
                persist_config=False,
            )
        except (k8s_config.ConfigException, OSError) as exc:
            raise ConfigurationError(
                f"Cannot load KUBECONFIG: {exc}", code="KubeconfigError"
            ) from exc
        logger.info(
            "Using kubeconfig %s context %s", self._settings.kubeconfig, target.name or "(current)"
        )
        return configuration

    def session(self, target: ClusterTarget) -> Any:
        """Return a boto3 session for ``target``'s region (credentials as boto3 finds them)."""
        return self._session_factory(region_name=target.region)

    def describe(self, target: ClusterTarget, session: Any) -> dict[str, Any]:
        """Return EKS's description of ``target`` (endpoint, CA); it must be ACTIVE."""
        try:
            cluster: dict[str, Any] = session.client("eks").describe_cluster(name=target.name)[
                "cluster"
            ]
        except Exception as exc:
            raise translate(exc) from exc
        status = cluster.get("status", "ACTIVE")
        if status != "ACTIVE":
            raise Unavailable(
                f"EKS cluster {target.name} is {status}, not ACTIVE", code="ClusterNotActive"
            )
        return cluster

    def _eks(self, target: ClusterTarget) -> tuple[k8s.Configuration, TokenSource]:
        logger.info("Connecting to EKS cluster %s in region %s", target.name, target.region)
        try:
            session = self.session(target)
            sts = session.client("sts")
        except Exception as exc:
            raise translate(exc) from exc
        logger.debug("Step 1/3: Fetch cluster endpoint and CA certificate")
        cluster = self.describe(target, session)
        endpoint = cluster["endpoint"]
        logger.debug("Cluster endpoint: %s", endpoint)

        logger.debug("Step 2/3: Generate IAM bearer token")
        tokens = TokenSource(
            lambda: mint_token(sts, target.name),
            refresh_after_seconds=self._settings.token_refresh_seconds,
        )
        try:
            tokens.get()
        except Exception as exc:
            raise translate(exc) from exc

        logger.debug("Step 3/3: Configure Kubernetes client with IAM auth and the cluster CA")
        configuration = self._configuration()
        configuration.host = endpoint
        configuration.verify_ssl = True
        configuration.ca_cert_data = base64.b64decode(
            cluster["certificateAuthority"]["data"]
        ).decode()
        configuration.api_key_prefix = {"authorization": "Bearer"}
        configuration.api_key = {"authorization": tokens.get()}

        def refresh(config: k8s.Configuration) -> None:
            config.api_key["authorization"] = tokens.get()

        configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]
        logger.info("Kubernetes client ready for EKS cluster %s", target.name)
        return configuration, tokens

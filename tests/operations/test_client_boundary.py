"""No exception of the HTTP, JSON or Kubernetes client libraries leaves ClusterClient.

A real socket server answers each request with one broken or unusual reply (a body
that is not JSON, a connection cut mid-body, garbage instead of HTTP...), and the
real ``ClusterClient`` must answer every one with an error of the eksops tree, never
with urllib3's, orjson's or the kubernetes client's own exception.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from worker.errors import EksOpsError, NotFound, Throttled, Unavailable
from worker.operations import ClusterClient, ClusterTarget


def _http(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers, "", ""]
    return "\r\n".join(head).encode() + body


# Each reply, and the error class (at least) the caller must see.
REPLIES: dict[str, tuple[bytes, type[EksOpsError]]] = {
    "a 200 whose body is not JSON": (
        _http("200 OK", b"<html>proxy</html>", "Content-Type: text/html"),
        Unavailable,
    ),
    "a 200 whose JSON is not an object": (_http("200 OK", b"[1, 2]"), Unavailable),
    "a 500 with an HTML body": (_http("500 Internal Server Error", b"<h1>oops</h1>"), Unavailable),
    "a 404 with truncated JSON": (_http("404 Not Found", b'{"kind": "Status", "co'), NotFound),
    "a 429 whose Retry-After is garbage": (
        _http("429 Too Many Requests", b"{}", "Retry-After: soon"),
        Throttled,
    ),
    "a connection cut mid-body": (
        b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"kind": ',
        Unavailable,
    ),
    "garbage instead of HTTP": (b"\x00\x01\x02 not http at all\r\n\r\n", Unavailable),
    "an empty reply": (b"", Unavailable),
    "a chunked body that never ends": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        Unavailable,
    ),
}


class OneReplyServer:
    """Answers every connection with ``reply`` (raw bytes), then closes it."""

    def __init__(self) -> None:
        self.reply = b""
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                try:
                    connection.recv(65536)
                    connection.sendall(self.reply)
                except OSError:
                    pass

    def close(self) -> None:
        self._socket.close()


@pytest.fixture(scope="module")
def server() -> Iterator[OneReplyServer]:
    served = OneReplyServer()
    yield served
    served.close()


@pytest.fixture
def cluster(server: OneReplyServer) -> ClusterClient:
    configuration = k8s.Configuration()
    configuration.host = f"http://127.0.0.1:{server.port}"
    configuration.retries = 0
    return ClusterClient(
        ClusterTarget(name="broken"), k8s.ApiClient(configuration), tokens=None, timeout=(2, 2)
    )


@pytest.mark.parametrize("case", list(REPLIES))
def test_every_broken_answer_becomes_an_eksops_error(
    server: OneReplyServer, cluster: ClusterClient, case: str
) -> None:
    reply, expected = REPLIES[case]
    server.reply = reply
    with pytest.raises(EksOpsError) as caught:
        cluster.request("GET", "/apis/batch/v1/namespaces/default/jobs/x")
    assert isinstance(caught.value, expected), (case, type(caught.value), caught.value)
    assert caught.value.message


@pytest.mark.parametrize("case", list(REPLIES))
def test_the_generated_client_path_keeps_the_boundary_too(
    server: OneReplyServer, cluster: ClusterClient, case: str
) -> None:
    server.reply = REPLIES[case][0]
    with pytest.raises(EksOpsError):
        cluster.call(cluster.batch.read_namespaced_job, name="x", namespace="default")


def test_an_endpoint_nobody_listens_on_is_unavailable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    configuration = k8s.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    configuration.retries = 0
    cluster = ClusterClient(
        ClusterTarget(name="gone"), k8s.ApiClient(configuration), tokens=None, timeout=(1, 1)
    )
    with pytest.raises(Unavailable):
        cluster.request("GET", "/api/v1/namespaces")

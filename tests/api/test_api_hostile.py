"""A hostile or broken server: trickled answers, decompression bombs, absurd JSON, unusable tokens.

The sandbox answers like Progeny does; these cases need a server that misbehaves at the HTTP level, so each
test starts a tiny ``http.server`` on 127.0.0.1 whose handlers are plain functions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from urllib3.util.ssltransport import SSLTransport

from progeny_api import (
    ProgenyClient,
    ResponseFormatError,
    ServerError,
    TaskTimeoutError,
    TransportError,
)
from progeny_api._transport import Watchdog

pytestmark = pytest.mark.timeout(60)

TASK = "11111111-2222-4333-8444-555555555555"
PENDING = b'{"id": 7, "status": "PENDING", "result": null}'
SUCCESS = b'{"id": 7, "status": "SUCCESS", "result": {"status": 200, "data": {}}}'

#: Per-operation timeouts that a server sending a byte every TRICKLE seconds never trips.
TIMEOUT = (0.5, 1.0)
TRICKLE = 0.1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stopping: threading.Event
    routes: dict[str, Callable[[_Handler], None]]
    hits: dict[str, int]
    peers: set[tuple[str, int]]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-answer is what these tests provoke

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v3"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall each
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("task")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if "token/obtain" in self.path:
            self._dispatch("obtain")
        elif "token/refresh" in self.path:
            self._dispatch("refresh")
        else:
            self._dispatch("post")

    def _dispatch(self, route: str) -> None:
        self.server.hits[route] = self.server.hits.get(route, 0) + 1
        self.server.peers.add(self.client_address)
        with contextlib.suppress(OSError):  # the client hung up: that is what some tests want
            self.server.routes[route](self)

    # -- answers ---------------------------------------------------------------------------------------------

    def send(self, status: int, body: bytes, *headers: tuple[str, str]) -> None:
        self.send_response(status)
        if not any(name.lower() == "content-type" for name, _ in headers):
            self.send_header("Content-Type", "application/json")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def pause(self) -> bool:
        """Wait one trickle step; True once the server is shutting down."""
        self.wfile.flush()
        return self.server.stopping.wait(TRICKLE)


Route = Callable[[_Handler], None]


def answer(status: int, body: bytes, *headers: tuple[str, str]) -> Route:
    return lambda h: h.send(status, body, *headers)


DEFAULT_ROUTES: dict[str, Route] = {
    "obtain": answer(200, b'{"access": "header.payload.sig", "refresh": "r.e.f"}'),
    "refresh": answer(200, b'{"access": "header.payload.sig2"}'),
    "post": answer(200, b'{"id": "%s"}' % TASK.encode()),
    "task": answer(200, SUCCESS),
}


def trickled_body(body: bytes) -> Route:
    """Headers at once, then the body one byte per TRICKLE seconds."""

    def route(h: _Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for i in range(len(body)):
            h.wfile.write(body[i : i + 1])
            if h.pause():
                return

    return route


def trickled_headers(h: _Handler) -> None:
    """A status line, then one header line per TRICKLE seconds (90 of them: under http.client's limit)."""
    h.wfile.write(b"HTTP/1.1 200 OK\r\n")
    for i in range(90):
        h.wfile.write(b"X-Pad-%d: 1\r\n" % i)
        if h.pause():
            return
    h.wfile.write(b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(PENDING), PENDING))


@pytest.fixture
def serve() -> Iterator[Callable[..., _Server]]:
    """``serve(task=route, ...)`` starts a server with those routes replaced (``.base_url``, ``.hits``)."""
    servers: list[_Server] = []

    def start(**routes: Route) -> _Server:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.stopping = threading.Event()
        server.routes = {**DEFAULT_ROUTES, **routes}
        server.hits = {}
        server.peers = set()
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stopping.set()
        server.shutdown()
        server.server_close()


def make(server: _Server, **options: Any) -> ProgenyClient:
    settings: dict[str, Any] = {"timeout": TIMEOUT, "backoff_base": 0.01, "backoff_max": 0.05, **options}
    return ProgenyClient("u", "p", base_url=server.base_url, **settings)


@contextlib.contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    started = time.monotonic()
    yield lambda: time.monotonic() - started


# -- a trickling server cannot stretch a call ------------------------------------------------------------------


@pytest.mark.parametrize(
    "route",
    [trickled_body(PENDING + b" " * 200), trickled_headers],
    ids=["trickled-body", "trickled-headers"],
)
def test_polling_deadline_bounds_a_trickled_poll(serve: Callable[..., _Server], route: Route) -> None:
    """Each byte arrives well within the read timeout; without a total limit one poll takes 10-25 s."""
    with make(serve(task=route)) as client, stopwatch() as elapsed:
        with pytest.raises(TaskTimeoutError) as info:
            client.wait(TASK, deadline=1.0)
        assert elapsed() < 2.5
    assert isinstance(info.value.__cause__, TransportError)


def test_trickled_post_is_cut_by_the_total_limit(serve: Callable[..., _Server], face: bytes) -> None:
    """Outside polling an attempt gets connect + read seconds in all (here 1.5 s), and an ambiguous POST is
    still not replayed."""
    server = serve(post=trickled_body(b'{"id": "%s"}' % TASK.encode() + b" " * 200))
    with make(server) as client, stopwatch() as elapsed:
        with pytest.raises(TransportError) as info:
            client.face_liveness(face)
        assert 1.4 < elapsed() < 2.5
    assert info.value.may_have_reached_server is True and server.hits["post"] == 1
    assert "ReadTimeout" in str(info.value)


def test_trickled_token_call_is_bounded_by_the_polling_deadline(serve: Callable[..., _Server]) -> None:
    """The login made on behalf of a poll counts against the poll's deadline (retries included)."""
    with make(serve(obtain=trickled_body(b'{"access": "a.b.c"}' + b" " * 200))) as client, stopwatch() as elapsed:
        with pytest.raises(TaskTimeoutError) as info:
            client.wait(TASK, deadline=1.0)
        assert elapsed() < 2.5
    assert isinstance(info.value.__cause__, TransportError)


# -- one shared timer thread for every attempt -----------------------------------------------------------------


def test_requests_do_not_start_a_thread_each(serve: Callable[..., _Server], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every attempt is armed on one shared timer thread (not a new thread per attempt)."""
    server = serve()
    started_here: list[str] = []
    start = threading.Thread.start

    def recording_start(thread: threading.Thread) -> None:
        if threading.current_thread() is threading.main_thread():  # not the server's handler threads
            started_here.append(thread.name)
        start(thread)

    with make(server) as client:
        client.wait(TASK)  # the first call may start the shared thread
        threads_after_first = threading.active_count()
        monkeypatch.setattr(threading.Thread, "start", recording_start)
        for _ in range(50):
            client.wait(TASK)
        assert threading.active_count() == threads_after_first
    assert server.hits["task"] == 51 and started_here == []
    assert [t.name for t in threading.enumerate()].count("progeny_api-watchdog") == 1


def test_concurrent_attempts_each_get_their_own_limit(serve: Callable[..., _Server]) -> None:
    """Three threads, three clients, limits of 0.6, 1.2 and 1.8 s against one trickling server: each is cut
    at its own limit, not at the earliest or the latest."""
    server = serve(post=trickled_body(b'{"id": "%s"}' % TASK.encode() + b" " * 400))
    elapsed: dict[float, float] = {}
    errors: dict[float, BaseException] = {}

    def poll(read: float) -> None:
        with make(server, timeout=(0.3, read), max_retries=0) as client:
            started = time.monotonic()
            try:
                client.face_liveness(b"image")
            except TransportError as exc:
                errors[read] = exc
            elapsed[read] = time.monotonic() - started

    threads = [threading.Thread(target=poll, args=(read,)) for read in (0.3, 0.9, 1.5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert set(errors) == {0.3, 0.9, 1.5} and all("ReadTimeout" in str(e) for e in errors.values())
    for read, seconds in elapsed.items():
        assert 0.3 + read - 0.05 < seconds < 0.3 + read + 0.5, (read, seconds)


def _poll_in_child(base_url: str, result: Any) -> None:
    client = ProgenyClient("u", "p", base_url=base_url, timeout=TIMEOUT, max_retries=0)
    started = time.monotonic()
    try:
        client.face_liveness(b"image")
        result.put(("answered", time.monotonic() - started))
    except TransportError as exc:
        result.put((type(exc).__name__ + ("/ReadTimeout" if "ReadTimeout" in str(exc) else ""),
                    time.monotonic() - started))
    finally:
        client.close()


def test_a_forked_child_gets_its_own_timer(serve: Callable[..., _Server]) -> None:
    """Worker processes (multiprocessing, Dask) fork after the parent has used the client: the child's
    attempts must still be cut (limit 1.5 s), by a timer thread of its own (the parent's does not exist there),
    even if another thread of the parent held the timer's lock at the moment of the fork."""
    import multiprocessing

    from progeny_api import _transport

    server = serve(post=trickled_body(b'{"id": "%s"}' % TASK.encode() + b" " * 400))
    with make(serve()) as client:
        client.wait(TASK)  # the parent's timer thread is running when the child is forked
    held, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:  # as a thread arming or cancelling an attempt would, for an instant
        with _transport._scheduler._cond:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock, daemon=True)
    holder.start()
    assert held.wait(5)
    context = multiprocessing.get_context("fork")
    result = context.Queue()
    child = context.Process(target=_poll_in_child, args=(server.base_url, result), daemon=True)
    try:
        child.start()  # the lock is held: a child that kept the parent's timer would wait for it forever
    finally:
        release.set()
        holder.join(5)
    try:
        outcome, seconds = result.get(timeout=10)
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()
    assert outcome == "TransportError/ReadTimeout" and 1.4 < seconds < 3.0, (outcome, seconds)


def test_the_timer_heap_sheds_cancelled_entries_and_still_fires() -> None:
    """Thousands of finished attempts with long limits do not pile up in the heap, and an attempt armed
    among them is still cut on time."""
    from progeny_api import _transport

    class _Conn:
        sock = None

    scheduler = _transport._scheduler
    for _ in range(2000):
        with Watchdog(600) as watchdog:
            watchdog.attach(_Conn())
    assert len(scheduler._heap) < 200  # compacted as it went (entries of 10 minutes each)
    left, right = socket.socketpair()
    try:
        left.settimeout(5)  # fail, not hang, if the timer never fires
        conn = type("C", (), {"sock": left})()
        started = time.monotonic()
        with Watchdog(0.2) as watchdog:
            watchdog.attach(conn)
            assert right.send(b"x") == 1 and left.recv(1) == b"x"
            assert left.recv(1) == b""  # blocks until the watchdog shuts the socket
        assert watchdog.tripped and 0.15 < time.monotonic() - started < 2.0
    finally:
        left.close()
        right.close()


def test_a_cancelled_watchdog_is_not_kept_alive() -> None:
    """A finished attempt's watchdog (and the connection it knew) is dropped at once, although its entry
    stays in the timer's heap until its deadline."""
    import gc
    import weakref

    class _Conn:
        sock = None

    conn = _Conn()
    watchdog = Watchdog(600)
    with watchdog:
        watchdog.attach(conn)
    refs = weakref.ref(watchdog), weakref.ref(conn)
    del watchdog, conn
    gc.collect()
    assert [ref() for ref in refs] == [None, None]


def _socket_conn(sock: socket.socket) -> Any:
    """A stand-in for a urllib3 connection: the watchdog only looks at ``.sock``."""
    sock.settimeout(5)  # a test fails, not hangs, if the timer never fires
    return type("C", (), {"sock": sock})()


def test_an_earlier_deadline_armed_later_is_cut_first() -> None:
    """The timer thread sleeps until the earliest deadline: a shorter limit armed while it sleeps for a longer
    one wakes it, and the longer one is left alone."""
    (long_sock, long_peer), (short_sock, short_peer) = socket.socketpair(), socket.socketpair()
    try:
        with Watchdog(3.0) as long:
            long.attach(_socket_conn(long_sock))
            time.sleep(0.1)  # not an assertion: lets the timer thread go to sleep until the 3 s deadline
            started = time.monotonic()
            with Watchdog(0.3) as short:
                short.attach(_socket_conn(short_sock))
                assert short_sock.recv(1) == b""  # blocks until the watchdog shuts the socket
                cut = time.monotonic() - started
        assert short.tripped and not long.tripped and 0.25 < cut < 1.5, cut
    finally:
        for sock in (long_sock, long_peer, short_sock, short_peer):
            sock.close()


def test_a_failing_callback_does_not_stop_the_timer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in one watchdog's callback neither kills the shared timer thread (the next attempt is still cut,
    by the same thread) nor prints a traceback; the debug line names the exception type, not its message."""
    from progeny_api import _transport

    fired = threading.Event()
    uncaught: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", uncaught.append)

    class _Broken(Watchdog):
        def _expire(self) -> None:
            fired.set()
            raise RuntimeError("response body: sensitive-detail")

    left, right = socket.socketpair()
    try:
        with caplog.at_level(logging.DEBUG, logger="progeny_api"), Watchdog(0.5) as watchdog:
            watchdog.attach(_socket_conn(left))
            with _Broken(0.05):
                assert fired.wait(2)
                thread = _transport._scheduler._thread
            assert left.recv(1) == b""  # cut all the same, at its own limit
        assert watchdog.tripped and uncaught == []
        assert thread is not None and thread is _transport._scheduler._thread and thread.is_alive()
        assert "RuntimeError" in caplog.text and "sensitive" not in caplog.text
    finally:
        left.close()
        right.close()


def test_interpreter_exit_does_not_wait_for_the_timer() -> None:
    """The timer is a daemon thread: a script that ends with an attempt still armed (600 s) exits at once."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    script = "from progeny_api._transport import Watchdog\nWatchdog(600).__enter__()\nprint('armed')\n"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=20)
    assert done.returncode == 0 and done.stdout.strip() == b"armed", done.stderr[-2000:]
    assert time.monotonic() - started < 10


def test_a_fast_server_keeps_its_connection(serve: Callable[..., _Server]) -> None:
    """The watchdog and the chunked reads leave keep-alive working, and the answer intact."""
    server = serve()
    with make(server) as client:
        for _ in range(3):
            assert client.wait(TASK).status == "SUCCESS"
    assert server.hits == {"obtain": 1, "task": 3}
    assert len(server.peers) == 1  # one connection for the login and the three polls


# -- response size -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """64 MB of spaces (then a JSON object), gzip-compressed to about 64 KB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * (1 << 20)
    return b"".join(packer.compress(block) for _ in range(64)) + packer.compress(SUCCESS) + packer.flush()


def test_decompression_bomb_is_refused_unread(serve: Callable[..., _Server], gzip_bomb: bytes) -> None:
    server = serve(task=answer(200, gzip_bomb, ("Content-Encoding", "gzip")))
    with make(server, max_response_bytes=1 << 20) as client:
        tracemalloc.start()
        try:
            with pytest.raises(ResponseFormatError, match="over 1048576 bytes") as info:
                client.wait(TASK, deadline=5)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 16 << 20  # the 64 MB were never inflated in memory
    assert info.value.status_code == 200 and info.value.task_id == TASK


def test_the_default_cap_applies(serve: Callable[..., _Server], gzip_bomb: bytes) -> None:
    server = serve(task=answer(200, gzip_bomb, ("Content-Encoding", "gzip")))
    with make(server) as client, pytest.raises(ResponseFormatError, match="over 8388608 bytes"):
        client.wait(TASK, deadline=5)


def test_a_redirect_body_is_not_read(serve: Callable[..., _Server], gzip_bomb: bytes) -> None:
    """requests would read a redirect's whole body before following it."""

    def task(h: _Handler) -> None:
        if "/hop/" in h.path:
            h.send(200, SUCCESS)
        else:
            location = h.path.replace("/task/", "/task/hop/")
            h.send(302, gzip_bomb, ("Content-Encoding", "gzip"), ("Location", location))

    with make(serve(task=task)) as client:
        tracemalloc.start()
        try:
            assert client.wait(TASK, deadline=5).status == "SUCCESS"
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 16 << 20


def test_an_oversized_error_page_is_still_the_error(serve: Callable[..., _Server]) -> None:
    server = serve(task=answer(503, b"<html>" + b"x" * 20_000 + b"</html>", ("Content-Type", "text/html")))
    client = make(server, max_response_bytes=1000, max_retries=0)
    with client, pytest.raises(TaskTimeoutError) as info:
        client.wait(TASK, deadline=0)
    cause = info.value.__cause__
    assert isinstance(cause, ServerError) and cause.status_code == 503
    assert isinstance(cause.body, str) and len(cause.body) <= 1000


def test_max_response_bytes_is_validated() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_response_bytes"):
            ProgenyClient("u", "p", max_response_bytes=bad)


# -- bodies no parser should have to survive ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("task", b"[" * 5000 + b"]" * 5000),  # RecursionError in json
        ("task", b'{"a": ' * 5000 + b"1" + b"}" * 5000),
        ("obtain", b"[" * 900 + b"]" * 900),  # parses, but a token body is redacted recursively
    ],
    ids=["deep-list", "deep-object", "deep-token-body"],
)
def test_deeply_nested_json_is_a_format_error(serve: Callable[..., _Server], route: str, body: bytes) -> None:
    with make(serve(**{route: answer(200, body)})) as client, pytest.raises(ResponseFormatError):
        client.wait(TASK, deadline=5)


@pytest.mark.parametrize("token", ["tok\u20ac", "tok\r\nX-Injected: 1", "tok en", "tok\x00"])
def test_an_access_token_that_cannot_be_a_header(serve: Callable[..., _Server], token: str) -> None:
    body = json.dumps({"access": token, "refresh": "r.e.f"}).encode()
    with make(serve(obtain=answer(200, body))) as client, pytest.raises(ResponseFormatError, match="header"):
        client.wait(TASK, deadline=5)


# -- the watchdog in the corners: a slow name lookup, TLS inside an HTTPS proxy --------------------------------


def test_limit_passed_while_resolving_fails_once_connected(
    serve: Callable[..., _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit runs out before the socket exists (a resolver that takes 2 s): the attempt must fail as soon as
    the connection is up, as a connect timeout (nothing was sent), not run on against a trickling server."""
    server = serve(obtain=trickled_body(b'{"access": "a.b.c", "refresh": "r.e.f"}' + b" " * 60))
    real_getaddrinfo = socket.getaddrinfo

    def slow_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "localhost":
            time.sleep(2.0)
            host = "127.0.0.1"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)
    base_url = server.base_url.replace("127.0.0.1", "localhost")
    with ProgenyClient("u", "p", base_url=base_url, timeout=TIMEOUT, max_retries=0) as client, stopwatch() as elapsed:
        with pytest.raises(TransportError) as info:
            client.face_liveness(b"not sent")
        assert elapsed() < 3.0  # the 2 s lookup, then at once (without the fix: 2 s + a 10 s trickle)
    assert "ConnectTimeout" in str(info.value) and info.value.may_have_reached_server is False
    assert server.hits == {}


def test_shutting_an_unknown_socket_neither_raises_nor_trips() -> None:
    """If the socket cannot be shut, the watchdog did nothing: the response that follows is not a timeout."""

    class Conn:
        sock = object()

    watchdog = Watchdog(60)
    watchdog.attach(Conn())
    watchdog._expire()  # what the timer thread runs
    assert watchdog.tripped is False


def test_the_socket_under_urllib3s_ssltransport_is_shut() -> None:
    """TLS inside an HTTPS proxy's TLS is an ``SSLTransport``, not a socket: the watchdog shuts the socket under it
    (built without a handshake here; the end-to-end case below needs openssl for its certificates)."""

    class Conn:
        sock: Any = None

    ours, theirs = socket.socketpair()  # ours stands for the proxy's TLS socket (an ssl.SSLSocket is a socket)
    with ours, theirs:
        conn = Conn()
        conn.sock = SSLTransport.__new__(SSLTransport)
        conn.sock.socket = ours
        watchdog = Watchdog(60)
        watchdog.attach(conn)
        watchdog._expire()
        assert watchdog.tripped is True
        theirs.settimeout(1)
        assert theirs.recv(10) == b""  # shut: the peer sees end-of-file


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make test certificates")
    folder = tmp_path_factory.mktemp("tls")
    ca, ca_key, cert, key, csr = (str(folder / name) for name in ("ca.pem", "ca.key", "cert.pem", "key.pem", "r.csr"))
    ext = folder / "ext.cnf"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    new_key = ["-newkey", "rsa:2048", "-nodes", "-keyout"]
    sign = ["-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-extfile", str(ext)]
    steps = [  # (arguments, output file)
        (["req", "-x509", *new_key, ca_key, "-days", "2", "-subj", "/CN=progeny test CA"], ca),
        (["req", *new_key, key, "-subj", "/CN=127.0.0.1"], csr),
        (["x509", "-req", "-days", "2", *sign, "-in", csr], cert),
    ]
    for arguments, output in steps:
        subprocess.run([openssl, *arguments, "-out", output], check=True, capture_output=True, timeout=30)
    return ca, cert, key


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _https_connect_proxy(context: ssl.SSLContext) -> socket.socket:
    """An HTTPS proxy on 127.0.0.1 that answers CONNECT: the client speaks TLS to it, and TLS inside that."""
    listener = socket.create_server(("127.0.0.1", 0))

    def handle(client: socket.socket) -> None:
        with contextlib.suppress(OSError), context.wrap_socket(client, server_side=True) as tls:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = tls.recv(4096)
                if not chunk:
                    return
                head += chunk
            host, port = head.split(b" ")[1].decode().rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            tls.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            threading.Thread(target=_pipe, args=(tls, upstream), daemon=True).start()
            _pipe(upstream, tls)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                threading.Thread(target=handle, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener


def test_trickled_answer_through_an_https_proxy_is_cut(
    serve: Callable[..., _Server], tls_files: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """TLS in TLS: the watchdog must reach the socket under urllib3's SSLTransport, without a traceback in its
    thread (it used to raise TypeError there and let the call run on until the server finished)."""
    ca, cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = serve(post=trickled_body(b'{"id": "%s"}' % TASK.encode() + b" " * 60))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    proxy = _https_connect_proxy(context)
    thread_errors: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)
    monkeypatch.setenv("HTTPS_PROXY", f"https://127.0.0.1:{proxy.getsockname()[1]}")
    for name in ("https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    base_url = server.base_url.replace("http://", "https://")
    try:
        client = ProgenyClient("u", "p", base_url=base_url, timeout=TIMEOUT, max_retries=0)
        with client, stopwatch() as elapsed:
            with pytest.raises(TransportError) as info:
                client.face_liveness(b"image")
            assert elapsed() < 3.0  # 1.5 s (without the fix: the whole 11 s trickle)
    finally:
        proxy.close()
    assert "ReadTimeout" in str(info.value) and server.hits == {"obtain": 1, "post": 1}
    assert thread_errors == []

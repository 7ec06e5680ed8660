"""A wall-clock limit for each HTTP attempt, which requests' timeouts do not give.

requests' ``(connect, read)`` timeout bounds each socket operation, not the request. A server that sends one
byte a second never trips a 3 s read timeout and can hold a call for minutes, whether it trickles the body or
the headers. So every attempt runs under a :class:`Watchdog`: a timer that, when the attempt's time is up,
shuts the socket the attempt is using. The blocked read then fails at once, and the client reports a timeout.
All watchdogs share one timer thread (:class:`_Scheduler`), started on first use and again in a forked child:
a thread per attempt cost about 0.15-0.2 ms a call on loopback (bench/bench_client.py --old REV).

The socket is found through a connection subclass that registers itself, in the calling thread, when it connects
and when it sends a request. It is installed by :class:`WatchedAdapter`, mounted on the client's own session only.
If the time runs out before the socket exists (a slow name lookup, a slow connect), the connection fails as a
connect timeout as soon as it is up: nothing has been sent yet.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from types import TracebackType
from typing import Any

import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions

_local = threading.local()
log = logging.getLogger("progeny_api")


class _Scheduler:
    """One daemon thread that calls ``_expire`` on each armed :class:`Watchdog` when its time is up.

    Entries are ``[deadline, seq, watchdog]`` in a heap; cancelling clears the watchdog slot (so a finished
    attempt's connection is not kept alive by the heap) and the entry is dropped when it reaches the top, or
    when cancelled entries make up most of the heap.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[list[Any]] = []
        self._seq = itertools.count()
        self._cancelled = 0
        self._thread: threading.Thread | None = None

    def arm(self, watchdog: Watchdog, delay: float) -> list[Any]:
        entry = [time.monotonic() + delay, next(self._seq), watchdog]
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="progeny_api-watchdog", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:  # a new earliest deadline: wake the thread to sleep less
                self._cond.notify()
        return entry

    def cancel(self, entry: list[Any]) -> None:
        with self._cond:
            if entry[2] is None:  # already fired
                return
            entry[2] = None
            self._cancelled += 1
            if self._cancelled > 64 and 2 * self._cancelled > len(self._heap):
                self._heap = [e for e in self._heap if e[2] is not None]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _next_due(self) -> Watchdog:
        """Wait for the earliest armed deadline to pass and take its watchdog off the heap."""
        with self._cond:
            while True:
                while self._heap and self._heap[0][2] is None:
                    heapq.heappop(self._heap)
                    self._cancelled -= 1
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                entry = heapq.heappop(self._heap)
                watchdog: Watchdog = entry[2]
                entry[2] = None
                return watchdog

    def _run(self) -> None:
        while True:
            # A call of its own, so that no local keeps the fired watchdog (and its connection) alive while
            # the thread sleeps until the next deadline.
            self._fire(self._next_due())

    @staticmethod
    def _fire(watchdog: Watchdog) -> None:
        try:
            watchdog._expire()  # outside the scheduler's lock: it takes the watchdog's own
        except BaseException as exc:  # _expire does not raise; the thread must outlive any bug in it
            # The type only: a message could quote a URL or a header.
            with contextlib.suppress(Exception):
                log.debug("watchdog callback failed (%s); the timer goes on", type(exc).__name__)


_scheduler = _Scheduler()


def _reset_after_fork() -> None:
    """A forked child has no timer thread and may have copied a held lock: start from scratch."""
    global _scheduler
    _scheduler = _Scheduler()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class Watchdog:
    """``with Watchdog(seconds):`` shuts the socket of the request sent in this block once the time is up.

    ``tripped`` tells afterwards whether it did, so that whatever error (or truncated body) followed can be
    reported as the timeout it is.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.tripped = False
        self._expired = False
        self._done = False
        self._conn: Any = None
        self._lock = threading.Lock()
        self._entry: list[Any] | None = None
        self._scheduler = _scheduler

    def __enter__(self) -> Watchdog:
        _local.watchdog = self
        self._scheduler = _scheduler  # the current one: a forked child has its own
        self._entry = self._scheduler.arm(self, self.limit)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._done = True  # from now on the connection may be back in the pool: never touch it
            self._conn = None
        if self._entry is not None:
            self._scheduler.cancel(self._entry)
            self._entry = None
        _local.watchdog = None

    def attach(self, conn: Any) -> None:
        with self._lock:
            if self._done:
                return
            self._conn = conn
            if self._expired:  # the limit passed while connecting: fail before sending anything more
                self._shut()

    def connected(self, conn: Any) -> bool:
        """Called once ``conn`` is connected: True if the time ran out before its socket could be shut (say,
        during a slow name lookup), so that the caller fails the connection instead of using it."""
        with self._lock:
            if self._done:
                return False
            self._conn = conn
            return self._expired and not self.tripped

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self._expired = True
            if self._conn is not None:
                self._shut()

    def _shut(self) -> None:
        """Shut the connection's socket, if it has one yet; ``tripped`` only if that worked. Never raises: it
        runs in the timer thread, where an exception would only print a traceback and leave the call hanging."""
        try:
            sock = _plain_socket(getattr(self._conn, "sock", None))
            if sock is None:
                return
            # The plain socket's shutdown (not SSLSocket's, which also drops the TLS state under a reader):
            # a blocked recv() in the other thread returns end-of-file at once.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except Exception:  # OSError (already closed...), or a wrapper we do not know
            return
        self.tripped = True


def _plain_socket(sock: Any) -> socket.socket | None:
    """The OS-level socket under ``sock``: an ``ssl.SSLSocket`` is one (a subclass); urllib3's ``SSLTransport``
    (TLS inside an HTTPS proxy's TLS) and pyOpenSSL's ``WrappedSocket`` keep theirs in ``.socket``."""
    for _ in range(8):  # TLS in TLS is two layers; the bound only guards against a cycle
        if sock is None or isinstance(sock, socket.socket):
            return sock
        sock = getattr(sock, "socket", None) or getattr(sock, "_sock", None)
    return None


def _register(conn: Any) -> None:
    watchdog: Watchdog | None = getattr(_local, "watchdog", None)
    if watchdog is not None:
        watchdog.attach(conn)


def _connected(conn: Any) -> None:
    watchdog: Watchdog | None = getattr(_local, "watchdog", None)
    if watchdog is not None and watchdog.connected(conn):
        # Nothing was sent on this connection yet: a connect timeout (and urllib3 closes the connection).
        raise urllib3.exceptions.ConnectTimeoutError(
            conn, f"Connection to {conn.host} timed out (the attempt's {watchdog.limit:g}s ran out while connecting)"
        )


class _HTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self) -> None:
        _register(self)  # so that a slow proxy tunnel can be cut too, once the socket exists
        super().connect()
        _connected(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self)
        super().request(*args, **kwargs)


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self) -> None:
        _register(self)  # so that a slow TLS handshake or proxy tunnel can be cut too, once the socket exists
        super().connect()
        _connected(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self)
        super().request(*args, **kwargs)


class _HTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOL_CLASSES: dict[str, type[urllib3.HTTPConnectionPool]] = {
    "http": _HTTPConnectionPool,
    "https": _HTTPSConnectionPool,
}


class WatchedAdapter(requests.adapters.HTTPAdapter):
    """An ``HTTPAdapter`` whose connections can be cut by a :class:`Watchdog` (direct and HTTP(S)-proxy)."""

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOL_CLASSES)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS managers need their own pool classes
            manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
        return manager

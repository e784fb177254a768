"""What the Redis broker and result backend share: URL parsing, connection pools, batched
command execution with Lua scripts, reconnection and the translation of driver errors.

Each thread has its own connection for short calls: a bare hiredis connection (:class:`Wire`)
on plain TCP, else one made by redis-py's ``ConnectionPool`` (TLS, Unix sockets). Waits use
a second connection: the thread's own second ``Wire``, else one from a pool kept for waits.
A forked child opens its own connections and never closes its parent's. Each call sends its
commands in one round trip. When the server cannot be reached (a restart,
a dead connection) a call is tried again, with a growing pause, for up to ``retry_window``
seconds (transport option, default 5): always when nothing was sent yet, and only for
idempotent calls when the connection broke after sending. What still fails is raised as
:class:`OperationalError` naming the URL with its password masked.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..exceptions import ImproperlyConfigured, OperationalError
from ..utils.io import ReadableCheck, Waker, fd_readable, wait_readable
from ..utils.urls import safe_url

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.exceptions import AuthenticationError, NoScriptError, RedisError, ResponseError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installation
    raise ImproperlyConfigured(
        "redis:// URLs need the redis package: pip install 'celeriac[redis]'"
    ) from exc
try:
    import hiredis
except ModuleNotFoundError:  # pragma: no cover - hiredis comes with celeriac[redis]
    hiredis = None  # type: ignore[assignment]

__all__ = ["DEFAULT_PREFIX", "RedisClient", "ResponseError", "Script", "never", "pack"]

T = TypeVar("T")
Command = Sequence[Any]

DEFAULT_PREFIX = "celeriac:"
DEFAULT_RETRY_WINDOW = 5.0
WAIT_GRACE = 5.0  # how much longer than its timeout a BLPOP may take to answer
#: Connection settings used unless the transport options give them.
DEFAULT_CONNECTION: dict[str, Any] = {
    "socket_timeout": 30.0,
    "socket_connect_timeout": 10.0,
    "socket_keepalive": True,
}
#: Transport options handed to redis-py's connections as they are.
CONNECTION_OPTIONS = (
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "health_check_interval",
    "max_connections",
    "client_name",
    "username",
    "password",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
)
_RETRIED = (RedisConnectionError, RedisTimeoutError)


class _NotSent(Exception):
    """No connection could be had, so nothing was sent: always safe to try again."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def pack(*args: Any, more: int = 0) -> bytes:
    """The command ``args`` in the protocol's wire form; with ``more``, that many further
    arguments (bulk strings) are left for the caller to append."""
    parts = [b"*%d\r\n" % (len(args) + more)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int | float):
            arg = repr(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(parts)


def never() -> bool:
    """A ``stop`` for :meth:`RedisClient.call` that allows no retry at all."""
    return True


class Script:
    """A Lua script, run by its SHA1 digest and loaded on the server when missing."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def evalsha(self, keys: Sequence[Any], args: Sequence[Any]) -> Command:
        """The command that runs it by digest."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def eval(self, keys: Sequence[Any], args: Sequence[Any]) -> Command:
        """The command that runs it from source (and caches it on the server)."""
        return ("EVAL", self.source, len(keys), *keys, *args)


class Wire:
    """A bare RESP2 connection on hiredis for short calls.

    It does what redis-py's connection does on the hot path (pack, send, parse), without its
    layers, which cost several times the round trip itself; it has the same methods the
    calls and waits here use (``connect``, ``send_command``, ``send_packed_command``,
    ``pack_commands``, ``read_response``, ``can_read``, ``disconnect``) and raises redis-py's
    exceptions. Plain TCP only: TLS and Unix-socket URLs use redis-py's connections."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.host = str(kwargs.get("host", "localhost"))
        self.port = int(kwargs.get("port", 6379))
        self.db = int(kwargs.get("db") or 0)
        self.username = kwargs.get("username")
        self.password = kwargs.get("password")
        self.client_name = kwargs.get("client_name")
        self.timeout = kwargs.get("socket_timeout")
        self.connect_timeout = kwargs.get("socket_connect_timeout") or self.timeout
        self.keepalive = bool(kwargs.get("socket_keepalive"))
        self._sock: socket.socket | None = None
        self.client_id: int | None = None  # asked for by waits (CLIENT UNBLOCK needs it)
        self._readable: ReadableCheck | None = None
        self._reader: Any = None
        self._buffer = bytearray(65536)
        self.pid = os.getpid()

    @staticmethod
    def usable_for(pool: Any) -> bool:
        return pool.connection_class is redis.Connection and hiredis is not None

    def connect(self) -> None:
        if self._sock is not None:
            return
        try:
            sock = socket.create_connection((self.host, self.port), self.connect_timeout)
        except TimeoutError as exc:
            raise RedisTimeoutError(f"Timeout connecting to {self.host}:{self.port}") from exc
        except OSError as exc:
            raise RedisConnectionError(
                f"Error connecting to {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.keepalive:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.settimeout(self.timeout)
        self._sock, self._reader, self.pid = sock, hiredis.Reader(), os.getpid()
        self.client_id = None
        self._readable = ReadableCheck(sock.fileno())
        hello: list[Command] = []
        if self.password is not None:
            auth = [self.username, self.password] if self.username else [self.password]
            hello.append(("AUTH", *auth))
        if self.db:
            hello.append(("SELECT", self.db))
        if self.client_name:
            hello.append(("CLIENT", "SETNAME", self.client_name))
        try:
            if hello:
                self.send_packed_command(self.pack_commands(hello))
                for _ in hello:
                    self.read_response()
        except ResponseError as exc:
            self.disconnect()
            text = str(exc)
            if "WRONGPASS" in text or "invalid password" in text or "NOAUTH" in text:
                raise AuthenticationError(text) from None
            raise

    def stale(self) -> bool:
        """Connected, but with something to read between calls: closed by the server."""
        return self._sock is not None and self._readable is not None and self._readable()

    def disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                if os.getpid() == self.pid:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    @staticmethod
    def pack_commands(commands: Sequence[Command]) -> bytes:
        if len(commands) == 1:
            return hiredis.pack_command(tuple(commands[0]))
        return b"".join([hiredis.pack_command(tuple(c)) for c in commands])

    def send_packed_command(self, data: bytes) -> None:
        if self._sock is None:
            self.connect()
        assert self._sock is not None
        try:
            self._sock.sendall(data)
        except TimeoutError as exc:
            self.disconnect()
            raise RedisTimeoutError("Timeout writing to socket") from exc
        except OSError as exc:
            self.disconnect()
            raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc

    def send_command(self, *args: Any) -> None:
        self.send_packed_command(hiredis.pack_command(args))

    def can_read(self, timeout: float = 0) -> bool:
        """A reply is buffered, or the socket has bytes (or closed) within ``timeout``."""
        if self._sock is None:
            self.connect()
        if self._reader.has_data():
            return True
        assert self._readable is not None
        return self._readable(timeout)

    def read_response(self, push_request: bool = False) -> Any:
        reader, sock, buf = self._reader, self._sock, self._buffer
        assert reader is not None and sock is not None
        reply = reader.gets()
        while reply is False:
            try:
                n = sock.recv_into(buf)
            except TimeoutError as exc:
                self.disconnect()
                raise RedisTimeoutError("Timeout reading from socket") from exc
            except OSError as exc:
                self.disconnect()
                raise RedisConnectionError(f"Error while reading from socket: {exc}") from exc
            if not n:
                self.disconnect()
                raise RedisConnectionError("Connection closed by server.")
            reader.feed(buf, 0, n)
            reply = reader.gets()
        if isinstance(reply, hiredis.ReplyError):
            text = str(reply)
            raise NoScriptError(text) if text.startswith("NOSCRIPT") else ResponseError(text)
        return reply


def connection_socket(conn: Any) -> socket.socket | None:
    """The socket of a redis-py connection, if it is connected."""
    sock = getattr(conn, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _connection_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(DEFAULT_CONNECTION)
    kwargs.update({k: options[k] for k in CONNECTION_OPTIONS if k in options})
    kwargs["retry"] = Retry(NoBackoff(), 0)  # retries are ours: see RedisClient.call
    kwargs["protocol"] = 2  # the replies (and pub/sub messages) every redis-py 5+ reads alike
    return kwargs


def _pool(url: str, kwargs: dict[str, Any]) -> redis.ConnectionPool:
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss"):
        raise ImproperlyConfigured(
            f"unsupported Redis URL {safe_url(url)!r}: use redis:// or rediss:// (TLS)"
        )
    try:
        return redis.ConnectionPool.from_url(url, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"bad Redis URL {safe_url(url)!r}: {exc}") from None


class RedisClient:
    """Connections to one Redis URL: a pool for commands and one for blocking reads."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        options = options or {}
        self.url = url
        self.safe_url = safe_url(url)
        try:
            self._password = urlsplit(url).password or options.get("password") or None
        except ValueError:
            raise ImproperlyConfigured(f"bad Redis URL {self.safe_url!r}") from None
        self.prefix = str(options.get("key_prefix", DEFAULT_PREFIX))
        self.retry_window = float(options.get("retry_window", DEFAULT_RETRY_WINDOW))
        kwargs = _connection_kwargs(options)
        self.pool = _pool(url, kwargs)
        # waits (BLPOP, SUBSCRIBE) on their own connections, never starving short calls
        self.blocking_pool = _pool(url, kwargs)
        self.db = int(self.pool.connection_kwargs.get("db") or 0)
        self._local = threading.local()
        self._wire = Wire.usable_for(self.pool)
        self._generation = 0
        self._owned: weakref.WeakSet[Any] = weakref.WeakSet()

    # -- connections ----------------------------------------------------------------------

    @contextmanager
    def wait_connection(self) -> Iterator[Any]:
        """A connection for one wait (BLPOP, SUBSCRIBE), never the one short calls use;
        disconnected (and reconnected on next use) if the wait fails. With a bare connection
        it is this thread's own for waits; otherwise one from the blocking pool."""
        if self._wire:
            conn = self._own_connection("blocking")
            try:
                yield conn
            except BaseException:
                conn.disconnect()
                raise
            return
        pool = self.blocking_pool
        try:
            conn = pool.get_connection()
        except _RETRIED as exc:
            raise _NotSent(exc) from exc
        try:
            yield conn
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    def _own_connection(self, slot: str = "held") -> Any:
        """This thread's connection for short calls (``held``) or for waits (``blocking``)."""
        held = getattr(self._local, slot, None)
        owner = (os.getpid(), self._generation)
        if held is None or held[1] != owner:
            conn = Wire(self.pool.connection_kwargs) if self._wire else self.pool.make_connection()
            held = (conn, owner)
            setattr(self._local, slot, held)
            self._owned.add(held[0])
        conn = held[0]
        # an idle connection has nothing to read unless it was closed
        if type(conn) is Wire:
            if conn.stale():
                conn.disconnect()
            connected = conn._sock is not None
        else:
            sock = connection_socket(conn)
            if sock is not None and fd_readable(sock.fileno()):
                conn.disconnect()
                sock = None
            connected = sock is not None
        if not connected:
            try:
                conn.connect()
            except _RETRIED as exc:
                raise _NotSent(exc) from exc
        return conn

    def close(self) -> None:
        """Close this process's connections (they reopen on next use)."""
        self._generation += 1
        for conn in list(self._owned):
            conn.disconnect()
        self._owned.clear()
        self.pool.disconnect()
        self.blocking_pool.disconnect(inuse_connections=False)

    def close_blocking(self) -> None:
        """Close the connections used for waiting (a fetch that was woken by close())."""
        held = getattr(self._local, "blocking", None)
        if held is not None:
            held[0].disconnect()
        self.blocking_pool.disconnect()

    # -- calls ----------------------------------------------------------------------------

    def call(
        self,
        attempt: Callable[[], T],
        idempotent: bool = True,
        stop: Callable[[], bool] | None = None,
    ) -> T:
        """Run ``attempt`` (which uses :meth:`connection`), trying again while the server
        cannot be reached, for up to ``retry_window`` seconds. A call that is not
        ``idempotent`` is tried again only when nothing was sent; ``stop`` ends the retries
        early (``never`` for calls whose callers have their own retry policy). Driver errors
        are raised as OperationalError."""
        give_up = time.monotonic() + self.retry_window
        pause = 0.05
        while True:
            try:
                return attempt()
            except _NotSent as exc:
                failure: Exception = exc.cause
                if isinstance(failure, AuthenticationError):  # waiting will not help
                    raise self.error(failure) from failure
            except _RETRIED as exc:
                if not idempotent:
                    raise self.error(exc) from exc
                failure = exc
            except RedisError as exc:
                raise self.error(exc) from exc
            if time.monotonic() + pause > give_up or (stop is not None and stop()):
                raise self.error(failure) from failure
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def execute(
        self,
        *commands: Command,
        idempotent: bool = True,
        stop: Callable[[], bool] | None = None,
    ) -> list[Any]:
        """Send ``commands`` in one round trip and return their replies."""
        return self.call(lambda: self._send(commands), idempotent, stop)

    def execute_packed(
        self,
        data: bytes,
        count: int,
        idempotent: bool = True,
        stop: Callable[[], bool] | None = None,
    ) -> list[Any]:
        """Send ``count`` commands already packed (see :func:`pack`); their replies."""
        return self.call(
            lambda: self._on_own_connection(lambda conn: self._replies(conn, data, count)),
            idempotent,
            stop,
        )

    def command(self, *args: Any, idempotent: bool = True) -> Any:
        """Run one command and return its reply."""
        return self.execute(args, idempotent=idempotent)[0]

    def run(
        self,
        script: Script,
        keys: Sequence[Any],
        args: Sequence[Any],
        idempotent: bool = True,
        stop: Callable[[], bool] | None = None,
    ) -> Any:
        """Run a Lua script (EVALSHA, loading it when the server does not know it yet)."""
        return self.call(lambda: self._eval(script, keys, args), idempotent, stop)

    def run_many(
        self,
        calls: Sequence[tuple[Script, Sequence[Any], Sequence[Any]]],
        stop: Callable[[], bool] | None = None,
    ) -> list[Any]:
        """Run several idempotent scripts, ``(script, keys, args)`` each, in one round trip;
        their replies in order."""
        return self.call(lambda: self._eval_many(calls), True, stop)

    def _send(self, commands: Sequence[Command]) -> list[Any]:
        return self._on_own_connection(
            lambda conn: self._replies(conn, conn.pack_commands(commands), len(commands))
        )

    def _eval(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return self._eval_many([(script, keys, args)])[0]

    def _eval_many(self, calls: Sequence[tuple[Script, Sequence[Any], Sequence[Any]]]) -> Any:
        def work(conn: Any) -> list[Any]:
            commands = [script.evalsha(keys, args) for script, keys, args in calls]
            replies = self._exchange(conn, conn.pack_commands(commands), len(commands))
            for i, reply in enumerate(replies):
                if isinstance(reply, NoScriptError):  # a new or restarted server
                    script, keys, args = calls[i]  # EVAL caches it for the next EVALSHA
                    retry = script.eval(keys, args)
                    replies[i] = self._replies(conn, conn.pack_commands([retry]), 1)[0]
                elif isinstance(reply, ResponseError):
                    raise reply
            return replies

        return self._on_own_connection(work)

    def _on_own_connection(self, work: Callable[[Any], T]) -> T:
        """``work(conn)`` on this thread's connection, which is dropped if the call broke."""
        conn = self._own_connection()
        try:
            return work(conn)
        except ResponseError:
            raise  # an answer: the connection is fine
        except BaseException:
            conn.disconnect()
            raise

    @classmethod
    def _replies(cls, conn: Any, packed: Any, count: int) -> list[Any]:
        """The replies to ``count`` packed commands; the first error reply is raised (after
        all are read)."""
        replies = cls._exchange(conn, packed, count)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    @staticmethod
    def _exchange(conn: Any, packed: Any, count: int) -> list[Any]:
        """Send ``count`` packed commands in one write and read every reply, so the
        connection stays in step; error replies are returned in their places."""
        conn.send_packed_command(packed)
        replies: list[Any] = []
        for _ in range(count):
            try:
                replies.append(conn.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies

    # -- waiting --------------------------------------------------------------------------

    def blpop(
        self,
        keys: Sequence[str],
        seconds: float,
        waker: Waker,
        raise_errors: bool,
        then: tuple[Script, Sequence[Any], Sequence[Any]] | None = None,
    ) -> tuple[bool, Any]:
        """Wait in ``BLPOP`` on ``keys`` for up to ``seconds`` (on a connection of its own),
        returning early when a token is pushed or ``waker`` wakes. ``then``, a script call,
        is sent along and runs as soon as the BLPOP returns, saving a round trip; its reply
        comes back (None when it did not run). Returns ``(False, None)`` when the connection
        failed, unless ``raise_errors`` (then it raises OperationalError)."""
        reader = waker.reader()
        if waker.woken:
            return True, None
        limit = seconds + WAIT_GRACE
        try:
            with self.wait_connection() as conn:
                # a bare connection can be unblocked by its id, so the script is not lost
                pipelined = then is not None and type(conn) is Wire
                commands: list[Command] = [("BLPOP", *keys, f"{max(seconds, 0.001):.3f}")]
                if pipelined:
                    if conn.client_id is None:
                        conn.send_command("CLIENT", "ID")
                        conn.client_id = int(conn.read_response())
                    script, script_keys, script_args = then  # type: ignore[misc]
                    commands.append(script.evalsha(script_keys, script_args))
                conn.send_packed_command(conn.pack_commands(commands))
                sock = connection_socket(conn)
                if sock is None:
                    raise RedisConnectionError("the connection closed before BLPOP was sent")
                readable = wait_readable([sock, reader], limit)
                if sock.fileno() not in readable:
                    if reader.fileno() not in readable:
                        raise RedisTimeoutError(f"no answer to BLPOP within {limit:.0f}s")
                    waker.drain()
                    if not pipelined or not self._unblock(conn.client_id, sock, limit):
                        conn.disconnect()  # abandons the pending BLPOP
                        return True, None
                conn.read_response()
                if not pipelined:
                    return True, None
                try:
                    return True, conn.read_response()
                except NoScriptError:
                    return True, None
        except (_NotSent, *_RETRIED) as exc:
            cause = exc.cause if isinstance(exc, _NotSent) else exc
            if raise_errors:
                raise self.error(cause) from cause
            return False, None
        except RedisError as exc:
            raise self.error(exc) from exc

    def _unblock(self, client_id: int | None, sock: socket.socket, limit: float) -> bool:
        """End the blocking command of connection ``client_id`` (on ``sock``) as if it timed
        out; whether its reply is there to read. A command the server has not taken up yet
        (it came on another connection, and may be read later) is unblocked again shortly."""
        if client_id is None:
            return False
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                unblocked = self.call(
                    lambda: self._send([("CLIENT", "UNBLOCK", client_id)]), stop=never
                )[0]
            except OperationalError:
                return False
            if wait_readable([sock], max(deadline - time.monotonic(), 0) if unblocked else 0.01):
                return True  # unblocked, or answered anyway
            if unblocked:
                return False
        return False

    # -- errors ---------------------------------------------------------------------------

    def error(self, exc: BaseException) -> OperationalError:
        """``exc`` as an OperationalError naming the server (never its password)."""
        message = " ".join(str(exc).split()) or type(exc).__name__
        if self._password:
            message = message.replace(str(self._password), "***")
        return OperationalError(f"{self.safe_url}: {message}")

"""A real GhostCache server process (gunicorn, several workers) on loopback."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """Starts `ghostcache serve` with its own data folder; stop(), kill() and start() again."""

    def __init__(self, data_dir: Path, workers: int = 2, **settings: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.env = {
            **os.environ,
            "GHOSTCACHE_DATA_DIR": str(data_dir),
            "GHOSTCACHE_PORT": str(self.port),
            "GHOSTCACHE_WORKERS": str(workers),
            "GHOSTCACHE_PURGE_INTERVAL_SECONDS": "0",
            "GHOSTCACHE_RATELIMIT": "off",
            "GHOSTCACHE_STREAM_SECONDS": "5",
            **{f"GHOSTCACHE_{k.upper()}": v for k, v in settings.items()},
        }
        if "database_url" not in settings:
            from tests.databases import database_for_test

            self.env["GHOSTCACHE_DATABASE_URL"] = database_for_test()
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        """What starts the server (a subclass may start it another way)."""
        return [sys.executable, "-c", "from ghostcache.cli import main; main()", "serve"]

    def start(self, timeout: float = 30) -> LiveServer:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command(),
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early; see {self.log_path}")
            try:
                urllib.request.urlopen(self.url + "/csrf", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"server did not answer within {timeout}s; see {self.log_path}")

    def _signal_group(self, sig: int) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Graceful stop (SIGTERM)."""
        self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        """Hard kill of the master and every worker (SIGKILL), as a crash would."""
        self._signal_group(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- which worker process serves a connection ----------------------------------------

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the children of the master (`ghostcache serve` itself)."""
        assert self.process is not None, "server not started"
        return worker_pids(self.process.pid)

    def worker_for(self, client_port: int, timeout: float = 5.0) -> int:
        """The pid of the worker holding the server side of the client's connection from
        127.0.0.1:client_port. Waits for the accept (a connection still in the listen queue
        belongs to no worker yet); raises LookupError after timeout."""
        assert self.process is not None, "server not started"
        deadline = time.monotonic() + timeout
        while True:
            owner = connection_owners(self.process.pid, self.port).get(client_port)
            if owner is not None:
                return owner
            if time.monotonic() >= deadline:
                raise LookupError(
                    f"no worker of {self.worker_pids()} holds the connection from port {client_port}"
                )
            time.sleep(0.02)


def worker_pids(master_pid: int) -> list[int]:
    """Child processes of master_pid, from /proc/<pid>/task/<tid>/children."""
    children: set[int] = set()
    try:
        tasks = list(Path(f"/proc/{master_pid}/task").iterdir())
    except OSError:
        return []
    for task in tasks:
        try:
            children.update(int(pid) for pid in (task / "children").read_text().split())
        except OSError:
            continue  # the thread ended meanwhile
    return sorted(children)


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process pid holds open (/proc/<pid>/fd -> socket:[inode])."""
    inodes: set[int] = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def accepted_sockets(server_port: int) -> dict[int, int]:
    """Connections accepted on server_port: the client's port -> the server-side socket's
    inode, from /proc/net/tcp and /proc/net/tcp6 (local port == server_port, remote port
    set, inode known)."""
    found: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            inode = int(fields[9])
            if local_port == server_port and remote_port and inode:
                found[remote_port] = inode
    return found


def connection_owners(master_pid: int, server_port: int) -> dict[int, int]:
    """For every connection to server_port held by a worker of master_pid:
    the client's local port -> that worker's pid."""
    owner_of_inode = {inode: pid for pid in worker_pids(master_pid) for inode in socket_inodes(pid)}
    return {
        port: owner_of_inode[inode]
        for port, inode in accepted_sockets(server_port).items()
        if inode in owner_of_inode
    }


# -- a raw HTTP/1.1 client: plain sockets, many at once, driven by `selectors` ------------


def http_request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """The bytes of one HTTP/1.1 request (Host added; Content-Length when a body is given)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    head = dict(headers or {})
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in head):
        head["Content-Length"] = str(len(body))
    lines += [f"{k}: {v}" for k, v in head.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class HttpReader:
    """Parses one HTTP/1.1 response as its bytes arrive: status, headers, and the body
    de-chunked. `complete` once the body is whole (last chunk, Content-Length reached)."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body = b""
        self.complete = False
        self._buffer = b""
        self._chunked = False
        self._length: int | None = None
        self._chunk_left: int | None = None  # bytes of the current chunk still to come
        self._head_done = False

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if not self._head_done:
            self._parse_head()
        if self._head_done and not self.complete:
            self._parse_body()

    def finish(self) -> None:
        """The connection ended: a body delimited by the connection's close is now whole."""
        if self._head_done and not self._chunked and self._length is None:
            self.complete = True

    def json(self) -> object:
        return json.loads(self.body)

    def _parse_head(self) -> None:
        while self.status is None or 100 <= self.status < 200:  # skip any 100 Continue
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self._buffer = self._buffer[:end].decode("latin-1"), self._buffer[end + 4 :]
            status_line, *lines = head.split("\r\n")
            self.status = int(status_line.split()[1])
            self.headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
        self._head_done = True
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        if not self._chunked and "content-length" in self.headers:
            self._length = int(self.headers["content-length"])
        if self.status in (204, 304) or self._length == 0:
            self.complete = True

    def _parse_body(self) -> None:
        if not self._chunked:
            if self._length is None:
                self.body, self._buffer = self.body + self._buffer, b""
                return
            take = self._length - len(self.body)
            self.body, self._buffer = self.body + self._buffer[:take], self._buffer[take:]
            self.complete = len(self.body) >= self._length
            return
        while not self.complete:
            if self._chunk_left is None:
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    return
                size = int(self._buffer[:end].split(b";")[0], 16)
                self._buffer = self._buffer[end + 2 :]
                if size == 0:
                    self.complete = True  # trailers, if any, are of no interest
                    return
                self._chunk_left = size
            if len(self._buffer) < self._chunk_left + 2:
                return
            self.body += self._buffer[: self._chunk_left]
            self._buffer = self._buffer[self._chunk_left + 2 :]
            self._chunk_left = None


class RawConnection:
    """One TCP connection to 127.0.0.1:port carrying one request, read without blocking."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.local_port = self.sock.getsockname()[1]
        self.response = HttpReader()
        self.eof = False  # the server closed (or reset) the connection
        self.error: OSError | None = None
        self.opened_at = time.monotonic()
        self.ended_at: float | None = None  # when the response completed or the connection ended
        self.closed_at: float | None = None  # when the server closed (or reset) the connection
        self.sent = 0

    def send(self, data: bytes) -> None:
        """Send all of data (blocking, with the socket's timeout), then go non-blocking."""
        self.sock.settimeout(5.0)
        self.sock.sendall(data)
        self.sent += len(data)
        self.sock.setblocking(False)

    def send_some(self, data: bytes) -> int:
        """Send what fits without blocking; 0 when the buffer is full or the peer has gone."""
        try:
            count = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:  # the server gave up on us: read whatever it said first
            for _ in range(100):
                if not self.read_available():
                    break
            if not self.eof:
                self._end(exc)
            return 0
        self.sent += count
        return count

    def read_available(self) -> bool:
        """Read what has arrived; True if anything happened (data, close, reset)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return False
        except OSError as exc:
            self._end(exc)
            return True
        if not data:
            self._end(None)
            return True
        self.response.feed(data)
        if self.response.complete and self.ended_at is None:
            self.ended_at = time.monotonic()
        return True

    def wait(self, until, timeout: float) -> bool:
        """Read until until(self) is true, the connection ends, or timeout; returns until(self)."""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            while not until(self) and not self.eof and time.monotonic() < deadline:
                if selector.select(max(0.0, min(0.1, deadline - time.monotonic()))):
                    self.read_available()
        return until(self)

    @property
    def ended(self) -> bool:
        """The response is over: the last chunk (or the whole body) came, or the connection ended."""
        return self.response.complete or self.eof

    def text(self) -> str:
        return self.response.body.decode("utf-8", errors="replace")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _end(self, error: OSError | None) -> None:
        self.eof, self.error, self.closed_at = True, error, time.monotonic()
        self.response.finish()
        if self.ended_at is None:
            self.ended_at = time.monotonic()

    def describe(self) -> str:
        state = "ended" if self.ended else "open"
        how = f", {self.error!r}" if self.error else (", closed by the server" if self.eof else "")
        body = self.text()[:300]
        return f"port {self.local_port}: status {self.response.status}, {state}{how}, body {body!r}"


class ConnectionPool:
    """Many RawConnections read together by one selector (no thread per connection)."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.connections: list[RawConnection] = []

    def add(self, connection: RawConnection) -> RawConnection:
        connection.sock.setblocking(False)
        self.selector.register(connection.sock, selectors.EVENT_READ, connection)
        self.connections.append(connection)
        return connection

    def pump(self, seconds: float) -> None:
        """Read whatever arrives for `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._read_once(min(left, 0.1))

    def wait(self, until, timeout: float) -> bool:
        """Read until until() is true (checked after every read) or timeout; returns until()."""
        deadline = time.monotonic() + timeout
        while not until() and (left := deadline - time.monotonic()) > 0:
            self._read_once(min(left, 0.1))
        return until()

    def _read_once(self, timeout: float) -> None:
        if not self.selector.get_map():
            time.sleep(timeout)  # every connection has ended: nothing to wait on
            return
        for key, _ in self.selector.select(timeout):
            connection: RawConnection = key.data
            connection.read_available()
            if connection.eof:
                self.selector.unregister(connection.sock)

    def remove(self, connection: RawConnection) -> None:
        """Stop reading connection and close it."""
        try:
            self.selector.unregister(connection.sock)
        except (KeyError, ValueError):
            pass  # ended already
        connection.close()
        self.connections.remove(connection)

    def close(self) -> None:
        for connection in self.connections:
            connection.close()
        self.connections.clear()
        self.selector.close()

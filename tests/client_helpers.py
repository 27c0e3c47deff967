"""Helpers for the command-line client's tests: run `python -m ghostcache.client` as a
user would (a subprocess with its own profile folder), and a loopback HTTP proxy that
forwards to a live server and may rewrite what it answers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"
DPASS = "destroy everything now"
RECOVERY_LINE = re.compile(r"^ {4}([A-Z2-7]{4}(?:-[A-Z2-7]{1,4})+)$", re.MULTILINE)


def client_env() -> dict[str, str]:
    """The environment for a client subprocess: this worktree's package, no GHOSTCACHE_*
    settings leaking in from the test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHOSTCACHE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def client_command(server: str, profile: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ghostcache.client", "--server", server, "--profile", str(profile), *args]


def run_client(
    server: str, profile: Path, *args: str, stdin: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """One client command, in a subprocess running this worktree's package."""
    command = client_command(server, profile, *args)
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=timeout, env=client_env()
    )


class User:
    """One person with their own client profile folder."""

    def __init__(self, server: str, home: Path, name: str) -> None:
        self.server = server
        self.name = name
        self.profile = home / f"profile-{name}"
        self.recovery: str | None = None

    def run(self, *args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_client(self.server, self.profile, *args, stdin=stdin, timeout=timeout)

    def ok(self, *args: str, stdin: str = "", timeout: float = 60) -> str:
        """Run a command that must succeed; its stdout."""
        done = self.run(*args, stdin=stdin, timeout=timeout)
        assert done.returncode == 0, f"{args}: rc {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    def signup(self) -> User:
        """Register and sign in, through the client."""
        self.ok("register", self.name, "--password-stdin", stdin=f"{PASSWORD}\n{DPASS}\n")
        self.ok("login", self.name, "--password-stdin", stdin=f"{PASSWORD}\n")
        return self

    def signup_existing(self) -> User:
        """Sign in to an account registered already (another profile or server URL)."""
        self.ok("login", self.name, "--password-stdin", stdin=f"{PASSWORD}\n")
        return self

    def setup_e2ee(self) -> str:
        """`e2ee setup`; returns the recovery key it printed."""
        out = self.ok("e2ee", "setup", "--password-stdin", stdin=f"yes\n{PASSWORD}\n")
        found = RECOVERY_LINE.findall(out)
        assert len(found) == 1, out
        self.recovery = found[0]
        return found[0]


def contacts(a: User, b: User) -> None:
    """a asks b to connect, b accepts, both through the client."""
    a.ok("connect", b.name)
    assert f"from {a.name}" in b.ok("contacts")
    b.ok("accept", a.name)


def http_session(server: str, name: str) -> tuple[requests.Session, dict]:
    """A plain JSON session as `name` (for what the server itself shows)."""
    http = requests.Session()
    http.headers["Accept"] = "application/json"
    token = http.get(server + "/csrf", timeout=10).json()["csrf_token"]
    login = http.post(
        server + "/login",
        json={"username": name, "password": PASSWORD},
        headers={"X-CSRFToken": token},
        timeout=10,
    )
    assert login.status_code == 200, login.text
    return http, login.json()


Rewrite = Callable[[str, str, bytes], bytes]  # (method, path, body) -> body
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


class Proxy:
    """A threaded HTTP server on 127.0.0.1 that forwards every request to `upstream`
    and passes each answer's body through `rewrite` (which may be changed at any time).
    Not for streams: it reads each answer whole."""

    def __init__(self, upstream: str, rewrite: Rewrite | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.rewrite: Rewrite = rewrite or (lambda method, path, body: body)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers["Accept-Encoding"] = "identity"
                answer = requests.request(
                    self.command,
                    proxy.upstream + self.path,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=30,
                )
                content = proxy.rewrite(self.command, self.path, answer.content)
                self.send_response(answer.status_code)
                for name in set(answer.raw.headers.keys()):
                    if name.lower() not in HOP_BY_HOP:
                        for value in answer.raw.headers.getlist(name):
                            self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        return Handler

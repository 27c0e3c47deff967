"""A real GhostCache server process (gunicorn, several workers) on loopback."""

from __future__ import annotations

import os
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
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> LiveServer:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from ghostcache.cli import main; main()", "serve"],
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

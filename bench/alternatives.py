"""The serving models considered, side by side: 300 idle chat streams on gthread (a thread
per connection) and on gevent (the chosen model). Reports how many opened, server memory
per stream, and whether `GET /login` still answers with them open.

    python -m bench.alternatives

Not part of `make bench`: it starts gunicorn's gthread worker directly, which GhostCache
itself no longer offers (docs/ARCHITECTURE.md says why)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench.common import StreamHub, create_users, raise_nofile_limit, workers_rss_kb
from tests.live import LiveServer

STREAMS = 300


class GthreadServer(LiveServer):
    """The same app under gunicorn's threaded worker, `threads` per worker."""

    def __init__(self, data_dir: Path, threads: int, **settings: str) -> None:
        super().__init__(data_dir, 2, **settings)
        self.threads = threads

    def command(self) -> list[str]:
        gunicorn = [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "gthread",
            "--threads",
            str(self.threads),
            "-w",
            "2",
        ]
        return [*gunicorn, "-b", f"127.0.0.1:{self.port}", "ghostcache.wsgi:app"]

    def start(self, timeout: float = 60) -> GthreadServer:
        migrate = [sys.executable, "-c", "from ghostcache.cli import main; main()", "migrate"]
        with open(self.log_path, "ab") as log:  # `ghostcache serve` would migrate first
            subprocess.run(migrate, env=self.env, check=True, stdout=log, stderr=subprocess.STDOUT)
        super().start(timeout)
        return self


def _login_page(url: str) -> str:
    started = time.perf_counter()
    try:
        urllib.request.urlopen(url + "/login", timeout=10).read()
    except OSError as exc:
        return f"no answer in 10 s ({exc.__class__.__name__})"
    return f"{(time.perf_counter() - started) * 1000:.0f} ms"


def measure(name: str, server: LiveServer) -> str:
    """Open STREAMS idle streams on a started server; one line of results."""
    users = create_users(server.url, "alt", 3)
    before = workers_rss_kb(server)
    hub = StreamHub(server.url)
    try:
        streams = hub.open([users[i % len(users)] for i in range(STREAMS)], reconnect=False)
        opened = hub.wait_live(streams, timeout=30)
        time.sleep(1)
        per_stream = (workers_rss_kb(server) - before) / max(opened, 1)
        return (
            f"{name}: {opened}/{STREAMS} streams open, {per_stream:.1f} KB each, "
            f"GET /login meanwhile: {_login_page(server.url)}"
        )
    finally:
        hub.close()


def main() -> None:
    raise_nofile_limit()
    settings = {"stream_seconds": "600", "streams_per_user": "100"}
    models: list[tuple[str, Callable[[Path], LiveServer]]] = [
        ("gthread 2 x 8 threads (the old default)", lambda d: GthreadServer(d, 8, **settings)),
        ("gthread 2 x 170 threads", lambda d: GthreadServer(d, 170, **settings)),
        ("gevent 2 workers (chosen)", lambda d: LiveServer(d, 2, **settings)),
    ]
    for name, make in models:
        with tempfile.TemporaryDirectory(prefix="ghostcache-alt-") as tmp:
            server = make(Path(tmp) / "data").start()
            try:
                print(measure(name, server), flush=True)
            finally:
                server.stop()


if __name__ == "__main__":
    main()

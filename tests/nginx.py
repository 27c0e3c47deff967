"""nginx for tests: the binary, a whole nginx.conf around a site, and a foreground run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light): the sample is not checked")
    return found


def wrapper(folder: Path, http_block: str, access_log: Path | None = None) -> Path:
    """A whole nginx.conf around `http_block`, with every path nginx writes in `folder`.
    `access_log`: an http-wide access log, which a site must switch off to keep it empty."""
    temp = "\n".join(
        f"    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    if access_log is not None:
        temp += f"\n    access_log {access_log};"
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers need nothing of root's here, but
    # as nobody they could not reach temporary folders under a private test folder
    conf = folder / "nginx.conf"
    conf.write_text(
        f"{user}pid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} warn;\n"
        f"events {{ worker_connections 256; }}\nhttp {{\n{temp}\n{http_block}\n}}\n"
    )
    return conf


def check(conf: Path, folder: Path) -> subprocess.CompletedProcess:
    """`nginx -t` on conf."""
    return subprocess.run(
        [nginx_binary(), "-t", "-c", str(conf), "-e", str(folder / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )


def start(conf: Path, folder: Path) -> subprocess.Popen:
    """nginx in the foreground with conf (its master in a process group of its own)."""
    return subprocess.Popen(
        [nginx_binary(), "-c", str(conf), "-e", str(folder / "error.log"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    """Graceful stop (SIGQUIT), then SIGKILL to the group after 10 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGQUIT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

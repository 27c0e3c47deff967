"""Upload: streaming encryption keeps server memory flat and runs near raw age speed.

Starts a real server (one worker) on loopback, uploads a small and a large file
as a stream, and reads the worker's peak resident memory (VmHWM) after each.
Compares upload throughput against raw pyrage encryption measured in the same
run. Ratios are the result; absolute numbers are context only.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

import pyrage
import requests
from pyrage import x25519

from tests.live import LiveServer

MB = 1024 * 1024
SMALL_MB, LARGE_MB = 5, 50
BLOCK = os.urandom(MB)


def _body(boundary: str, token: str, size_mb: int):
    """A multipart body generated on the fly, never held whole in memory."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
        f'{token}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="bench.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    for _ in range(size_mb):
        yield BLOCK
    yield f"\r\n--{boundary}--\r\n".encode()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def _login(url: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    token = session.get(url + "/csrf").json()["csrf_token"]
    creds = {"username": "bench", "password": "benchmark-password", "d_pass": "destroy-password"}
    session.post(url + "/register", json=creds, headers={"X-CSRFToken": token})
    answer = session.post(url + "/login", json=creds, headers={"X-CSRFToken": token}).json()
    return session, answer["csrf_token"]


def _upload(url: str, session: requests.Session, token: str, size_mb: int) -> float:
    boundary = "benchboundary7f3a"
    started = time.perf_counter()
    answer = session.post(
        url + "/file/upload",
        data=_body(boundary, token, size_mb),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Accept": "application/json"},
        timeout=300,
    )
    elapsed = time.perf_counter() - started
    assert answer.status_code == 201, answer.text
    assert answer.json()["size"] == size_mb * MB
    return elapsed


def _raw_age_seconds(size_mb: int) -> float:
    recipient = x25519.Identity.generate().to_public()
    source = io.BytesIO(BLOCK * size_mb)
    started = time.perf_counter()
    pyrage.encrypt_io(source, io.BytesIO(), [recipient])
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp) / "data", workers=1, max_upload_mb="200").start()
        try:
            session, token = _login(server.url)
            worker = _worker_pid(server.process.pid)
            baseline = _peak_rss_mb(worker)
            small_s = _upload(server.url, session, token, SMALL_MB)
            small_peak = _peak_rss_mb(worker)
            large_s = _upload(server.url, session, token, LARGE_MB)
            large_peak = _peak_rss_mb(worker)
        finally:
            server.stop()
    raw_s = _raw_age_seconds(LARGE_MB)
    upload_rate, raw_rate = LARGE_MB / large_s, LARGE_MB / raw_s
    print("upload benchmark (one gunicorn worker on loopback)")
    print(
        f"  worker peak RSS: start {baseline:.0f} MB, after {SMALL_MB} MB upload "
        f"{small_peak:.0f} MB, after {LARGE_MB} MB upload {large_peak:.0f} MB"
    )
    growth = large_peak - small_peak
    print(
        f"  memory growth from a {LARGE_MB // SMALL_MB}x larger file: {growth:+.1f} MB "
        f"(peak ratio large/small {large_peak / small_peak:.2f}; flat = 1.00)"
    )
    print(
        f"  throughput: upload {upload_rate:.0f} MB/s, raw age encryption {raw_rate:.0f} MB/s, "
        f"ratio {upload_rate / raw_rate:.2f}"
    )
    print(f"  ({SMALL_MB} MB upload took {small_s:.2f} s; {LARGE_MB} MB took {large_s:.2f} s)")

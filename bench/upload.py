"""Upload: streaming encryption keeps server memory flat and runs near raw age speed.

Starts a real server (one worker) on loopback, uploads a small and a large file
as a stream, and reads the worker's peak resident memory (VmHWM) during each.
Compares upload throughput against raw pyrage encryption measured in the same
run. Ratios are the result; absolute numbers are context only.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator

import pyrage
import requests
from pyrage import x25519

from bench.common import (
    Figure,
    User,
    create_user,
    proc_status_kb,
    reset_peak_rss,
    running_server,
    worker_pids,
)

SCENARIO = "upload"
MB = 1024 * 1024
SMALL_MB, LARGE_MB = 5, 50
BLOCK = os.urandom(MB)


def multipart_body(boundary: str, token: str, size_mb: int) -> Iterator[bytes]:
    """A multipart upload body generated on the fly, never held whole in memory; the CSRF
    token field comes before the file's, as the server requires."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
        f'{token}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="bench.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    for _ in range(size_mb):
        yield BLOCK
    yield f"\r\n--{boundary}--\r\n".encode()


def _upload_peak_mb(url: str, user: User, worker: int, size_mb: int) -> tuple[float, float]:
    """Upload size_mb; returns (seconds, the worker's peak RSS during it above its RSS before)."""
    # Logging in ran a 64 MiB Argon2 hash: without a reset the old peak would hide the upload's.
    reset_peak_rss(worker)
    before = proc_status_kb(worker, "VmRSS")
    seconds = _upload(url, user, size_mb)
    return seconds, (proc_status_kb(worker, "VmHWM") - before) / 1024


def _upload(url: str, user: User, size_mb: int) -> float:
    boundary = "benchboundary7f3a"
    started = time.perf_counter()
    answer = requests.post(
        url + "/file/upload",
        data=multipart_body(boundary, user.token, size_mb),
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Accept": "application/json",
            "Cookie": user.cookie,
        },
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


def run() -> list[Figure]:
    """Upload a small then a large file to a fresh one-worker server; memory and speed figures."""
    with running_server(workers=1, max_upload_mb="200") as server:
        user = create_user(server.url, "bench")
        worker = worker_pids(server)[0]
        start_mb = proc_status_kb(worker, "VmRSS") / 1024
        small_s, small_peak = _upload_peak_mb(server.url, user, worker, SMALL_MB)
        large_s, large_peak = _upload_peak_mb(server.url, user, worker, LARGE_MB)
    raw_s = _raw_age_seconds(LARGE_MB)
    upload_rate, raw_rate = LARGE_MB / large_s, LARGE_MB / raw_s
    return [
        Figure(SCENARIO, "worker RSS before uploading", start_mb, "MB"),
        Figure(SCENARIO, f"worker peak RSS growth during a {SMALL_MB} MB upload", small_peak, "MB"),
        Figure(SCENARIO, f"worker peak RSS growth during a {LARGE_MB} MB upload", large_peak, "MB"),
        Figure(
            SCENARIO,
            f"memory growth from a {LARGE_MB // SMALL_MB}× larger file (flat = 0)",
            large_peak - small_peak,
            "MB",
        ),
        Figure(SCENARIO, "raw age encryption (pyrage, in process)", raw_rate, "MB/s"),
        Figure(
            SCENARIO,
            f"upload throughput ({LARGE_MB} MB in {large_s:.2f} s)",
            upload_rate,
            "MB/s",
            ratio=upload_rate / raw_rate,
            ratio_of="raw age",
        ),
        Figure(SCENARIO, f"{SMALL_MB} MB upload time", small_s, "s"),
    ]

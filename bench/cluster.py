"""Two nodes on PostgreSQL + Redis + S3 against one node on SQLite and a local blob folder,
measured side by side in one run: what sharing the parts across machines costs.

Nodes A and B share a PostgreSQL database, a Redis and a SeaweedFS bucket (S3), in cluster
mode as tests/test_cluster_live.py starts them; the third server keeps everything in its
own data folder. All on 127.0.0.1, rate limits off, two workers each.

- Delivery: a stream on A gets messages sent through B (woken through Redis), one at a
  time, against a stream and a sender on the local node (woken through Unix sockets);
  sends alternate between the two so that both see the same machine load.
- Files: 20 MiB uploads through A (into S3) and through the local node (onto disk),
  alternating, then downloads through B and through the local node. A download's size
  must equal the stored object's (the ciphertext; nothing is decrypted here).

The ratios are the result; absolute numbers are context. MB here is MiB, as in upload.py.
Without PostgreSQL, redis-server or weed the scenario is reported as skipped.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.common import (
    Figure,
    Report,
    Stream,
    StreamHub,
    User,
    check,
    connect,
    create_user,
    markdown_table,
    percentile,
    send_stamped,
    tally,
)
from bench.upload import multipart_body
from tests.live import LiveServer

SCENARIO = "cluster (PostgreSQL, Redis, S3)"
MB = 1024 * 1024
FILE_MB = 20
CAP_SECONDS = 180.0  # the whole scenario, servers' start included
DELIVERY_SECONDS = 60.0  # every message of both routes together
MESSAGE_WAIT = 5.0  # one message's longest wait for its stream
WARMUP = 3  # messages per route sent first and not counted (first connections, caches)
REQUEST_TIMEOUT = 60  # seconds, on every upload and download request
P99_TARGET_MS = 100


def run(messages: int = 50, files: int = 3, cap_seconds: float = CAP_SECONDS) -> list[Figure]:
    """Start the three servers and their services, measure, tear everything down.

    `messages` per route (after the warm-up), `files` uploads of FILE_MB per store."""
    import pytest  # the services' helpers skip or fail as in a test

    deadline = time.monotonic() + cap_seconds
    try:
        with ExitStack() as stack:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ghostcache-bench-cluster-")))
            a, b, local, s3 = _start(stack, work)
            try:
                return _measure(a, b, local, s3, messages, files, deadline)
            except BaseException:
                for node in (a, b, local):
                    print(f"--- {node.log_path} tail ---\n{node.log()[-3000:]}", file=sys.stderr)
                raise
    except pytest.skip.Exception as exc:
        return [Figure(SCENARIO, "scenario skipped", None, detail=str(exc.msg))]
    except pytest.fail.Exception as exc:  # a BaseException: would escape the run's crash handling
        raise RuntimeError(str(exc.msg)) from None


# --- the servers ----------------------------------------------------------------------------------------


def _start(stack: ExitStack, work: Path):
    """Nodes A and B of a cluster (tests/services.running_cluster) and the local node; each
    stopped by `stack` (in reverse order) however the run ends."""
    from tests.services import running_cluster

    common = {"host": "127.0.0.1", "ratelimit": "off", "stream_seconds": "600"}
    a, b, s3 = stack.enter_context(running_cluster(work, **common))
    local = LiveServer(work / "local", 2, database_url="", **common)
    stack.callback(local.kill)  # before start(): it may fail with workers running
    try:
        local.start()
    except Exception:
        print(f"--- {local.log_path} tail ---\n{local.log()[-3000:]}", file=sys.stderr)
        raise
    return a, b, local, s3


# --- the measurements -----------------------------------------------------------------------------------


def _measure(
    a: LiveServer, b: LiveServer, local: LiveServer, s3, messages: int, files: int, deadline: float
) -> list[Figure]:
    # Registered on different nodes: the shared database and sessions make them one site.
    xs, xr = create_user(b.url, "xsend"), create_user(a.url, "xrecv")
    connect(a.url, xs, xr)
    ls, lr = create_user(local.url, "lsend"), create_user(local.url, "lrecv")
    connect(local.url, ls, lr)

    routes = [
        _Route("cross-node (stream on A, sent through B)", a.url, b.url, xs, xr),
        _Route("one node (SQLite, Unix sockets)", local.url, local.url, ls, lr),
    ]
    _deliver(routes, messages, min(deadline, time.monotonic() + DELIVERY_SECONDS))
    figures = _delivery_figures(routes, messages)

    stores = [
        _Store("S3", a.url, b.url, xs, lambda: _s3_objects(s3)),
        _Store("local disk", local.url, local.url, ls, lambda: _folder_files(local.data_dir / "blobs")),
    ]
    _transfer(stores, files, deadline)
    return figures + _file_figures(stores, files)


@dataclass
class _Route:
    """A receiver streaming on one server and a sender sending through another (or the same)."""

    label: str
    stream_url: str
    send_url: str
    sender: User
    receiver: User
    stream: Stream | None = None
    sent: int = 0  # counted messages accepted (201)
    failed: int = 0  # counted messages refused or unanswered
    late: int = 0  # accepted, not on the stream within MESSAGE_WAIT
    errors: str = ""
    latencies_ms: list[float] = field(default_factory=list)  # of the counted messages
    accepted: list[int] = field(default_factory=list)  # ids of the counted messages


def _deliver(routes: list[_Route], count: int, deadline: float) -> None:
    """Send WARMUP + count messages per route, one at a time, alternating routes; each waits
    for its frame (or MESSAGE_WAIT) before the next is sent."""
    hubs = [StreamHub(route.stream_url) for route in routes]
    conns = [route.sender.http(route.send_url) for route in routes]
    try:
        for hub, route in zip(hubs, routes, strict=True):
            (route.stream,) = hub.open([route.receiver])
        streams = [route.stream for route in routes]
        if StreamHub.wait_live(streams, timeout=30) < len(streams):
            raise RuntimeError(f"streams did not open: {tally(streams)}")
        for i in range(WARMUP + count):
            for route, conn in zip(routes, conns, strict=True):
                if time.monotonic() >= deadline:
                    return
                _one_message(route, conn, counted=i >= WARMUP, deadline=deadline)
    finally:
        for route, conn in zip(routes, conns, strict=True):
            route.errors = tally([conn, route.stream] if route.stream else [conn])
            conn.close()
        for hub in hubs:
            hub.close()


def _one_message(route: _Route, conn, counted: bool, deadline: float) -> None:
    stream = route.stream
    assert stream is not None
    before = len(stream.latencies_ms)  # a latency is recorded once the frame is read
    accepted: list[int] = []
    if not send_stamped(conn, route.receiver, accepted):
        route.failed += counted
        return
    wait_until = min(deadline, time.monotonic() + MESSAGE_WAIT)
    while len(stream.latencies_ms) == before and time.monotonic() < wait_until:
        time.sleep(0.002)  # the hub thread stamps the arrival, not this loop
    if not counted:
        return
    route.sent += 1
    route.accepted += accepted
    if len(stream.latencies_ms) > before:
        route.latencies_ms.append(stream.latencies_ms[before])
    else:
        route.late += 1


def _delivery_figures(routes: list[_Route], count: int) -> list[Figure]:
    cross, one = routes
    p50s = [percentile(route.latencies_ms, 50) for route in routes]
    p99s = [percentile(route.latencies_ms, 99) for route in routes]
    figures = [
        Figure(
            SCENARIO,
            f"delivery p50, {cross.label}",
            p50s[0],
            "ms",
            ratio=_ratio(p50s[0], p50s[1]),
            ratio_of="one-node p50",
        ),
        Figure(
            SCENARIO,
            f"delivery p99, {cross.label}",
            p99s[0],
            "ms",
            ratio=_ratio(p99s[0], p99s[1]),
            ratio_of="one-node p99",
            target=f"< {P99_TARGET_MS} ms",
            passed=check(p99s[0], "<", P99_TARGET_MS),
        ),
        Figure(SCENARIO, f"delivery p50, {one.label}", p50s[1], "ms"),
        Figure(SCENARIO, f"delivery p99, {one.label}", p99s[1], "ms"),
    ]
    for route in routes:
        seen = len(set(route.accepted) & route.stream.seen) if route.stream else 0
        figures.append(
            Figure(
                SCENARIO,
                f"messages delivered one at a time, {route.label.split(' (')[0]}"
                f" (after {WARMUP} warm-up; within {MESSAGE_WAIT:g} s each)",
                len(route.latencies_ms),
                target=f"{count}",
                passed=len(route.latencies_ms) == count and seen == route.sent,
                detail=_problems(route, seen),
            )
        )
    return figures


def _problems(route: _Route, seen: int) -> str:
    parts = []
    if route.failed:
        parts.append(f"{route.failed} sends failed")
    if route.late:
        parts.append(f"{route.late} late, {route.sent - seen} never seen")
    if route.errors:
        parts.append(route.errors)
    return "; ".join(parts)


@dataclass
class _Store:
    """Where files go up (and through which server they come back down)."""

    label: str
    upload_url: str
    download_url: str
    user: User
    stored: Callable[[], dict[str, int]]  # object name -> size, as the store holds them
    up_mbps: list[float] = field(default_factory=list)
    down_mbps: list[float] = field(default_factory=list)
    uploaded: list[tuple[int, int]] = field(default_factory=list)  # (file id, stored size)
    size_mismatches: list[str] = field(default_factory=list)


def _transfer(stores: list[_Store], count: int, deadline: float) -> None:
    """`count` uploads per store, alternating stores, then every download back, alternating."""
    for _ in range(count):
        for store in stores:
            if time.monotonic() >= deadline:
                break
            before = store.stored()
            seconds, file_id = _upload(store.upload_url, store.user)
            new = {name: size for name, size in store.stored().items() if name not in before}
            if len(new) != 1:
                raise RuntimeError(f"{store.label}: {len(new)} new stored objects after one upload")
            store.up_mbps.append(FILE_MB / seconds)
            store.uploaded.append((file_id, next(iter(new.values()))))
    for i in range(count):
        for store in stores:
            if i >= len(store.uploaded) or time.monotonic() >= deadline:
                continue
            file_id, stored_size = store.uploaded[i]
            seconds, size = _download(store.download_url, store.user, file_id)
            store.down_mbps.append(size / MB / seconds)
            if size != stored_size:
                store.size_mismatches.append(f"file {file_id}: {size} bytes, stored {stored_size}")


def _upload(url: str, user: User) -> tuple[float, int]:
    """(seconds, the new file's id)."""
    boundary = "benchclusterboundary5c1e"
    started = time.perf_counter()
    answer = requests.post(
        url + "/file/upload",
        data=multipart_body(boundary, user.token, FILE_MB),
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Accept": "application/json",
            "Cookie": user.cookie,
        },
        timeout=REQUEST_TIMEOUT,
    )
    seconds = time.perf_counter() - started
    if answer.status_code != 201 or answer.json().get("size") != FILE_MB * MB:
        raise RuntimeError(f"upload to {url}: {answer.status_code} {answer.text[:300]}")
    return seconds, answer.json()["id"]


def _download(url: str, user: User, file_id: int) -> tuple[float, int]:
    """(seconds, bytes received); the body is read as it comes and thrown away."""
    started = time.perf_counter()
    size = 0
    with requests.get(
        f"{url}/file/{file_id}", headers={"Cookie": user.cookie}, stream=True, timeout=REQUEST_TIMEOUT
    ) as answer:
        if answer.status_code != 200:
            raise RuntimeError(f"download {file_id} from {url}: {answer.status_code}")
        for chunk in answer.iter_content(MB):
            size += len(chunk)
            if time.perf_counter() - started > REQUEST_TIMEOUT:
                raise RuntimeError(f"download {file_id} from {url}: over {REQUEST_TIMEOUT} s")
    return time.perf_counter() - started, size


def _s3_objects(s3) -> dict[str, int]:
    client = s3.client()
    listed = client.list_objects_v2(Bucket=s3.bucket, Prefix="site/", MaxKeys=1000)
    return {item["Key"]: item["Size"] for item in listed.get("Contents", [])}


def _folder_files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}


def _file_figures(stores: list[_Store], count: int) -> list[Figure]:
    s3, disk = stores
    rows = (
        ("upload", s3.up_mbps, disk.up_mbps, "into S3 through A", "onto local disk (one node)"),
        ("download", s3.down_mbps, disk.down_mbps, "from S3 through B", "from local disk (one node)"),
    )
    figures = []
    for what, remote_rates, local_rates, remote_how, local_how in rows:
        remote, here = _median(remote_rates), _median(local_rates)
        figures += [
            Figure(
                SCENARIO,
                f"{what} rate, {FILE_MB} MB {remote_how}, median of {len(remote_rates)}",
                remote,
                "MB/s",
                ratio=_ratio(remote, here),
                ratio_of="local disk",
            ),
            Figure(
                SCENARIO, f"{what} rate, {FILE_MB} MB {local_how}, median of {len(local_rates)}", here, "MB/s"
            ),
        ]
    mismatches = s3.size_mismatches + disk.size_mismatches
    downloads = len(s3.down_mbps) + len(disk.down_mbps)
    figures.append(
        Figure(
            SCENARIO,
            f"downloads whose size is not the stored object's (of {downloads}; {2 * count} planned)",
            len(mismatches),
            target="0",
            passed=not mismatches and downloads == 2 * count,
            detail="; ".join(mismatches)[:300],
        )
    )
    return figures


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(value: float | None, reference: float | None) -> float | None:
    return value / reference if value and reference else None


if __name__ == "__main__":  # this scenario alone; prints the table, writes no results file
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--files", type=int, default=3)
    args = parser.parse_args()
    report = Report("cluster only", time.strftime("%Y-%m-%d %H:%M:%S %z"), plan=vars(args))
    began = time.monotonic()
    report.figures = run(args.messages, args.files)
    report.notes.append(f"total time {time.monotonic() - began:.0f} s on {os.cpu_count()} CPUs")
    print(markdown_table(report))

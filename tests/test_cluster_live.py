"""Two app servers on two ports sharing PostgreSQL, Redis and SeaweedFS (S3), as two
machines of one site would: live delivery, files, sessions, rate limits and the purge
all work across them, and killing one loses no accepted message."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyrage
import pytest
import requests

from ghostcache.crypto import new_fernet_key
from tests.live import LiveServer
from tests.services import running_cluster
from tests.test_chat_live import Client

pytestmark = pytest.mark.live

PURGE_SECONDS = 2
RECHECK_SECONDS = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Nodes A and B, every shared part real and on loopback."""
    settings = {
        "ratelimit": "on",
        "ratelimits": "login=4/minute,send=1000/minute,register=1000/hour",
        "purge_interval_seconds": str(PURGE_SECONDS),
        "stream_seconds": "30",
        "stream_recheck_seconds": str(RECHECK_SECONDS),  # what streams fall back on without Redis
    }
    with running_cluster(tmp_path_factory.mktemp("cluster"), **settings) as both:
        yield both


_numbers = iter(range(1, 10_000))


def _pair(a: LiveServer, b: LiveServer) -> tuple[Client, Client]:
    """Alice signs up on A, Bob on B; they connect across the nodes."""
    n = next(_numbers)
    alice = Client(a.url, f"alice{n}").signup()
    bob = Client(b.url, f"bob{n}").signup()
    request = alice.post("/connect", {"username": bob.username})
    assert request.status_code == 201, request.text
    assert bob.post(f"/connect/accept/{request.json()['id']}").status_code == 200
    return alice, bob


def _on(client: Client, node: LiveServer) -> Client:
    """The same user (cookies and token) talking to another node."""
    moved = Client.__new__(Client)
    moved.__dict__.update(client.__dict__, base=node.url)
    return moved


def test_a_stream_on_one_node_gets_a_message_sent_through_the_other_at_once(cluster):
    a, b, *_ = cluster
    alice, bob = _pair(a, b)
    latencies = []
    with bob.get("/chat/stream", stream=True, timeout=30, headers={"Accept": "text/event-stream"}) as stream:
        lines = stream.iter_lines()
        next(lines)  # the stream is open
        for i in range(5):
            sent_at = time.monotonic()
            message_id = alice.send(bob, f"across {i}")
            for line in lines:
                if line.startswith(b"data:") and json.loads(line[5:]).get("id") == message_id:
                    latencies.append(time.monotonic() - sent_at)
                    break
    assert len(latencies) == 5
    print(f"\ncross-node delivery latency: median {sorted(latencies)[2] * 1000:.1f} ms")
    # Without Redis it would wait for the stream's database recheck.
    assert max(latencies) < 1.0, latencies


def test_a_file_uploaded_through_one_node_downloads_through_the_other_and_decrypts(cluster):
    a, b, s3, *_ = cluster
    alice, _ = _pair(a, b)
    content = bytes(range(256)) * 4096 * 3  # 3 MiB
    upload = alice.http.post(
        a.url + "/file/upload",
        files={"file": ("notes.bin", io.BytesIO(content))},
        data={"csrf_token": alice.token},
        timeout=60,
    )
    assert upload.status_code == 201, upload.text
    body = upload.json()
    download = _on(alice, b).get(f"/file/{body['id']}")
    assert download.status_code == 200
    assert pyrage.decrypt(download.content, [pyrage.x25519.Identity.from_str(body["key"])]) == content
    stored = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="site/")
    assert stored["KeyCount"] >= 1  # in the bucket, not in either node's folder
    for node in (a, b):
        blobs = node.data_dir / "blobs"
        assert not blobs.exists() or not [p for p in blobs.iterdir() if p.is_file()]


def test_a_session_made_on_one_node_works_on_the_other_and_a_logout_there_ends_it(cluster):
    a, b, *_ = cluster
    alice, _ = _pair(a, b)
    on_b = _on(alice, b)
    assert on_b.get("/account").status_code == 200
    assert on_b.post("/logout").status_code == 200
    assert alice.get("/account").status_code == 401  # on A, the session is over too


def test_a_rate_limit_counts_requests_to_both_nodes(cluster):
    a, b, *_ = cluster
    alice, _ = _pair(a, b)
    # login=4/minute per address and username: wrong passwords, alternately to A and B
    codes = [
        Client((a, b)[i % 2].url, alice.username)
        .post("/login", {"username": alice.username, "password": "not the password"})
        .status_code
        for i in range(6)
    ]
    # Her login at sign-up (on A) was the first of the four: A, B, A answer, then B and
    # A both refuse. Counted per node, each would have answered four times.
    assert codes == [401, 401, 401, 429, 429, 429], codes


def test_the_purge_runs_once_per_period_across_both_nodes(cluster):
    a, b, *_ = cluster
    before = _purges(a) + _purges(b)
    time.sleep(PURGE_SECONDS * 4)
    runs = _purges(a) + _purges(b) - before
    # Each node looks ten times per period; without the shared lease both would purge
    # every period (8 runs here).
    assert 2 <= runs <= 5, runs


def _purges(node: LiveServer) -> int:
    return len(re.findall(r"purge: PurgeReport", node.log()))


def _streamed(client: Client, node: LiveServer, send: Callable[[], int], within: float) -> float:
    """Open `client`'s stream on `node`, call `send` (which returns a message id) and
    wait for that message on the stream; returns the seconds it took."""
    with _on(client, node).get(
        "/chat/stream", stream=True, timeout=within + 5, headers={"Accept": "text/event-stream"}
    ) as stream:
        lines = stream.iter_lines()
        next(lines)  # the stream is open
        started = time.monotonic()
        message_id = send()
        for line in lines:
            if line.startswith(b"data:") and json.loads(line[5:]).get("id") == message_id:
                return time.monotonic() - started
            if time.monotonic() - started > within:
                break
    raise AssertionError(f"message {message_id} not streamed within {within} s")


def test_the_site_keeps_working_while_redis_restarts(cluster):
    a, b, _, redis, redis_url = cluster
    alice, bob = _pair(a, b)
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    connected = [_connects(node) for node in (a, b)]  # one a worker
    redis[-1].kill()
    redis[-1].wait()
    # Down: streams on other nodes find new messages at their database recheck, rate
    # limits count per process, and nothing a user does fails.
    took = _streamed(bob, a, lambda: _on(alice, b).send(bob, "while redis is down"), RECHECK_SECONDS + 3)
    assert took >= 0
    newcomer, _ = _pair(b, a)  # registering and logging in still answer (limited per process)
    assert newcomer.id
    logs = a.log() + b.log()
    assert "Rate limit storage unreachable" in logs and "event bus (Redis)" in logs
    # Back: wake-ups cross nodes at once again.
    from tests.services import start_redis

    restarted, _ = start_redis(Path(a.data_dir).parent, port=port)
    redis.append(restarted)
    deadline = time.monotonic() + 20  # workers retry with a back-off of up to 10 s
    while time.monotonic() < deadline and [_connects(a), _connects(b)] < [2 * n for n in connected]:
        time.sleep(0.2)
    took = _streamed(bob, a, lambda: _on(alice, b).send(bob, "redis is back"), 2.0)
    assert took < 1.0, took
    history = bob.get(f"/chat/{alice.id}").json()["messages"]
    assert [m["message"] for m in history] == ["while redis is down", "redis is back"]


def _connects(node: LiveServer) -> int:
    return node.log().count("event bus (Redis) connected")


def _command(node: LiveServer, *args: str) -> subprocess.CompletedProcess:
    """A `ghostcache` command with the node's settings, as an operator would run it there."""
    command = [sys.executable, "-c", "from ghostcache.cli import main; main()", *args]
    return subprocess.run(command, env=node.env, capture_output=True, text=True, timeout=120)


def _replace(path: Path, text: str) -> None:
    """Change a key file as an operator's tooling should: whole, never half-written."""
    partial = path.with_name(path.name + ".new")
    partial.write_text(text)
    os.replace(partial, path)


def test_the_master_key_rotates_while_both_nodes_serve(cluster):
    a, b, *_ = cluster
    before, before_peer = _pair(a, b)  # user keys wrapped under the old key
    key_file = Path(a.env["GHOSTCACHE_MASTER_KEY_FILE"])  # the nodes' copies, here one file
    old, new = key_file.read_text().strip(), new_fernet_key().reveal().decode()

    _replace(key_file, f"{old}\n{new}\n")  # 1: every node can open what the new key wraps
    _replace(key_file, f"{new}\n{old}\n")  # 2: every node wraps with it
    during, peer = _pair(b, a)  # registered on B meanwhile: wrapped under the new key
    rotated = _command(a, "rotate-master-key")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    retired = _command(b, "rotate-master-key", "--retire-old")
    assert retired.returncode == 0 and "on every node" in retired.stdout, retired.stdout + retired.stderr
    _replace(key_file, f"{new}\n")  # 3: the old key goes from every node

    # Users from before, during and after the rotation all chat, through both nodes
    # (accepting a request and reading history open both users' keys).
    late, other = _pair(a, b)
    for client, node in ((before, b), (during, a), (late, b)):
        assert _on(client, node).get("/conversations").status_code == 200
    for sender, receiver in ((before, before_peer), (during, peer), (late, other)):
        sender.send(receiver, "after the rotation")
        history = _on(receiver, b).get(f"/chat/{sender.id}").json()["messages"]
        assert history[-1]["message"] == "after the rotation"


def test_killing_a_node_loses_no_accepted_message(cluster):
    a, b, *_ = cluster
    alice, bob = _pair(a, b)
    accepted: list[int] = []

    def send(i: int) -> None:
        try:
            response = alice.post("/chat/send", {"receiver_id": bob.id, "message": f"m{i}"})
        except requests.RequestException:
            return  # never answered: the sender does not know it was kept
        if response.status_code == 201:
            accepted.append(response.json()["id"])

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(send, i) for i in range(150)]
        time.sleep(0.3)
        a.kill()  # alice's node dies mid-stream (SIGKILL: no graceful stop)
        for future in futures:
            future.result()
    assert accepted, "no message was accepted before the kill"
    history = bob.get(f"/chat/{alice.id}?limit=200").json()["messages"]
    kept = {m["id"] for m in history}
    assert set(accepted) <= kept, sorted(set(accepted) - kept)
    a.start()  # the module's other tests may still want it

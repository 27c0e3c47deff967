"""Blobs in S3 object storage (AWS or any S3 API): the BlobStore adapter behind
GHOSTCACHE_BLOB_URL=s3://BUCKET/PREFIX.

Imported only by `blobs.blob_store_for` when that setting is set, so a deployment on a
local folder never imports boto3 (the optional extra `ghostcache[s3]`).

- An upload streams up as a multipart upload, one part (PART_SIZE) in memory at a
  time; a blob smaller than one part is a single PUT. The object appears only when the
  block succeeds; on any exception the multipart upload is aborted, leaving nothing.
- A download streams the object's body out in pieces; it is never read whole.
- The purge lists the prefix: old blob-named objects nobody keeps are deleted, and
  multipart uploads abandoned by a crash are aborted.

Keys are PREFIX/NAME, NAME a blob name (32 hex digits). The keys come from the standard
AWS chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, a profile or an
instance role) and are never logged. Blobs are age-encrypted before they leave the
process, so no server-side encryption is asked for.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, cast

import boto3
import botocore.config
from botocore.exceptions import ClientError

from .blobs import _NAME
from .settings import PREFIX, Settings, SettingsError, parse_blob_url

log = logging.getLogger(__name__)

# S3 wants at least 5 MiB in every part but the last, and at most 10,000 parts: 78 GiB,
# far above the largest upload (GHOSTCACHE_MAX_UPLOAD_MB stops at 10 GiB).
PART_SIZE = 8 * 1024 * 1024
READ_BUFFER = 256 * 1024  # a download is read from S3 this much at a time
DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes
_MISSING = {"404", "NoSuchKey", "NotFound"}


def make_client(endpoint_url: str = "") -> Any:
    """An S3 client from the standard AWS credential chain; `endpoint_url` for any S3 API.

    Clients are thread-safe: one per store serves every request and the purge timer."""
    session = boto3.session.Session()
    if session.get_credentials() is None:
        raise SettingsError(
            f"Setting {PREFIX}BLOB_URL is set, but no S3 keys were found. Set AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY (and AWS_DEFAULT_REGION), or give the machine a role."
        )
    config = botocore.config.Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        # Every open download holds a connection for as long as it streams, and gevent
        # serves many at once: a pool of botocore's default 10 would open and throw away
        # a connection per download beyond that.
        max_pool_connections=100,
        # Checksums only where the API requires them (as before boto3 1.36): many S3
        # services refuse the newer default. age authenticates every blob anyway.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # Most S3 services other than AWS serve buckets as paths, not host names.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return session.client("s3", endpoint_url=endpoint_url or None, config=config)


class S3BlobStore:
    """Blobs as objects PREFIX/NAME in one bucket."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", part_size: int = PART_SIZE) -> None:
        self.client = client
        self.bucket = bucket
        self.base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.part_size = part_size

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        bucket, prefix = parse_blob_url(settings.blob_url)
        return cls(make_client(settings.s3_endpoint_url), bucket, prefix)

    def key(self, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError("invalid blob name")
        return self.base + name

    def _name_of(self, key: str) -> str | None:
        """The blob name of a key directly under the prefix; None for any other key."""
        if not key.startswith(self.base):
            return None
        name = key[len(self.base) :]
        return name if _NAME.fullmatch(name) else None

    @contextmanager
    def writer(self, name: str) -> Iterator[BinaryIO]:
        upload = _Upload(self.client, self.bucket, self.key(name), self.part_size)
        try:
            yield cast(BinaryIO, upload)
            upload.finish()
        except BaseException:  # a failed, too large or cancelled upload leaves nothing
            upload.abort()
            raise

    def open(self, name: str) -> BinaryIO:
        """The object's content as a stream (FileNotFoundError when there is none)."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key(name))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise FileNotFoundError(f"no blob {name}") from None
            raise
        return cast(BinaryIO, io.BufferedReader(_Body(answer["Body"]), READ_BUFFER))

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(name))  # no error when absent

    def exists(self, name: str) -> bool:
        """True or False when the bucket answers; raises when it cannot (a readiness probe
        relies on that), a missing bucket included."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(name))
        except ClientError as exc:
            if _code(exc) not in _MISSING:
                raise
            # A HEAD has no error body: a missing bucket is a 404 too. Tell them apart.
            self.client.head_bucket(Bucket=self.bucket)
            return False
        return True

    def sweep(self, keep: set[str], older_than_seconds: float) -> int:
        """Delete blob-named objects directly under the prefix that are not in `keep` and
        older than the grace, and abort multipart uploads started before it; nothing else
        in the bucket is touched. Returns how many of both."""
        cutoff = time.time() - older_than_seconds
        return self._delete_old_objects(keep, cutoff) + self._abort_old_uploads(cutoff)

    def _delete_old_objects(self, keep: set[str], cutoff: float) -> int:
        removed, doomed = 0, []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.base, Delimiter="/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                name = self._name_of(item["Key"])
                if name and name not in keep and item["LastModified"].timestamp() < cutoff:
                    doomed.append(item["Key"])
                if len(doomed) == DELETE_BATCH:
                    removed += self._delete_batch(doomed)
                    doomed = []
        return removed + (self._delete_batch(doomed) if doomed else 0)

    def _delete_batch(self, keys: list[str]) -> int:
        answer = self.client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )
        errors = answer.get("Errors", [])
        if errors:
            codes = sorted({e.get("Code", "?") for e in errors})
            log.warning("purge: %d of %d blobs not deleted (%s)", len(errors), len(keys), ", ".join(codes))
        return len(keys) - len(errors)

    def _abort_old_uploads(self, cutoff: float) -> int:
        aborted = 0
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.base
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                if self._name_of(upload["Key"]) and upload["Initiated"].timestamp() < cutoff:
                    aborted += _abort(self.client, self.bucket, upload["Key"], upload["UploadId"])
        return aborted


class _Upload:
    """The writer of one blob: fills a part in memory, sends it when full (the first full
    part starts the multipart upload), then completes; or one PUT if it never filled one."""

    def __init__(self, client: Any, bucket: str, key: str, part_size: int) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._part_size = part_size
        self._buffer = io.BytesIO()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.closed = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        if self.closed:
            raise ValueError("write to a blob that is finished or aborted")
        written = self._buffer.write(data)
        if self._buffer.tell() >= self._part_size:
            self._send_part()
        return written

    def flush(self) -> None:
        """Nothing to do: a part goes up when it is full, the rest at the end."""

    def _send_part(self) -> None:
        if self._upload_id is None:
            started = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = started["UploadId"]
        number = len(self._parts) + 1
        self._buffer.seek(0)  # the buffer itself is the body: no copy of the part
        sent = self._client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=self._buffer
        )
        self._parts.append({"ETag": sent["ETag"], "PartNumber": number})
        self._buffer = io.BytesIO()

    def finish(self) -> None:
        if self._upload_id is None:
            self._buffer.seek(0)
            self._client.put_object(Bucket=self._bucket, Key=self._key, Body=self._buffer)
        else:
            if self._buffer.tell():
                self._send_part()
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._close()

    def abort(self) -> None:
        """Drop the buffer and abort the multipart upload, if one was started; never raises
        (the purge aborts what could not be aborted now)."""
        self._close()
        if self._upload_id is not None:
            _abort(self._client, self._bucket, self._key, self._upload_id)

    def _close(self) -> None:
        self.closed = True
        self._buffer = io.BytesIO()


def _abort(client: Any, bucket: str, key: str, upload_id: str) -> int:
    """Abort one multipart upload: 1 if it was aborted, 0 if it was gone or the call failed."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except ClientError as exc:
        if _code(exc) != "NoSuchUpload":  # completed or aborted meanwhile
            log.warning("could not abort an upload to %s (%s); the purge tries again", key, _code(exc))
        return 0
    except Exception as exc:  # the connection: the purge tries again
        log.warning("could not abort an upload to %s (%s); the purge tries again", key, type(exc).__name__)
        return 0
    return 1


class _Body(io.RawIOBase):
    """An object's streaming body as a raw stream, for io.BufferedReader: read in pieces,
    and closed (its connection released) when the download ends or is abandoned."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._body.read(len(buffer))  # checks the length against Content-Length at the end
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))

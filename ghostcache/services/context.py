"""What every service call needs, bundled: the DB session and the ports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from ..blobs import BlobStore
from ..clock import Clock
from ..crypto import MasterKeyring, PasswordHashing
from ..events import Broker
from ..settings import Settings

MAX_ID = 2**63 - 1  # the databases' integer range: no row has a larger id


@dataclass
class Runtime:
    """Long-lived parts, built once per app."""

    settings: Settings
    clock: Clock
    keyring: MasterKeyring
    passwords: PasswordHashing
    blobs: BlobStore
    broker: Broker


@dataclass
class Context:
    """One unit of work: a DB session plus the runtime."""

    db: Session
    rt: Runtime

    def now(self) -> datetime:
        return self.rt.clock.now()

    def get(self, model: type, row_id: int):
        """The row with this id, or None (also for ids no database column can hold)."""
        return self.db.get(model, row_id) if 0 < row_id <= MAX_ID else None

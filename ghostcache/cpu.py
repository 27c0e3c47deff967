"""Where CPU-heavy work runs: Argon2, key generation, decrypting a page of history.

Under the gevent server every connection of a process shares one thread, so a
200 ms Argon2 hash run there would stall every open chat. argon2-cffi and
cryptography release the GIL while they compute (measured: a ticking thread
keeps ticking), so running them on a small thread pool keeps the loop free.
Outside gevent (tests, commands) the work simply runs inline."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

from gevent import get_hub, monkey, sleep

T = TypeVar("T")


class CpuPool:
    """Runs a function on the process's worker threads when under gevent, else inline."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def run(self, fn: Callable[..., T], *args: object) -> T:
        if not monkey.is_module_patched("threading"):
            return fn(*args)
        pool = get_hub().threadpool
        if pool.maxsize != self.threads:
            pool.maxsize = self.threads
        return pool.apply(_at_low_priority, (fn, *args))


_lowered = threading.local()


def _at_low_priority(fn: Callable[..., T], *args: object) -> T:
    """Run on a pool thread niced to 10: on a busy machine the kernel then gives the
    event loop (nice 0) the CPU first, so a login storm cannot starve open chats.
    On Linux the nice value belongs to the thread (and to threads it starts, such
    as Argon2's lanes), not to the whole process."""
    if not getattr(_lowered, "done", False):
        _lowered.done = True
        try:
            os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), 10))
        except (AttributeError, OSError):  # not Linux, or not permitted: run at normal priority
            pass
    return fn(*args)


def let_others_run() -> None:
    """Give the other connections of this process a turn (a no-op outside gevent).

    A fast client can keep a socket readable for a whole 50 MB upload, and
    gevent only switches when a read would block: reading and encrypting it
    would then hold every other connection of the process until it ends."""
    if monkey.is_module_patched("socket"):
        sleep(0)

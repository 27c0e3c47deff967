"""A private Tor network on loopback, inside a network namespace of its own: three
directory authorities, two relays, an onion service and a client, after chutney's
`hs-v3-min` layout and its fast-voting test options. Nothing in it can reach anything
but the namespace's loopback interface."""

from __future__ import annotations

import ctypes
import fcntl
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

CLONE_NEWNET = 0x40000000
AUTHORITIES = 3
RELAYS = 2
SOCKS_PORT = 9050
ATTEMPT_SECONDS = 90  # per bootstrap attempt; one retry

# chutney's common.i and authority.i: a consensus every 10 s, every relay voted
# Guard and reachable, circuits built as soon as a quarter of the paths are known.
COMMON = """\
TestingTorNetwork 1
AssumeReachable 1
PathsNeededToBuildCircuits 0.25
TestingDirAuthVoteExit *
TestingDirAuthVoteGuard *
TestingDirAuthVoteHSDir *
TestingMinExitFlagThreshold 0
V3AuthNIntervalsValid 2
DataDirectory {dir}
Nickname {nick}
ShutdownWaitLength 0
Log notice file {dir}/notice.log
SafeLogging 1
"""
RELAY = """\
SocksPort 0
ORPort 127.0.0.1:{orport}
DirPort 127.0.0.1:{dirport}
Address 127.0.0.1
ExitRelay 0
ExitPolicy reject *:*
ContactInfo {nick}@test.invalid
TestingServerDownloadInitialDelay 0
TestingServerConsensusDownloadInitialDelay 0
"""
AUTHORITY = """\
AuthoritativeDirectory 1
V3AuthoritativeDirectory 1
TestingV3AuthInitialVotingInterval 5
V3AuthVotingInterval 10
TestingV3AuthInitialVoteDelay 2
V3AuthVoteDelay 2
TestingV3AuthInitialDistDelay 2
V3AuthDistDelay 2
"""


class TorNetworkError(RuntimeError):
    """The network did not come up (the message carries the tail of the logs)."""


# -- the namespace ---------------------------------------------------------------------------


@contextmanager
def network_namespace() -> Iterator[None]:
    """Moves the calling thread into a new network namespace (unshare(2), as `unshare -n`
    does) with only its loopback interface, up; every process it starts meanwhile lives
    there too. Back in the previous namespace on exit. Needs root (CAP_SYS_ADMIN)."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net") as previous:
        if libc.unshare(CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"unshare(CLONE_NEWNET): {os.strerror(errno)}")
        try:
            _loopback_up()
            yield
        finally:
            if libc.setns(previous.fileno(), CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"setns back: {os.strerror(errno)}")


def _loopback_up() -> None:
    """`ip link set lo up`, without needing iproute2: SIOCGIFFLAGS, then SIOCSIFFLAGS | IFF_UP."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def interfaces() -> list[str]:
    """The network interfaces this thread sees."""
    return sorted(name for _, name in socket.if_nameindex())


# -- the network -----------------------------------------------------------------------------


def missing_tools() -> list[str]:
    """What a private Tor network needs and this machine lacks."""
    return [tool for tool in ("tor", "tor-gencert") if shutil.which(tool) is None]


class TorNetwork:
    """Writes the torrcs under `folder` and runs each tor in a process group of its own.
    `service` is the onion service's own torrc lines (HiddenServiceDir and the rest)."""

    def __init__(self, folder: Path, service: str) -> None:
        self.folder = folder
        self.service = service
        self.processes: dict[str, subprocess.Popen] = {}
        self.socks_port = SOCKS_PORT

    # nodes: (nickname, orport, dirport); authorities first
    def relays(self) -> list[tuple[str, int, int]]:
        names = [f"auth{i}" for i in range(AUTHORITIES)] + [f"relay{i}" for i in range(RELAYS)]
        return [(name, 5100 + i, 7100 + i) for i, name in enumerate(names)]

    def start(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True)
        relays = self.relays()
        authorities = [self._authority_line(*node) for node in relays[:AUTHORITIES]]
        directory = "".join(authorities)
        for index, (nick, orport, dirport) in enumerate(relays):
            extra = AUTHORITY if index < AUTHORITIES else ""
            self._write(nick, RELAY.format(nick=nick, orport=orport, dirport=dirport) + extra, directory)
        self._write("service", self.service, directory)
        self._write("client", f"SocksPort 127.0.0.1:{self.socks_port}\n", directory)
        for nick in [node[0] for node in relays] + ["service", "client"]:
            self._run(nick)

    def onion_address(self, timeout: float = 10) -> str:
        """The service's address (tor writes `hostname` at start)."""
        hostname = self.service_dir() / "hostname"
        deadline = time.monotonic() + timeout
        while not hostname.exists():
            if time.monotonic() > deadline:
                raise TorNetworkError("the onion service wrote no hostname\n" + self.log_tails())
            self._check_running()
            time.sleep(0.1)
        return hostname.read_text().strip()

    def service_dir(self) -> Path:
        match = re.search(r"^HiddenServiceDir\s+(\S+)", self.service, re.M)
        assert match, "the service's torrc has no HiddenServiceDir"
        return Path(match.group(1))

    def stop(self) -> None:
        """SIGTERM to every tor's group (ShutdownWaitLength 0), SIGKILL after 5 s."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def log_tails(self, lines: int = 8) -> str:
        tails = []
        for log in sorted(self.folder.glob("*/notice.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"== {log.parent.name}\n" + "\n".join(text))
        return "\n".join(tails)

    def _check_running(self) -> None:
        for nick, process in self.processes.items():
            if process.poll() is not None:
                raise TorNetworkError(f"tor {nick} exited ({process.returncode})\n" + self.log_tails())

    def _authority_line(self, nick: str, orport: int, dirport: int) -> str:
        """Makes the authority's keys (tor-gencert, then tor's own identity) and returns
        the DirAuthority line every node of the network gets."""
        keys = self.folder / nick / "keys"
        keys.mkdir(mode=0o700, parents=True)
        subprocess.run(
            ["tor-gencert", "--create-identity-key", "--passphrase-fd", "0", "-m", "12"]
            + ["-i", str(keys / "authority_identity_key"), "-s", str(keys / "authority_signing_key")]
            + ["-c", str(keys / "authority_certificate"), "-a", f"127.0.0.1:{dirport}"],
            input="\n",
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        certificate = (keys / "authority_certificate").read_text()
        v3ident = re.search(r"^fingerprint (\w+)", certificate, re.M).group(1)  # type: ignore[union-attr]
        listed = subprocess.run(
            ["tor", "--ignore-missing-torrc", "-f", os.devnull, "--list-fingerprint", "--quiet"]
            + ["--orport", "1", "--datadirectory", str(keys.parent)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        fingerprint = "".join(listed.stdout.strip().splitlines()[-1].split()[1:])
        assert re.fullmatch(r"[0-9A-F]{40}", fingerprint), listed.stdout
        return (
            f"DirAuthority {nick} orport={orport} no-v2 v3ident={v3ident} 127.0.0.1:{dirport} {fingerprint}\n"
        )

    def _write(self, nick: str, own: str, directory: str) -> None:
        node = self.folder / nick
        node.mkdir(mode=0o700, exist_ok=True)
        (node / "torrc").write_text(COMMON.format(dir=node, nick=nick) + own + directory)

    def _run(self, nick: str) -> None:
        node = self.folder / nick
        self.processes[nick] = subprocess.Popen(
            ["tor", "-f", str(node / "torrc"), "--quiet"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(node / "stderr.log", "wb"),
            start_new_session=True,
        )


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass


def bootstrap(
    make: Callable[[int], TorNetwork],
    answers: Callable[[TorNetwork], bool],
    attempts: int = 2,
    seconds: float = ATTEMPT_SECONDS,
) -> tuple[TorNetwork, list[float]]:
    """Starts `make(attempt)` and waits until `answers(network)` (a request over the
    onion succeeded): at most `seconds` per attempt, `attempts` attempts, each network
    stopped and its folder removed before the next. Returns the network and how long each
    attempt took (the last one is the bootstrap time)."""
    times: list[float] = []
    failures: list[str] = []
    for attempt in range(attempts):
        network = make(attempt)
        started = time.monotonic()
        try:
            network.start()
            deadline = started + seconds
            while time.monotonic() < deadline:
                network._check_running()
                if answers(network):
                    times.append(time.monotonic() - started)
                    return network, times
                time.sleep(1)
            failures.append(f"attempt {attempt + 1}: no answer within {seconds:.0f}s\n{network.log_tails()}")
        except (TorNetworkError, subprocess.SubprocessError, OSError) as exc:
            failures.append(f"attempt {attempt + 1}: {exc}")
        times.append(time.monotonic() - started)
        network.stop()
        shutil.rmtree(network.folder, ignore_errors=True)
    raise TorNetworkError("\n".join(failures))

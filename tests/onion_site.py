"""GhostCache as deploy/onion/ serves it, on a private Tor network: a `make run` server
with ghostcache-onion.env, nginx with nginx-onion.conf in front, and the onion service
of deploy/onion/torrc in front of that. Call start() and stop() inside
tor_network.network_namespace()."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests import nginx
from tests.live import LiveServer
from tests.test_chat_live import Client
from tests.tor_network import TorNetwork, bootstrap, missing_tools, network_namespace

ROOT = Path(__file__).resolve().parent.parent
ONION = ROOT / "deploy" / "onion"
LOCATIONS = ROOT / "deploy" / "nginx" / "ghostcache-locations.conf"
# Low, so a test reaches them in a few requests.
TEST_LIMITS = "login_address=5/minute,login=5/minute"


def unavailable() -> str:
    """Why this machine cannot run the site ('' when it can)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "a network namespace needs root (CI runs as root)"
    missing = missing_tools() + [t for t in ("nginx", "make") if shutil.which(t) is None]
    if "nginx" in missing and os.access("/usr/sbin/nginx", os.X_OK):  # root's PATH only
        missing.remove("nginx")
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install tor nginx make)"
    if not (Path(sys.prefix) / "bin" / "ghostcache").exists():
        return "`make run` needs the tests to run from the project's virtual environment (make test)"
    try:
        import socks  # noqa: F401  (PySocks: requests' SOCKS support)
    except ImportError:
        return "PySocks is not installed (part of the dev extra)"
    try:
        with network_namespace():
            pass
    except OSError as exc:
        return f"no network namespace here: {exc}"
    return ""


def env_file() -> dict[str, str]:
    """The settings of deploy/onion/ghostcache-onion.env (comments left out)."""
    lines = (ONION / "ghostcache-onion.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


class MakeRunServer(LiveServer):
    """The server as `make run` starts it, from the virtual environment running the tests
    (`-o .app`: never reinstalled by this)."""

    def command(self) -> list[str]:
        venv = Path(sys.prefix)
        return ["make", "-s", "--no-print-directory", "-C", str(ROOT), "run"] + [
            f"VENV={venv}",
            "-o",
            f"{venv}/.app",
        ]

    def stop(self) -> None:
        super().stop()
        _wait_group_gone(self.process)


def _wait_group_gone(process, timeout: float = 30) -> None:
    """make has exited; wait for the rest of its group (gunicorn's graceful stop)."""
    if process is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)


class OnionSite:
    """The whole arrangement; `folder` keeps logs and results (the Tor network's own
    files go to a temporary folder, removed on stop)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.nginx_dir = folder / "nginx"
        self.access_log = self.nginx_dir / "access.log"  # http-wide: the site must switch it off
        self.error_log = self.nginx_dir / "onion-error.log"
        self.tor_dir = Path(tempfile.mkdtemp(prefix="ghostcache-tor-"))
        settings = {k.removeprefix("GHOSTCACHE_").lower(): v for k, v in env_file().items()}
        for local in ("data_dir", "port"):  # the test's own folder and port
            settings.pop(local)
        settings.update(ratelimit="on", ratelimits=TEST_LIMITS, database_url="", workers="1")
        # One worker: without Redis, each worker counts on its own.
        self.server = MakeRunServer(folder / "data", **settings)
        self.nginx: subprocess.Popen | None = None
        self.network: TorNetwork | None = None
        self.bootstrap_seconds: list[float] = []
        self.onion = ""

    @property
    def url(self) -> str:
        return f"http://{self.onion}"

    def start(self) -> OnionSite:
        self.server.start(timeout=60)
        self._start_nginx()
        self.network, self.bootstrap_seconds = bootstrap(self._network, self._answers)
        self.onion = self.network.onion_address()
        return self

    def stop(self) -> None:
        if self.network is not None:
            self.network.stop()
        if self.nginx is not None:
            nginx.stop(self.nginx)
        self.server.stop()
        shutil.rmtree(self.tor_dir, ignore_errors=True)

    def session(self, circuit: str) -> requests.Session:
        """A session whose connections go through the client tor on their own circuit
        (tor isolates streams by SOCKS username: IsolateSOCKSAuth, on by default)."""
        assert self.network is not None
        http = requests.Session()
        proxy = f"socks5h://{circuit}:x@127.0.0.1:{self.network.socks_port}"
        http.proxies = {"http": proxy, "https": proxy}
        return http

    def client(self, username: str, circuit: str | None = None) -> Client:
        return Client(self.url, username, self.session(circuit or username))

    def logs(self) -> dict[str, str]:
        """Every log the site wrote: the server's, and all of nginx's."""
        found = {"server": self.server.log()}
        for path in sorted(self.nginx_dir.glob("*.log")):
            found[path.name] = path.read_text(errors="replace")
        return found

    # -- pieces ------------------------------------------------------------------------------

    def _start_nginx(self) -> None:
        self.nginx_dir.mkdir()
        site = (ONION / "nginx-onion.conf").read_text()
        for sample, real in (
            ("/etc/nginx/snippets/ghostcache-locations.conf", str(LOCATIONS)),
            ("/var/log/nginx/ghostcache-onion.error.log", str(self.error_log)),
            ("server 127.0.0.1:5000;", f"server 127.0.0.1:{self.server.port};"),
        ):
            assert sample in site, sample
            site = site.replace(sample, real)
        conf = nginx.wrapper(self.nginx_dir, site, access_log=self.access_log)
        self.nginx = nginx.start(conf, self.nginx_dir)

    def _network(self, attempt: int) -> TorNetwork:
        folder = self.tor_dir / f"attempt{attempt}"
        torrc = (ONION / "torrc").read_text()
        sample = "HiddenServiceDir /var/lib/tor/ghostcache/"
        assert sample in torrc
        service = torrc.replace(sample, f"HiddenServiceDir {folder / 'service' / 'onion'}")
        return TorNetwork(folder, service)

    def _answers(self, network: TorNetwork) -> bool:
        self.network = network
        self.onion = network.onion_address()
        try:
            response = self.session("bootstrap").get(self.url + "/healthz", timeout=10)
        except requests.RequestException:
            return False
        return response.status_code == 200

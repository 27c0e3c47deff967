"""The deployment samples in deploy/ agree with the app: nginx accepts the sample and its
limits match the app's, the systemd unit waits for the server's graceful stop, the
environment file holds valid settings, the scripts pass shellcheck, and the proxy really
streams events and uploads in front of a real server."""

from __future__ import annotations

import datetime
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from ghostcache.server import GhostcacheServer
from ghostcache.settings import SETTING_NAMES, Settings, load_settings
from ghostcache.web.edge import MESSAGE_BODY, body_limits
from tests.live import LiveServer, free_port, worker_pids
from tests.nginx import check, nginx_binary, wrapper
from tests.test_chat_live import Client

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
NGINX_SITE = DEPLOY / "nginx" / "ghostcache.conf"
NGINX_LOCATIONS = DEPLOY / "nginx" / "ghostcache-locations.conf"
UNIT = DEPLOY / "systemd" / "ghostcache.service"
ENV_EXAMPLE = DEPLOY / "ghostcache.env.example"
ONION_TORRC = DEPLOY / "onion" / "torrc"
ONION_SITE = DEPLOY / "onion" / "nginx-onion.conf"
ONION_ENV = DEPLOY / "onion" / "ghostcache-onion.env"
SCRIPTS = ("cluster.sh", "backup.sh", "restore.sh")
MIB = 1024 * 1024


def location(text: str, pattern: str) -> str:
    """The body of `location <pattern> { ... }` (no nested blocks in the sample)."""
    match = re.search(r"location\s+" + re.escape(pattern) + r"\s*\{([^}]*)\}", text)
    assert match, f"no location {pattern}"
    return match.group(1)


def directive(block: str, name: str) -> str:
    match = re.search(rf"^\s*{name}\s+([^;]+);", block, re.M)
    assert match, f"no {name}"
    return match.group(1).strip()


def size_in_bytes(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}[unit.lower()]


def seconds(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(s|m)?", value).groups()  # type: ignore[union-attr]
    return int(number) * (60 if unit == "m" else 1)


# --- nginx: the sample as nginx reads it, and the numbers it must share with the app -------


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.org")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_the_nginx_sample_passes_nginx_t(tmp_path):
    nginx_binary()
    cert, key = self_signed(tmp_path)
    site = NGINX_SITE.read_text()
    for sample, real in (
        ("/etc/nginx/snippets/ghostcache-locations.conf", NGINX_LOCATIONS),
        ("/etc/ssl/ghostcache/fullchain.pem", cert),
        ("/etc/ssl/ghostcache/privkey.pem", key),
        ("/var/log/nginx/ghostcache.error.log", tmp_path / "site-error.log"),
    ):
        assert sample in site
        site = site.replace(sample, str(real))
    checked = check(wrapper(tmp_path, site), tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_nginx_body_limits_are_the_apps():
    text = NGINX_LOCATIONS.read_text()
    limits = body_limits(Settings())  # the defaults: GHOSTCACHE_MAX_UPLOAD_MB=50
    upload = size_in_bytes(directive(location(text, "= /file/upload"), "client_max_body_size"))
    assert upload == limits["files.upload"].size == Settings().max_upload_bytes + MIB
    # Everything else: the largest body any other route takes (a chat message), kept in memory.
    assert size_in_bytes(directive(text, "client_max_body_size")) == MESSAGE_BODY
    assert size_in_bytes(directive(text, "client_body_buffer_size")) >= MESSAGE_BODY
    assert directive(location(text, "= /file/upload"), "proxy_request_buffering") == "off"


def test_nginx_streams_events_and_keeps_the_apps_deadlines():
    text = NGINX_LOCATIONS.read_text()
    stream = location(text, "= /chat/stream")
    assert directive(stream, "proxy_buffering") == "off"
    assert directive(stream, "proxy_cache") == "off"
    assert seconds(directive(stream, "proxy_read_timeout")) > Settings().stream_seconds
    assert seconds(directive(text, "client_header_timeout")) == Settings().header_timeout_seconds
    assert seconds(directive(text, "client_body_timeout")) == Settings().body_timeout_seconds
    assert directive(text, "proxy_http_version") == "1.1"
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port"):
        assert re.search(rf"^proxy_set_header {header} ", text, re.M), header
    site = NGINX_SITE.read_text()
    assert "access_log off;" in site and "server_tokens off;" in site
    # The upstream keeps connections shorter than a node's keep-alive.
    assert seconds(directive(site, "keepalive_timeout")) < Settings().keepalive_seconds


# --- the onion service: tor, its nginx site and the settings agree ---------------------------


def torrc_values(name: str) -> list[str]:
    return re.findall(rf"^{name}\s+(.+?)\s*$", ONION_TORRC.read_text(), re.M)


def test_the_onion_nginx_site_passes_nginx_t(tmp_path):
    nginx_binary()
    site = ONION_SITE.read_text()
    for sample, real in (
        ("/etc/nginx/snippets/ghostcache-locations.conf", NGINX_LOCATIONS),
        ("/var/log/nginx/ghostcache-onion.error.log", tmp_path / "site-error.log"),
    ):
        assert sample in site
        site = site.replace(sample, str(real))
    checked = check(wrapper(tmp_path, site), tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_the_onion_site_counts_per_circuit_and_keeps_no_record():
    site = ONION_SITE.read_text()
    listen = directive(site, "listen")
    assert listen.endswith(" proxy_protocol") and listen.startswith("127.0.0.1:")
    # tor hands port 80 of the onion address to exactly this listener.
    assert torrc_values("HiddenServicePort") == [f"80 {listen.split()[0]}"]
    # The circuit is the client: for nginx's limits and for the app's (X-Forwarded-For).
    assert directive(site, "set_real_ip_from") == "127.0.0.1"
    assert directive(site, "real_ip_header") == "proxy_protocol"
    assert re.search(r"^proxy_set_header X-Forwarded-For \$remote_addr;", NGINX_LOCATIONS.read_text(), re.M)
    assert directive(site, "limit_req_zone").startswith("$proxy_protocol_addr ")
    assert directive(site, "limit_conn_zone").startswith("$proxy_protocol_addr ")
    assert directive(site, "limit_req_status") == directive(site, "limit_conn_status") == "429"
    # Fewer connections per circuit than tor lets a circuit open streams.
    assert int(directive(site, "limit_conn").split()[1]) < int(torrc_values("HiddenServiceMaxStreams")[0])
    assert "access_log off;" in site and "server_tokens off;" in site
    # Refusals name the client at level error: they must stay below what is logged.
    assert directive(site, "error_log").endswith(" crit")
    assert directive(site, "limit_req_log_level") == directive(site, "limit_conn_log_level") == "info"
    # The node behind it is the one the settings describe.
    env = dict(line.split("=", 1) for line in ONION_ENV.read_text().splitlines() if line[:1].isalpha())
    upstream = re.search(r"upstream ghostcache \{[^}]*server ([\d.]+):(\d+);", site)
    assert upstream and upstream.groups() == (env["GHOSTCACHE_HOST"], env["GHOSTCACHE_PORT"])


def test_the_onion_torrc_turns_its_defences_on():
    assert torrc_values("HiddenServiceVersion") == ["3"]
    assert torrc_values("HiddenServiceExportCircuitID") == ["haproxy"]
    assert torrc_values("HiddenServicePoWDefensesEnabled") == ["1"]
    assert torrc_values("HiddenServiceEnableIntroDoSDefense") == ["1"]
    assert torrc_values("HiddenServiceMaxStreamsCloseCircuit") == ["1"]
    assert torrc_values("SocksPort") == ["0"]


def test_tor_accepts_the_onion_torrc(tmp_path):
    tor = shutil.which("tor")
    if tor is None:
        pytest.skip("tor is not installed (apt-get install tor)")
    torrc = ONION_TORRC.read_text().replace("/var/lib/tor/ghostcache/", str(tmp_path / "service"))
    (tmp_path / "torrc").write_text(torrc + f"DataDirectory {tmp_path / 'data'}\n")
    checked = subprocess.run(
        [tor, "--verify-config", "-f", str(tmp_path / "torrc")], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_onion_settings_are_valid(tmp_path):
    values = dict(line.split("=", 1) for line in ONION_ENV.read_text().splitlines() if line[:1].isalpha())
    assert set(values) <= set(SETTING_NAMES), "unknown settings in the onion environment"
    settings = load_settings(values | {"GHOSTCACHE_DATA_DIR": str(tmp_path)})
    assert settings.onion and not settings.access_log
    assert settings.trusted_proxies == 1 and settings.host == "127.0.0.1"


# --- systemd, the environment file, the scripts ----------------------------------------------


def unit_value(name: str) -> str:
    values = re.findall(rf"^{name}=(.*)$", UNIT.read_text(), re.M)
    assert values, f"no {name}= in the unit"
    return values[-1]


def test_the_unit_waits_for_the_servers_graceful_stop():
    server = GhostcacheServer(Settings())  # gunicorn's options, as `ghostcache serve` sets them
    assert seconds(unit_value("TimeoutStopSec")) > server.cfg.graceful_timeout
    assert unit_value("KillSignal") == "SIGTERM" and unit_value("KillMode") == "mixed"
    assert unit_value("ExecStart").endswith("/ghostcache serve")
    assert unit_value("EnvironmentFile") == "/etc/ghostcache/ghostcache.env"
    assert unit_value("UMask") == "0077"
    assert int(unit_value("LimitNOFILE")) >= Settings().worker_connections + 256
    assert "/var/lib/ghostcache" in unit_value("ReadWritePaths")


def test_the_environment_example_holds_valid_settings(tmp_path):
    values = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    names = {name for name in values if name.startswith("GHOSTCACHE_")}
    assert names <= set(SETTING_NAMES), "unknown settings in the example"
    known = {k: v for k, v in values.items() if k in SETTING_NAMES}
    settings = load_settings(known | {"GHOSTCACHE_DATA_DIR": str(tmp_path)})
    assert settings.trusted_proxies == 1
    assert settings.database_url.startswith("postgresql+psycopg://")
    # Every commented default is the real default.
    for name, default in re.findall(r"^#(GHOSTCACHE_\w+)=(\S+)", ENV_EXAMPLE.read_text(), re.M):
        assert name in SETTING_NAMES, name
        field, read = _reader(name)
        assert read(name, default) == getattr(Settings(), field), name


def _reader(name: str):
    from ghostcache.settings import _READERS

    return _READERS[name.removeprefix("GHOSTCACHE_")]


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_scripts_parse_and_pass_shellcheck(script):
    path = DEPLOY / script
    assert os.access(path, os.X_OK), f"{script} is not executable"
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    checked = subprocess.run([shellcheck, str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout


# --- the proxy in front of a real server ----------------------------------------------------


@pytest.mark.live
def test_the_proxy_streams_events_and_uploads_in_front_of_a_real_server(tmp_path):
    nginx = nginx_binary()
    server = LiveServer(tmp_path / "data", trusted_proxies="1", database_url="").start()
    port = free_port()
    proxy_dir = tmp_path / "nginx"
    proxy_dir.mkdir()
    conf = wrapper(
        proxy_dir,
        f"upstream ghostcache {{ server 127.0.0.1:{server.port}; keepalive 8; keepalive_timeout 4s; }}\n"
        f"server {{ listen 127.0.0.1:{port}; access_log off; include {NGINX_LOCATIONS}; }}",
    )
    proxy = subprocess.Popen(
        [nginx, "-c", str(conf), "-e", str(proxy_dir / "error.log"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base + "/healthz", proxy)
        alice = Client(base, "alice").signup()

        # Events arrive as they are written: the stream's first frame within a second.
        first: list[float] = []
        started = time.monotonic()

        def listen() -> None:
            with alice.http.get(base + "/chat/stream", stream=True, timeout=10) as response:
                assert response.status_code == 200
                for _ in response.iter_content(chunk_size=None):
                    first.append(time.monotonic() - started)
                    return

        reader = threading.Thread(target=listen, daemon=True)
        reader.start()
        reader.join(5)
        assert first and first[0] < 2, "the proxy buffered the event stream"

        # nginx's own refusal keeps the contract's shape.
        refused = alice.http.post(
            base + "/chat/send",
            data=b"x" * (MESSAGE_BODY + 1),
            headers={"X-CSRFToken": alice.token, "Content-Type": "application/x-www-form-urlencoded"},
            timeout=10,
        )
        assert refused.status_code == 413
        assert refused.json()["error"] == "too_large"

        # An upload passes through as it arrives: halfway, nginx holds no temporary file
        # (a buffering proxy would be writing it to one, unlinked but open).
        content = os.urandom(3 * MIB)
        spooled: list[Path] = []

        def body():
            yield b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
            yield content[:MIB]
            time.sleep(0.5)
            spooled.extend(open_temp_files(proxy.pid, proxy_dir / "client_body"))
            yield content[MIB:]
            yield b"\r\n--b0undary--\r\n"

        stored = alice.http.post(
            base + "/file/upload",
            data=body(),  # chunked, as it comes
            headers={"X-CSRFToken": alice.token, "Content-Type": "multipart/form-data; boundary=b0undary"},
            timeout=30,
        )
        assert stored.status_code == 201, stored.text
        assert stored.json()["size"] == len(content)
        assert spooled == [], "the proxy stored the upload in a temporary file"
        download = alice.http.get(base + f"/file/{stored.json()['id']}", timeout=30)
        assert download.status_code == 200 and len(download.content) > len(content)
    finally:
        proxy.send_signal(signal.SIGQUIT)
        try:
            proxy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait()
        server.stop()


def open_temp_files(master_pid: int, folder: Path) -> list[str]:
    """Files under `folder` that nginx's workers hold open (nginx unlinks its temporary
    files at once, so only /proc shows them)."""
    found = []
    for pid in worker_pids(master_pid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(str(folder)):
                found.append(target)
    return found


def _wait_until_up(url: str, proxy: subprocess.Popen, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proxy.poll() is None, "nginx exited"
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError("nginx did not answer")

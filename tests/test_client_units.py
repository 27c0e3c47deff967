"""The command-line client without a server: profile file modes, recovery keys typed
wrong, passwords kept off the command line, pins, and check-js's integrity rule."""

from __future__ import annotations

import io
import stat

import pytest

from ghostcache import e2ee as gce1
from ghostcache.client import checkjs
from ghostcache.client.cli import build_parser, main
from ghostcache.client.pins import Pins, PinState
from ghostcache.client.profile import Profile, server_slug

SERVER = "http://127.0.0.1:9"  # nothing listens: a test that reaches the network fails


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def signed_in(tmp_path, name: str = "alice") -> Profile:
    """A profile with a saved (fake) session, as `login` leaves it."""
    profile = Profile(tmp_path / "home", SERVER)
    profile.account(name).save_session({"session": "x"}, 7, name)
    profile.set_current(name)
    return profile


def test_profile_folders_are_0700_and_files_0600(tmp_path):
    profile = signed_in(tmp_path)
    account = profile.account("alice")
    account.save_identity_der(gce1.private_pkcs8(gce1.generate_identity()))
    pins = Pins(account)
    pins.pin("Bob", gce1.public_raw(gce1.generate_identity()))
    pins.save()
    account.save_backup_ctr(1)
    folders = [profile.home, profile.server_dir, account.dir]
    assert all(mode(folder) == 0o700 for folder in folders)
    files = [p for p in profile.home.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"current", "session.json", "identity.pk8", "pins.json", "keys.json", "backup.json"} <= names
    assert all(mode(p) == 0o600 for p in files), {p.name: oct(mode(p)) for p in files}


def test_an_existing_loose_folder_is_tightened(tmp_path):
    (tmp_path / "home").mkdir(mode=0o755)
    signed_in(tmp_path)
    assert mode(tmp_path / "home") == 0o700


def test_a_username_cannot_escape_the_profile_folder(tmp_path):
    with pytest.raises(Exception, match="not a GhostCache username"):
        Profile(tmp_path, SERVER).account("../../etc")


def test_servers_get_separate_folders():
    assert server_slug("http://127.0.0.1:5000") != server_slug("http://127.0.0.1:5001")
    assert server_slug("https://chat.example/") == "https-chat.example-443"


@pytest.mark.parametrize(
    "typed, reason",
    [
        ("ABCD-EFGH", "has 52 letters and digits; this one has 8"),
        ("A" * 51 + "1", "not '1'"),
        ("A" * 51 + "B", "last character of this recovery key is wrong"),
        ("", "Nothing was entered"),
    ],
)
def test_a_mistyped_recovery_key_is_refused_before_any_request(tmp_path, monkeypatch, capsys, typed, reason):
    profile = signed_in(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(typed + "\n"))
    code = main(["--server", SERVER, "--profile", str(profile.home), "e2ee", "restore", "--recovery-stdin"])
    err = capsys.readouterr().err
    assert code == 1 and reason in err and "Could not reach" not in err
    assert typed == "" or typed not in err  # never echoes what was typed


def test_no_command_takes_a_password_or_recovery_key_on_the_command_line():
    parser = build_parser()
    seen = []
    for action in _walk(parser):
        for option in action.option_strings:
            seen.append(option)
            if "password" in option or "recovery" in option:
                assert action.nargs == 0, f"{option} takes a value on argv"
    assert "--password-stdin" in seen and "--recovery-stdin" in seen


def test_a_password_on_argv_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["login", "alice", "--password", "hunter2hunter2"])
    assert exit_info.value.code == 2


def test_the_password_is_read_from_one_stdin_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\nsecond line\n"))
    code = main(["--server", SERVER, "--profile", str(tmp_path), "login", "alice", "--password-stdin"])
    out = capsys.readouterr()
    assert code == 1 and "Could not reach" in out.err
    assert "correct horse" not in out.out + out.err


def test_commands_need_a_login_first(tmp_path, capsys):
    assert main(["--server", SERVER, "--profile", str(tmp_path), "send", "bob", "hi"]) == 1
    assert "Not signed in" in capsys.readouterr().err


def test_pins_first_use_then_change_then_trust(tmp_path):
    account = signed_in(tmp_path).account("alice")
    first, second = (gce1.public_raw(gce1.generate_identity()) for _ in range(2))
    pins = Pins(account)
    assert pins.state("Bob", gce1.kid(first)) is PinState.NEW
    pins.pin("Bob", first)
    pins.verify("bob", gce1.kid(first))
    pins.save()
    pins = Pins(account)  # from disk; names ignore case
    assert pins.state("BOB", gce1.kid(first)) is PinState.PINNED
    assert pins.state("bob", gce1.kid(second)) is PinState.CHANGED
    pins.pin("bob", second)  # trust
    assert pins.state("bob", gce1.kid(second)) is PinState.PINNED
    assert not pins.is_verified("bob", gce1.kid(second))
    assert pins.ever_pinned("bob", gce1.kid(first)) and pins.pub(gce1.kid(first)) == first


def test_backup_pins_never_replace_a_local_pin(tmp_path):
    pins = Pins(signed_in(tmp_path).account("alice"))
    pins.pin("bob", gce1.public_raw(gce1.generate_identity()))
    local = pins.pinned("bob")
    assert pins.merge({"Bob": "other-kid", "carol": "carol-kid"}) == ["bob"]
    assert pins.pinned("bob") == local and pins.pinned("carol") == "carol-kid"


@pytest.mark.parametrize(
    "integrity, ok",
    [
        ("sha384-HASH", True),
        ("  sha384-HASH  ", True),
        ("sha384-OTHER", False),
        ("sha384-HASH sha384-OTHER", False),  # a browser would accept either
        ("sha512-HASH", False),
        ("", False),
    ],
)
def test_an_integrity_attribute_must_name_exactly_the_release_hash(integrity, ok):
    assert checkjs._integrity_matches(integrity, "HASH") is ok


def test_release_hashes_cover_the_packaged_scripts():
    hashes = checkjs.release_hashes()
    assert {"app.js", "e2ee.js"} <= set(hashes) and all(len(h) == 64 for h in hashes.values())


def _walk(parser):
    for action in parser._actions:
        yield action
        for sub in (getattr(action, "choices", None) or {}).values():
            if hasattr(sub, "_actions"):
                yield from _walk(sub)


def test_a_repeated_integrity_attribute_is_read_as_a_browser_reads_it():
    """Browsers keep the first of a repeated attribute: a page that hides a wrong hash in
    front of the right one must be judged by the wrong one."""
    parser = checkjs._Scripts()
    parser.feed('<script src="/static/app.js" integrity="sha384-WRONG" integrity="sha384-RIGHT"></script>')
    assert parser.found == [("/static/app.js", "sha384-WRONG")]

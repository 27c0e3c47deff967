"""Settings come from GHOSTCACHE_* variables, validated once with clear errors."""

from pathlib import Path

import pytest

from ghostcache.secrets import Secret
from ghostcache.settings import SettingsError, load_settings


def test_defaults_serve_one_machine_on_loopback():
    settings = load_settings({})
    assert settings.host == "127.0.0.1"
    assert settings.port == 5000
    assert settings.data_dir == Path("instance")
    assert settings.sqlalchemy_url.startswith("sqlite:///")
    assert settings.max_upload_mb == 50
    assert settings.inactivity_days == 30


def test_environment_overrides_are_read():
    settings = load_settings(
        {"GHOSTCACHE_PORT": "8080", "GHOSTCACHE_DATA_DIR": "/srv/gc", "GHOSTCACHE_RATELIMIT": "off"}
    )
    assert settings.port == 8080
    assert settings.blob_path == Path("/srv/gc/blobs")
    assert settings.ratelimit is False


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"GHOSTCACHE_PORT": "eighty"}, "Not a whole number"),
        ({"GHOSTCACHE_PORT": "70000"}, "Expected 1 to 65535"),
        ({"GHOSTCACHE_RATELIMIT": "maybe"}, "Expected on or off"),
        ({"GHOSTCACHE_PORTT": "1"}, "Unknown setting GHOSTCACHE_PORTT"),
        ({"GHOSTCACHE_DATA_DIR": "/srv/gc", "GHOSTCACHE_BLOB_DIR": "/srv/gc/"}, "That is the data folder"),
        ({"GHOSTCACHE_DATA_DIR": "/srv/gc/data", "GHOSTCACHE_BLOB_DIR": "/srv"}, "is inside it"),
    ],
)
def test_bad_values_name_the_setting_and_the_value(env, fragment):
    with pytest.raises(SettingsError, match=fragment):
        load_settings(env)


def test_master_key_from_environment_never_prints():
    settings = load_settings({"GHOSTCACHE_MASTER_KEY": "super-secret-value"})
    assert isinstance(settings.master_key, Secret)
    assert "super-secret-value" not in repr(settings)
    assert "super-secret-value" not in str(settings.master_key)

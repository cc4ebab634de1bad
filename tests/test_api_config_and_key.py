"""Configuration is validated once with messages that name the key; the API key file must be
root-owned and private, or the daemon refuses to start."""

from __future__ import annotations

import os

import pytest

from flashfas_edge.api.auth import ApiKeyFileError, key_matches, load_api_key
from flashfas_edge.config import ConfigError, load_config


def _write(tmp_path, text: str, name: str = "c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_bind_loopback_and_keep_no_images():
    loaded = load_config(None)
    assert loaded.daemon.server.host == "127.0.0.1"
    assert loaded.daemon.audit.store_images is False
    assert not loaded.sim and load_config(None, sim=True).sim


@pytest.mark.parametrize("text,where", [
    ("[server]\nprot = 1\n", "server.prot"),
    ("[server]\nport = 70000\n", "server.port"),
    ("[server]\nhost = \"localhost:80\"\n", "server.host"),
    ("[server]\nhost = \"0.0.0.0\"\n", "allow_non_loopback"),
    ("[queue]\nmax_waiting = -1\n", "queue.max_waiting"),
    ("[pipeline.challenge]\nlevels = [1.0, 1.0, 0.0]\n", "pipeline.challenge.levels"),
    ("[kiosk]\nmode = \"virtual\"\n", "kiosk.mode"),
    ("[model]\nbackend = \"cuda\"\n", "model.backend"),
])
def test_a_bad_value_or_unknown_key_is_an_error_naming_it(tmp_path, text, where):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    assert where in str(info.value)


def test_a_non_loopback_address_needs_an_explicit_yes(tmp_path):
    text = '[server]\nhost = "0.0.0.0"\nallow_non_loopback = true\n'
    loaded = load_config(_write(tmp_path, text))
    assert loaded.daemon.server.host == "0.0.0.0"
    assert load_config(_write(tmp_path, '[server]\nhost = "::1"\n')).daemon.server.host == "::1"


def test_a_file_that_is_not_toml_is_an_error_naming_the_file(tmp_path):
    path = _write(tmp_path, "[server\nport=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "cal.json").write_text('{"latency_us": 12000}')
    loaded = load_config(_write(tmp_path, 'calibration_file = "cal.json"\n'
                                          '[server]\napi_key_file = "key"\n'))
    assert loaded.daemon.server.api_key_file == tmp_path / "key"
    assert loaded.pipeline.latency_us == 12000
    assert loaded.pipeline.threshold_override is None


def test_an_invalid_calibration_file_is_an_error_naming_the_field(tmp_path):
    (tmp_path / "cal.json").write_text('{"latency_us": 12000, "threshold": 1.5}')
    with pytest.raises(ConfigError, match="threshold"):
        load_config(_write(tmp_path, 'calibration_file = "cal.json"\n'))


def _key(tmp_path, mode=0o600, text="k" * 32):
    path = tmp_path / "api-key"
    path.write_text(text + "\n")
    os.chmod(path, mode)
    return path



def test_key_file_modes(tmp_path):
    assert load_api_key(_key(tmp_path, 0o600)) == "k" * 32
    assert load_api_key(_key(tmp_path, 0o640)) == "k" * 32
    for mode in (0o644, 0o660, 0o604, 0o602):
        with pytest.raises(ApiKeyFileError, match="mode"):
            load_api_key(_key(tmp_path, mode))


def test_a_key_file_owned_by_someone_else_is_refused(tmp_path):
    path = _key(tmp_path)
    if os.geteuid() != 0:
        with pytest.raises(ApiKeyFileError, match="owned by uid"):
            load_api_key(path, allowed_owner_uids=(0,))
        return
    os.chown(path, 4242, 4242)
    with pytest.raises(ApiKeyFileError, match="owned by uid 4242"):
        load_api_key(path)


def test_a_symlinked_short_or_missing_key_is_refused(tmp_path):
    real = _key(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(ApiKeyFileError):
        load_api_key(link)
    with pytest.raises(ApiKeyFileError, match="at least"):
        load_api_key(_key(tmp_path, text="short"))
    with pytest.raises(ApiKeyFileError, match="cannot open"):
        load_api_key(tmp_path / "absent")


def test_key_comparison():
    assert key_matches("a" * 20, "a" * 20)
    assert not key_matches("a" * 20, "a" * 19)
    assert not key_matches("a" * 20, None)
    assert not key_matches("a" * 20, "ä" * 20)

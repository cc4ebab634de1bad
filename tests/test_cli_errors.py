"""Real subprocess runs of the daemon's CLI where it must refuse: bad configuration, unsafe API key
file, missing bundle (exit 78, message naming the cause), unreachable daemon (exit 2)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flashfas_edge.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


def _key(tmp_path, mode=0o600):
    path = tmp_path / "api-key"
    path.write_text("k" * 40 + "\n")
    os.chmod(path, mode)
    return path


def test_help_shows_examples():
    result = _cli("serve", "--help")
    assert result.returncode == 0 and "examples:" in result.stdout
    for command in ("check", "sim", "record", "demo"):
        assert "examples:" in _cli(command, "--help").stdout


def test_serve_refuses_an_unknown_config_key_with_exit_78(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nprot = 8080\n")
    result = _cli("serve", "--config", str(config))
    assert result.returncode == 78
    assert "server.prot" in result.stderr


def test_serve_refuses_a_world_readable_api_key_with_exit_78(tmp_path):
    key = _key(tmp_path, 0o644)
    result = _cli("serve", "--sim", "--port", "0", "--api-key-file", str(key))
    assert result.returncode == 78
    assert "mode 0644" in result.stderr


def test_serve_refuses_a_missing_bundle_naming_it(tmp_path):
    key = _key(tmp_path)
    config = tmp_path / "c.toml"
    config.write_text(f'[server]\nport = 0\napi_key_file = "{key}"\n'
                      f'[audit]\npath = "{tmp_path / "audit.jsonl"}"\n'
                      f'[model]\nbundle = "{tmp_path / "no-such-bundle"}"\n')
    result = _cli("serve", "--sim", "--config", str(config))
    assert result.returncode == 78
    assert "no-such-bundle" in result.stderr


def test_check_against_no_daemon_exits_2_with_a_json_error(tmp_path):
    key = _key(tmp_path)
    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _cli("check", "--json", "--url", f"http://127.0.0.1:{port}",
                  "--api-key-file", str(key), "--timeout", "5")
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"]["code"] == "unreachable"


@pytest.mark.parametrize("missing", ["--out"])
def test_record_requires_an_output_folder(missing):
    result = _cli("record", "--sim")
    assert result.returncode == 2 and missing in result.stderr


def test_a_real_kiosk_without_its_key_file_refuses_to_start(tmp_path):
    result = _cli("serve", "--port", "0", "--api-key-file", str(tmp_path / "absent"))
    assert result.returncode == 78
    assert "cannot open the API key file" in result.stderr


def test_check_without_a_key_file_names_the_problem_not_a_status(tmp_path):
    result = _cli("check", "--api-key-file", str(tmp_path / "missing"))
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith("check failed: no_api_key: cannot read the API key file")
    assert " 0 " not in line and "\n" not in line


def test_demo_rejects_an_unknown_scene_before_starting_a_daemon():
    result = _cli("demo", "--scenes", "live", "ghost", timeout=30)
    assert result.returncode == 2
    assert "starting the daemon" not in result.stdout
    message = result.stderr.strip()
    assert "'ghost'" in message
    for known in ("live", "print", "replay", "mask", "injected_replay", "too_far"):
        assert known in message


def test_serve_scene_needs_sim_and_a_known_name(tmp_path):
    without_sim = _cli("serve", "--scene", "print")
    assert without_sim.returncode == 78 and "need --sim" in without_sim.stderr
    unknown = _cli("serve", "--sim", "--scene", "ghost", "--port", "0")
    assert unknown.returncode == 78 and "'ghost'" in unknown.stderr

"""The systemd deployment: install target, unit verification, hardening, sysusers/tmpfiles."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from flashfas_edge.config import load_config

REPO = Path(__file__).resolve().parents[1]
BINDIR = Path(sys.executable).parent  # holds the flashfas-edge entry point of this install


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = tmp_path_factory.mktemp("stage")
    subprocess.run(
        ["make", "-s", "-C", str(REPO / "systemd"), "install-systemd", f"DESTDIR={root}",
         "NO_SYSTEMCTL=1", f"BINDIR={BINDIR}"],
        check=True, capture_output=True, text=True, timeout=60,
    )
    return root


def _unit(staged: Path) -> Path:
    return staged / "usr/lib/systemd/system/flashfas-edge.service"


def _directives(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def test_install_target_writes_units_config_and_a_private_api_key(staged):
    unit = _unit(staged)
    assert unit.is_file()
    assert (staged / "usr/lib/sysusers.d/flashfas-edge.conf").is_file()
    assert (staged / "usr/lib/tmpfiles.d/flashfas-edge.conf").is_file()
    key = staged / "etc/flashfas-edge/api-key"
    assert re.fullmatch(r"[0-9a-f]{64}\n", key.read_text())
    assert stat.S_IMODE(key.stat().st_mode) == 0o640
    config = staged / "etc/flashfas-edge/flashfas-edge.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert f"ExecStart={BINDIR}/flashfas-edge serve --config /etc/flashfas-edge/" \
        in unit.read_text()


def test_reinstall_keeps_the_sites_api_key(staged):
    key = staged / "etc/flashfas-edge/api-key"
    before = key.read_text()
    subprocess.run(
        ["make", "-s", "-C", str(REPO / "systemd"), "install-systemd", f"DESTDIR={staged}",
         "NO_SYSTEMCTL=1", f"BINDIR={BINDIR}"], check=True, capture_output=True, timeout=60)
    assert key.read_text() == before


def test_unit_is_notify_with_watchdog_restart_and_a_device_allow_list(staged):
    d = _directives(_unit(staged))
    values = {}
    for key, value in d:
        values.setdefault(key, []).append(value)
    assert values["Type"] == ["notify"]
    assert int(values["WatchdogSec"][0]) > 0
    assert values["Restart"] == ["on-failure"]
    assert values["RestartPreventExitStatus"] == ["78"]  # EX_CONFIG from `serve`
    assert values["User"] == ["flashfas-edge"]
    assert values["NoNewPrivileges"] == ["yes"]
    assert values["ProtectSystem"] == ["strict"] and values["ProtectHome"] == ["yes"]
    assert values["DevicePolicy"] == ["closed"]
    assert sorted(values["DeviceAllow"]) == ["/dev/ttyACM0 rw", "/dev/video0 rw"]
    assert values["StateDirectory"] == ["flashfas-edge"]
    assert values["LogsDirectory"] == ["flashfas-edge"]
    assert values["IPAddressAllow"] == ["localhost"]


def test_systemd_analyze_verify_finds_nothing(staged):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    result = subprocess.run(["systemd-analyze", "verify", str(_unit(staged))],
                            capture_output=True, text=True, timeout=60, cwd=staged)
    # verify exits 0 on unknown keys too; any output is a finding.
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def _browser_unit(staged: Path) -> Path:
    return staged / "usr/lib/systemd/system/flashfas-kiosk-browser.service"


def test_the_kiosk_browser_unit_runs_chromium_in_kiosk_mode_without_waiting_for_the_daemon(
        staged):
    unit = _browser_unit(staged)
    text = unit.read_text()
    pairs = _directives(unit)
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)
    command = []
    for line in text.split("ExecStart=", 1)[1].splitlines():  # with its continuation lines
        command.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    exec_start = " ".join(command)
    assert exec_start.startswith("/usr/bin/cage -d -- /usr/bin/chromium --kiosk")
    assert exec_start.endswith("${KIOSK_URL}")
    for flag in ("--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                 "--disable-backgrounding-occluded-windows"):  # rAF keeps the vsync pace
        assert flag in exec_start
    assert values["Wants"] == ["flashfas-edge.service"]
    # the daemon is READY only once this browser's flash client connected: no ordering after it
    assert all("flashfas-edge.service" not in v for v in values["After"])
    assert values["Restart"] == ["always"] and values["User"] == ["kiosk"]
    assert "DISPLAY_FLASH.md" in values["Documentation"][0]
    assert (staged / "usr/share/doc/flashfas-edge/DISPLAY_FLASH.md").is_file()


def test_systemd_analyze_verify_finds_nothing_in_the_kiosk_browser_unit(staged):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    result = subprocess.run(["systemd-analyze", "verify", str(_browser_unit(staged))],
                            capture_output=True, text=True, timeout=60, cwd=staged)
    findings = [line for line in result.stderr.splitlines() if line.strip()]
    # The compositor and the browser are the kiosk's packages (.ci/run installs them): where
    # they are not installed, their absence is the only finding allowed.
    missing = [f"Command {path} is not executable" for path in ("/usr/bin/cage",)
               if not Path(path).exists()]
    unexpected = [f for f in findings if not any(m in f for m in missing)]
    assert unexpected == [], result.stderr


def test_hardening_exposure_is_rated_ok(staged):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(_unit(staged))],
        capture_output=True, text=True, timeout=60, cwd=staged)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    if match is None:
        pytest.skip(f"this systemd-analyze cannot rate a unit offline: {result.stderr[:200]}")
    assert float(match.group(1)) <= 2.0, result.stdout[-2000:]


def test_sysusers_and_tmpfiles_create_the_user_and_root_owned_config(staged):
    if shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None:
        pytest.skip("systemd-sysusers/systemd-tmpfiles are not installed here")
    if os.geteuid() != 0:
        pytest.skip("creating users under --root needs root")
    subprocess.run(["systemd-sysusers", f"--root={staged}",
                    str(staged / "usr/lib/sysusers.d/flashfas-edge.conf")],
                   check=True, capture_output=True, timeout=60)
    passwd = (staged / "etc/passwd").read_text()
    entry = next(line for line in passwd.splitlines() if line.startswith("flashfas-edge:"))
    uid, gid = int(entry.split(":")[2]), int(entry.split(":")[3])
    assert entry.endswith("/usr/sbin/nologin")
    group = (staged / "etc/group").read_text()
    assert re.search(r"^video:.*flashfas-edge", group, re.M)
    (staged / "var/lib").mkdir(parents=True, exist_ok=True)
    subprocess.run(["systemd-tmpfiles", f"--root={staged}", "--create",
                    str(staged / "usr/lib/tmpfiles.d/flashfas-edge.conf")],
                   check=True, capture_output=True, timeout=60)
    key = (staged / "etc/flashfas-edge/api-key").stat()
    assert (key.st_uid, key.st_gid, stat.S_IMODE(key.st_mode)) == (0, gid, 0o640)
    conf_dir = (staged / "etc/flashfas-edge").stat()
    assert (conf_dir.st_uid, conf_dir.st_gid) == (0, gid)
    images = (staged / "var/lib/flashfas-edge/audit-images").stat()
    assert (images.st_uid, stat.S_IMODE(images.st_mode)) == (uid, 0o750)


def test_the_shipped_config_is_valid(staged, tmp_path):
    text = (staged / "etc/flashfas-edge/flashfas-edge.toml").read_text()
    calibration = tmp_path / "calibration.json"
    calibration.write_text('{"format_version": 1, "latency_us": 41000, "threshold": 0.62}')
    text = text.replace("/etc/flashfas-edge/calibration.json", str(calibration))
    path = tmp_path / "flashfas-edge.toml"
    path.write_text(text)
    loaded = load_config(path)
    assert loaded.daemon.server.host == "127.0.0.1"
    assert loaded.daemon.kiosk.flash.kind == "led_serial"
    assert loaded.pipeline.latency_us == 41000  # calibration wins
    assert loaded.pipeline.threshold_override == pytest.approx(0.62)


# The example config's deliberate choices for a real kiosk (each commented in the file).
EXAMPLE_DIFFERS_FROM_DEFAULT = {
    ("calibration_file",): "/etc/flashfas-edge/calibration.json",
    ("kiosk", "flash", "kind"): "led_serial",
    ("model", "backend"): "auto",
}


def _leaves(table: dict, prefix: tuple = ()):
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def test_example_config_shows_the_defaults_except_the_marked_kiosk_choices():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    from flashfas_edge.config import DaemonConfig

    text = (Path(__file__).resolve().parents[1] / "systemd" / "flashfas-edge.toml").read_text()
    example = dict(_leaves(tomllib.loads(text)))
    DaemonConfig.model_validate(tomllib.loads(text))  # every key exists and is valid
    defaults = DaemonConfig().model_dump(mode="json")
    differing = {}
    for path, value in example.items():
        default = defaults
        for key in path:
            default = default[key]
        if value != default:
            differing[path] = value
    assert differing == EXAMPLE_DIFFERS_FROM_DEFAULT
    for path in EXAMPLE_DIFFERS_FROM_DEFAULT:  # and the file says so beside each
        line = next(i for i, row in enumerate(text.splitlines())
                    if row.split("=")[0].strip() == path[-1])
        assert "differs from the default" in "\n".join(text.splitlines()[line - 3:line])

"""Which flash the configuration picks for `kind = "display"`, and the one combination it refuses:
the browser surface with a Unix socket (a browser's WebSocket needs the TCP listener)."""

from __future__ import annotations

import pytest

from flashfas_edge.config import ConfigError, load_config


def _config(tmp_path, **sections):
    overrides = {"server": {"api_key_file": str(tmp_path / "key")},
                 "audit": {"path": str(tmp_path / "audit.jsonl")}}
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_config(None, overrides=overrides)


def test_the_display_surface_defaults_to_the_browser_on_a_real_kiosk_only(tmp_path):
    assert _config(tmp_path).daemon.kiosk.display_surface == "browser"
    sim = _config(tmp_path, kiosk={"mode": "sim"})
    assert sim.daemon.kiosk.display_surface is None  # the simulated kiosk's own display
    window = _config(tmp_path, kiosk={"mode": "sim", "flash": {"surface": "window"}})
    assert window.daemon.kiosk.display_surface == "window"
    led = _config(tmp_path, kiosk={"flash": {"kind": "led_serial", "surface": "browser"}})
    assert led.daemon.kiosk.display_surface is None


def test_the_browser_surface_with_a_unix_socket_is_refused_at_start(tmp_path):
    with pytest.raises(ConfigError, match="browser display flash connects over TCP"):
        _config(tmp_path, server={"unix_socket": str(tmp_path / "api.sock")})
    window = _config(tmp_path, server={"unix_socket": str(tmp_path / "api.sock")},
                     kiosk={"flash": {"surface": "window"}})
    assert window.daemon.server.unix_socket is not None

"""Config errors are clean: every invalid configuration or calibration value stops `serve` with
exit 78 (EX_CONFIG) and one line naming the key — never a traceback. A value the calibration file
accepts is never refused when it is applied (one bound, one place)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import annotated_types as at
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from flashfas_edge.config import CalibrationFile, ConfigError, DaemonConfig, load_config

EX_CONFIG = 78


def _bounds(info: FieldInfo) -> list[object]:
    """A field's numeric bounds, including those inside ``Annotated[...] | None``."""
    found = [m for m in info.metadata if isinstance(m, (at.Gt, at.Ge, at.Lt, at.Le))]
    stack = [info.annotation]
    while stack:
        tp = stack.pop()
        for arg in typing.get_args(tp):
            if isinstance(arg, FieldInfo):
                found += [m for m in arg.metadata if isinstance(m, (at.Gt, at.Ge, at.Lt, at.Le))]
            elif isinstance(arg, (at.Gt, at.Ge, at.Lt, at.Le)):
                found.append(arg)
            else:
                stack.append(arg)
    return found


def _outside(bound: object) -> float:
    """A value just outside ``bound`` (on the bound itself where the bound is strict)."""
    if isinstance(bound, at.Gt):
        return bound.gt
    if isinstance(bound, at.Ge):
        return bound.ge - 1
    if isinstance(bound, at.Lt):
        return bound.lt
    assert isinstance(bound, at.Le)
    return bound.le + 1


def _bounded_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()):
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from _bounded_fields(info.annotation, (*prefix, name))
            continue
        for bound in _bounds(info):
            yield (*prefix, name), _outside(bound)


def _toml(path: tuple[str, ...], value: float) -> str:
    section, key = path[:-1], path[-1]
    head = f"[{'.'.join(section)}]\n" if section else ""
    return f"{head}{key} = {value!r}\n"


CONFIG_CASES = list(_bounded_fields(DaemonConfig))
CALIBRATION_CASES = list(_bounded_fields(CalibrationFile))


def test_the_field_walk_finds_the_bounds_it_must_check():
    keys = {".".join(p) for p, _ in CONFIG_CASES}
    assert {"server.port", "pipeline.threshold_override", "pipeline.latency_us",
            "pipeline.gates.min_face_score", "pipeline.landmarks.threads"} <= keys
    assert {".".join(p) for p, _ in CALIBRATION_CASES} >= {"threshold", "latency_us"}


@pytest.mark.parametrize(("path", "value"), CONFIG_CASES, ids=lambda v: str(v))
def test_every_out_of_range_config_value_is_a_one_line_error_naming_it(tmp_path, path, value):
    config = tmp_path / "c.toml"
    config.write_text(_toml(path, value))
    with pytest.raises(ConfigError) as info:
        load_config(config)
    message = str(info.value)
    assert "\n" not in message and ".".join(path) in message and str(config) in message


@pytest.mark.parametrize(("path", "value"), CALIBRATION_CASES, ids=lambda v: str(v))
def test_every_out_of_range_calibration_value_is_a_one_line_error_naming_it(
    tmp_path, path, value
):
    calibration = {"latency_us": 1000, path[-1]: value}
    (tmp_path / "cal.json").write_text(json.dumps(calibration))
    config = tmp_path / "c.toml"
    config.write_text('calibration_file = "cal.json"\n')
    with pytest.raises(ConfigError) as info:
        load_config(config)
    message = str(info.value)
    assert "\n" not in message and path[-1] in message and "cal.json" in message


@pytest.mark.parametrize(("threshold", "latency_us"), [(1.0, 1_000_000), (1e-6, 0)])
def test_what_calibration_accepts_is_applied(tmp_path, threshold, latency_us):
    (tmp_path / "cal.json").write_text(
        json.dumps({"latency_us": latency_us, "threshold": threshold})
    )
    config = tmp_path / "c.toml"
    config.write_text('calibration_file = "cal.json"\n')
    loaded = load_config(config)
    assert loaded.pipeline.threshold_override == threshold
    assert loaded.pipeline.latency_us == latency_us


# --- the real CLI -------------------------------------------------------------------------------


def _serve(tmp_path: Path, config_text: str, calibration: dict | None = None):
    key = tmp_path / "api-key"
    key.write_text("k" * 40 + "\n")
    os.chmod(key, 0o600)
    head = ""
    if calibration is not None:
        (tmp_path / "cal.json").write_text(json.dumps(calibration))
        head = 'calibration_file = "cal.json"\n'
    config = tmp_path / "c.toml"
    config.write_text(f'{head}[server]\nport = 0\napi_key_file = "{key}"\n'
                      f'[audit]\npath = "{tmp_path / "audit.jsonl"}"\n{config_text}')
    return subprocess.run(
        [sys.executable, "-m", "flashfas_edge.cli", "serve", "--sim", "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    ("config_text", "calibration", "named"),
    [
        # the calibration file that once died with a traceback: threshold = 0
        ("", {"latency_us": 1000, "threshold": 0}, "threshold"),
        ("", {"latency_us": -5}, "latency_us"),
        ("[pipeline]\nthreshold_override = 0\n", None, "pipeline.threshold_override"),
        ('[kiosk.sim]\nscene = "bogus"\n', None, "kiosk.sim"),
        # a challenge unlike the bundle's training: both named
        ("[pipeline.challenge]\nlevels = [1.0, 0.8, 0.6, 0.3, 0.0]\n", None,
         "[1.0, 0.75, 0.5, 0.25, 0.0]"),
    ],
    ids=["calibration-threshold-0", "calibration-latency", "threshold-override-0", "sim-scene",
         "challenge-levels"],
)
def test_serve_exits_78_with_one_line_for_a_bad_value(tmp_path, config_text, calibration, named):
    result = _serve(tmp_path, config_text, calibration)
    assert result.returncode == EX_CONFIG, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith("flashfas-edge serve:")]
    assert len(errors) == 1 and named in errors[0], result.stderr


def test_an_led_panel_kiosk_models_the_panels_light_rise_unless_configured():
    from flashfas_edge.config import LED_PANEL_RISE_US, load_config

    led = load_config(None, overrides={"kiosk": {"flash": {"kind": "led_serial"}}})
    assert led.pipeline.display_rise_us == LED_PANEL_RISE_US
    display = load_config(None)
    assert display.pipeline.display_rise_us == 4_000
    chosen = load_config(None, overrides={"kiosk": {"flash": {"kind": "led_serial"}},
                                          "pipeline": {"display_rise_us": 500}})
    assert chosen.pipeline.display_rise_us == 500

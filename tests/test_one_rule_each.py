"""One rule, one place: the N0 range every layer checks, the clock that flash onsets and frame
times share, and the check ids."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flashfas_edge import _core
from flashfas_edge.clock import monotonic_us
from flashfas_edge.flash_levels import DEFAULT_LEVELS, N0_MAX, N0_MIN, check_n0
from flashfas_edge.pipeline.config import ChallengeConfig
from flashfas_edge.pipeline.result import new_check_id
from flashfas_edge.sim.schedule import ScheduleSpec
from flashfas_edge.train.config import ConfigError as TrainConfigError
from flashfas_edge.train.config import ModelConfig


def _levels(n0: int) -> tuple[float, ...]:
    return tuple(1.0 - k / (n0 - 1) for k in range(n0))


def test_the_python_n0_range_is_the_cores():
    _core.differential_matrix(N0_MIN)
    _core.differential_matrix(N0_MAX)
    for outside in (N0_MIN - 1, N0_MAX + 1):
        with pytest.raises(ValueError):
            _core.differential_matrix(outside)


@pytest.mark.parametrize("n0", [N0_MIN - 1, N0_MIN, N0_MAX, N0_MAX + 1])
def test_daemon_renderer_and_trainer_accept_the_same_n0(n0):
    inside = N0_MIN <= n0 <= N0_MAX
    checks = [
        lambda: check_n0(n0),
        lambda: ChallengeConfig(levels=_levels(n0)),
        lambda: ScheduleSpec(levels=_levels(n0)),
        lambda: ModelConfig(n0=n0).validate(),
    ]
    for check in checks:
        if inside:
            check()
        else:
            with pytest.raises((ValueError, ValidationError, TrainConfigError)):
                check()


def test_daemon_and_renderer_default_to_the_same_levels():
    assert ChallengeConfig().levels == ScheduleSpec().levels == DEFAULT_LEVELS


def test_flash_onsets_and_frame_times_read_one_clock():
    import flashfas_edge.capture.v4l2_camera as v4l2
    import flashfas_edge.daemon.service as service
    import flashfas_edge.sim.kiosk_camera as sim_camera
    import flashfas_edge.sim.kiosk_flash as sim_flash

    for module in (service, v4l2, sim_camera, sim_flash):
        assert module.monotonic_us is monotonic_us, module.__name__
    a = monotonic_us()
    b = monotonic_us()
    assert isinstance(a, int) and 0 <= b - a < 1_000_000


def test_check_ids_are_unique_hex():
    ids = {new_check_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)

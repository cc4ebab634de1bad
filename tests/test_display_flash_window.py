"""The display flash as the daemon's own full-screen window (pygame / SDL2 with SDL's dummy video
driver): each state fills the window in order, flip times increase and every state lasts its
duration, a stalled window is a FlashError, and a check on the simulated kiosk whose scene the
window's reported flips light answers live."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pygame = pytest.importorskip("pygame", reason="the window surface needs pygame "
                                              "(the [display-native] extra)")

from display_flash_rig import schedule_of  # noqa: E402

from flashfas_edge.config import load_config  # noqa: E402
from flashfas_edge.flash.base import FlashError, FlashState  # noqa: E402
from flashfas_edge.flash.display_window import WindowDisplayFlash  # noqa: E402
from flashfas_edge.flash.presentation import srgb_bytes  # noqa: E402

DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "engines" / "edge-default"
COLOURS = [(1.0, 1.0, 1.0), (1.0, 0.2, 0.0), (0.0, 0.6, 0.1), (0.1, 0.2, 1.0), (0.0, 0.0, 0.0)]


@pytest.fixture(autouse=True)
def _dummy_video(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # read by SDL itself when the window opens


def test_the_window_paints_each_state_in_order_for_its_duration():
    shown: list[tuple[tuple[int, int, int] | None, tuple[int, ...]]] = []

    def read_back(state: FlashState | None, t_us: int) -> None:
        # called on the window's thread right after the flip: what the window now holds
        surface = pygame.display.get_surface()
        w, h = surface.get_size()
        pixels = {tuple(surface.get_at(p))[:3] for p in ((1, 1), (w - 2, h - 2), (w // 2, h // 2))}
        assert len(pixels) == 1
        shown.append((None if state is None else srgb_bytes(state), pixels.pop()))

    flash = WindowDisplayFlash(idle_rgb=(0.3, 0.3, 0.3), on_presented=read_back)
    flash.start()
    try:
        flash.self_test()
        schedule = schedule_of(COLOURS, 70_000)
        playback = flash.play(schedule, timeout_s=2.0)
        painted = [pixel for _, pixel in shown]
        assert painted == [*[srgb_bytes(s) for s in schedule.states],
                           srgb_bytes(FlashState((0.3, 0.3, 0.3), 1.0))]
        times = [*playback.onsets_us, playback.end_us]
        assert all(b - a >= 70_000 for a, b in zip(times, times[1:], strict=False)), times
        assert all(b - a < 70_000 + 50_000 for a, b in zip(times, times[1:], strict=False))
    finally:
        flash.stop()


def test_a_window_that_stalls_mid_sequence_is_a_flash_error():
    def stall(state: FlashState | None, t_us: int) -> None:
        if state is not None and state.rgb == COLOURS[2]:
            time.sleep(0.2)  # the window thread hangs (a compositor stall) after this flip

    flash = WindowDisplayFlash(on_presented=stall)
    flash.start()
    try:
        with pytest.raises(FlashError, match="the display stalled"):
            flash.play(schedule_of(COLOURS, 70_000), timeout_s=2.0)
        with pytest.raises(FlashError, match="did not answer"):
            flash.play(schedule_of(COLOURS, 70_000), timeout_s=0.1)
    finally:
        flash.stop()
    with pytest.raises(FlashError, match="not open"):
        flash.self_test()


@pytest.mark.slow
@pytest.mark.skipif(not (DEFAULT_BUNDLE / "manifest.json").is_file(),
                    reason="the trained default bundle is not in this checkout")
def test_a_check_on_the_simulated_kiosk_lit_by_the_window_answers_live(tmp_path):
    from flashfas_edge.kiosk.assembly import build_kiosk

    config = load_config(None, overrides={
        "server": {"port": 0, "api_key_file": str(tmp_path / "unused")},
        "audit": {"path": str(tmp_path / "audit.jsonl")},
        "kiosk": {"mode": "sim", "flash": {"kind": "display", "surface": "window"}},
        "pipeline": {"landmarks": {"provider": "ground_truth"}},
    })
    kiosk = build_kiosk(config)
    service = kiosk.service
    assert kiosk.flash_clients is None  # the window needs no browser client
    service.start()
    try:
        assert service.wait_ready(120), service.health()
        answers = []
        for _ in range(6):  # a loaded machine starves the simulated camera: retry, then live
            result = service.run_check(want_depth=False)[0]
            answers.append((result.verdict.value, result.reason.value))
            if result.verdict.value == "live":
                break
        assert answers[-1] == ("live", "score_above_threshold"), answers
        assert all(v == "retry" for v, _ in answers[:-1]), answers
    finally:
        service.stop()

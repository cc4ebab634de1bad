"""The simulated kiosk behaves like hardware: frames on the monotonic clock, the flash changes the
light after the device latency, rows see the light of their own exposure (rolling shutter), and
the test hooks provoke what the quality gates must catch."""

from __future__ import annotations

import time

import numpy as np
import pytest

from flashfas_edge.capture.base import Camera, CameraError
from flashfas_edge.clock import monotonic_us
from flashfas_edge.flash.base import FlashDriver, FlashError, FlashSchedule, FlashState
from flashfas_edge.sim.kiosk import SimKiosk, Subject
from flashfas_edge.sim.kiosk_camera import SimCamera
from flashfas_edge.sim.kiosk_flash import SimFlashDriver

W, H = 320, 240
WHITE, BLACK = FlashState((1, 1, 1), 1.0), FlashState((1, 1, 1), 0.0)


@pytest.fixture()
def kiosk():
    return SimKiosk(width=W, height=H, subject=Subject(scenario="dark_room", seed=3))


def _face_mean(img: np.ndarray, lm: np.ndarray) -> float:
    x0, y0 = lm.min(axis=0).astype(int)
    x1, y1 = lm.max(axis=0).astype(int)
    return float(img[y0:y1, x0:x1].mean())


def test_sim_devices_implement_the_hardware_interfaces(kiosk):
    assert isinstance(SimCamera(kiosk), Camera)
    assert isinstance(SimFlashDriver(kiosk), FlashDriver)


def test_frames_arrive_at_the_frame_rate_with_landmarks(kiosk):
    cam = SimCamera(kiosk)
    cam.start()
    try:
        t0 = monotonic_us()
        frames = cam.frames_between(t0, t0 + 400_000, timeout_s=3.0)
    finally:
        cam.stop()
    assert len(frames) >= 6  # 12 at 30 fps over 0.4 s; a slow shared machine drops some
    starts = np.array([f.t_start_us for f in frames])
    assert np.all(starts >= t0) and np.all(starts < t0 + 400_000)
    gaps = np.diff(starts)
    assert np.all(gaps % round(1e6 / 30) <= 1) or np.min(gaps) >= 33_000
    f = frames[0]
    assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
    assert f.meta["landmarks"].shape == (5, 2)
    assert f.exposure_us == kiosk.exposure_us and f.readout_us == kiosk.readout_us


def test_a_stopped_camera_is_a_camera_error(kiosk):
    cam = SimCamera(kiosk)
    with pytest.raises(CameraError):
        cam.frames_between(0, monotonic_us() + 10**6, timeout_s=0.2)


def test_the_flash_changes_the_light_after_the_device_latency(kiosk):
    lm = kiosk.scene.landmarks
    t = 10_000_000
    kiosk.command_display(BLACK, t)
    kiosk.command_display(WHITE, t + 300_000)
    lat = kiosk.latency_us
    jitter = kiosk.profile.latency_jitter_us
    settle = kiosk.readout_us + kiosk.exposure_us + kiosk.profile.display_rise_us + jitter
    dark, _ = kiosk.render_frame(t + lat + 150_000)
    # commanded but not yet visible: still dark
    before, _ = kiosk.render_frame(t + 300_000 + lat - jitter - settle)
    bright, _ = kiosk.render_frame(t + 300_000 + lat + jitter + 1_000)
    assert _face_mean(bright, lm) > _face_mean(dark, lm) + 20
    assert abs(_face_mean(before, lm) - _face_mean(dark, lm)) < 3


def test_rolling_shutter_rows_see_their_own_exposure_window(kiosk):
    t = 20_000_000
    kiosk.command_display(BLACK, t)
    edge = t + 300_000 + kiosk.latency_us
    kiosk.command_display(WHITE, t + 300_000)
    # the light changes while the middle rows are being read out
    start = int(edge - kiosk.readout_us / 2 - kiosk.exposure_us / 2)
    img, _ = kiosk.render_frame(start)
    col = img.astype(float).mean(axis=(1, 2))
    top, bottom = col[: H // 5].mean(), col[-H // 5 :].mean()
    assert bottom > top + 5  # later rows exposed under the bright state


def test_a_flash_that_never_shows_leaves_the_light_unchanged(kiosk):
    kiosk.set_subject(Subject.preset("flash_never_shows", scenario="dark_room", seed=3))
    lm = kiosk.scene.landmarks
    t = 30_000_000
    kiosk.command_display(BLACK, t)
    kiosk.command_display(WHITE, t + 300_000)
    a, _ = kiosk.render_frame(t + kiosk.latency_us + 100_000)
    b, _ = kiosk.render_frame(t + 300_000 + kiosk.latency_us + 100_000)
    assert abs(_face_mean(a, lm) - _face_mean(b, lm)) < 3


def test_playback_reports_onsets_on_the_monotonic_clock(kiosk):
    drv = SimFlashDriver(kiosk)
    with pytest.raises(FlashError):
        drv.play(FlashSchedule((WHITE, BLACK), 50_000, "n", (0, 1)), 1.0)
    drv.start()
    drv.self_test()
    t0 = monotonic_us()
    pb = drv.play(FlashSchedule((WHITE, BLACK, WHITE), 50_000, "n", (0, 2, 1)), timeout_s=2.0)
    assert t0 <= pb.onsets_us[0] < pb.onsets_us[1] < pb.onsets_us[2] < pb.end_us <= monotonic_us()
    assert np.allclose(np.diff(pb.onsets_us), 50_000, atol=15_000)
    with pytest.raises(FlashError):
        drv.play(FlashSchedule((WHITE, BLACK), 2_000_000, "n", (0, 1)), timeout_s=1.0)
    drv.stop()


def test_a_whole_challenge_is_seen_by_the_camera(kiosk):
    cam, drv = SimCamera(kiosk), SimFlashDriver(kiosk)
    cam.start()
    drv.start()
    try:
        time.sleep(0.1)
        levels = (1.0, 0.0, 0.5)
        sched = FlashSchedule(tuple(FlashState((1, 1, 1), v) for v in levels), 150_000, "x",
                              (0, 2, 1))
        pb = drv.play(sched, timeout_s=2.0)
        frames = cam.frames_between(pb.onsets_us[0], pb.end_us + kiosk.latency_us, 2.0)
    finally:
        cam.stop()
        drv.stop()
    lat = kiosk.latency_us
    means = []
    for i in range(3):
        lo = pb.onsets_us[i] + lat + 10_000
        hi = pb.onsets_us[i] + 150_000 + lat - kiosk.readout_us - kiosk.exposure_us - 10_000
        inside = [f for f in frames if lo <= f.t_start_us <= hi]
        assert inside, f"no clean frame for state {i}"
        means.append(_face_mean(inside[0].image, inside[0].meta["landmarks"]))
    assert means[0] > means[2] > means[1]


@pytest.mark.parametrize("name", ["no_face", "two_faces", "too_far", "too_near", "strong_motion",
                                  "too_dark", "overexposed", "strong_ambient"])
def test_quality_gate_presets_render(kiosk, name):
    kiosk.set_subject(Subject.preset(name, seed=4))
    img, lm = kiosk.render_frame(40_000_000)
    assert img.shape == (H, W, 3)
    if name == "no_face":
        assert lm is None
    elif name == "too_dark":
        assert img.mean() < 15
    elif name == "overexposed":
        assert (img >= 250).mean() > 0.3
    elif name in ("too_far", "too_near"):
        iod = float(np.linalg.norm(lm[1] - lm[0]))
        assert iod < 12 if name == "too_far" else iod > 100


def test_strong_ambient_buries_the_flash(kiosk):
    def contrast(subject: Subject) -> float:
        kiosk.set_subject(subject)
        lm = kiosk.scene.landmarks
        t = 50_000_000 + int(subject.ambient_scale) * 1_000_000
        kiosk.command_display(BLACK, t)
        kiosk.command_display(WHITE, t + 300_000)
        a, _ = kiosk.render_frame(t + kiosk.latency_us + 100_000)
        b, _ = kiosk.render_frame(t + 300_000 + kiosk.latency_us + 100_000)
        return _face_mean(b, lm) - _face_mean(a, lm)

    normal = contrast(Subject(scenario="office", seed=5))
    strong = contrast(Subject.preset("strong_ambient", seed=5))
    assert strong < 0.3 * normal


def test_an_injected_recording_replaces_the_live_view(kiosk):
    old = [kiosk.render_frame(60_000_000 + k * 33_333)[0] for k in range(3)]
    kiosk.inject_stream(old)
    again = [kiosk.render_frame(70_000_000 + k * 33_333)[0] for k in range(4)]
    assert all(np.array_equal(a, b) for a, b in zip(again[:3], old, strict=True))
    assert np.array_equal(again[3], old[0])  # looped
    kiosk.inject_stream(None)
    fresh, _ = kiosk.render_frame(80_000_000)
    assert not np.array_equal(fresh, old[0])


def test_a_second_person_is_reported_in_frame_meta(kiosk):
    kiosk.set_subject(Subject.preset("two_faces", seed=0))
    cam = SimCamera(kiosk)
    cam.start()
    try:
        t0 = monotonic_us()
        frames = cam.frames_between(t0, t0 + 100_000, timeout_s=3.0)
    finally:
        cam.stop()
    faces = frames[-1].meta["faces"]
    assert len(faces) == 2 and np.array_equal(faces[0], frames[-1].meta["landmarks"])
    assert np.linalg.norm(faces[1].mean(axis=0) - faces[0].mean(axis=0)) > 20


def _stall_once(kiosk, stall_s: float, after_renders: int = 2):
    """Make the renderer stall once (another job took the core), like a busy kiosk."""
    render, calls = kiosk.render_frame, []

    def slow_render(t_start_us):
        calls.append(t_start_us)
        if len(calls) == after_renders:
            time.sleep(stall_s)
        return render(t_start_us)

    kiosk.render_frame = slow_render


def test_a_renderer_stall_shorter_than_the_queue_delays_frames_but_loses_none(kiosk):
    # 2 frame periods: well within the 4-frame queue a V4L2 camera also has (OpenCV's default)
    _stall_once(kiosk, 2 / 30)
    cam = SimCamera(kiosk, fps=30.0)
    cam.start()
    try:
        t0 = monotonic_us()
        frames = cam.frames_between(t0, t0 + 600_000, timeout_s=5.0)
    finally:
        cam.stop()
    indices = [f.index for f in frames]
    assert indices == list(range(indices[0], indices[0] + len(indices)))  # none skipped
    assert len(frames) >= 17 and cam.late_frames == 0


def test_a_renderer_stall_longer_than_the_queue_loses_frames_like_a_full_v4l2_queue(kiosk):
    _stall_once(kiosk, 10 / 30)
    cam = SimCamera(kiosk, fps=30.0, queue_frames=4)
    cam.start()
    try:
        t0 = monotonic_us()
        frames = cam.frames_between(t0, t0 + 800_000, timeout_s=5.0)
    finally:
        cam.stop()
    indices = [f.index for f in frames]
    assert cam.late_frames >= 4
    assert len(set(np.diff(indices))) > 1  # a gap where the queue was full
    assert np.all(np.diff([f.t_start_us for f in frames]) > 0)  # true timestamps, in order


def test_a_late_flash_wake_up_never_shortens_the_next_state(kiosk):
    flash = SimFlashDriver(kiosk)
    flash.start()
    command, count = kiosk.command_display, []

    def late_command(state, t_command_us):
        count.append(1)
        if len(count) == 2:
            time.sleep(0.015)  # the driver thread woke 15 ms late for the second state
        command(state, t_command_us)

    kiosk.command_display = late_command
    states = tuple(FlashState((1, 1, 1), level) for level in (1.0, 0.0, 0.5, 0.25))
    schedule = FlashSchedule(states=states, state_duration_us=40_000, nonce="n",
                             order=(0, 2, 3, 1))
    playback = flash.play(schedule, timeout_s=2.0)
    durations = np.diff([*playback.onsets_us, playback.end_us])
    assert np.all(durations >= 40_000), durations

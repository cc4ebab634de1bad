"""The OpenCV/V4L2 camera on a real video file (written here with cv2.VideoWriter) and, when one is
attached, on a real /dev/video0."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from flashfas_edge.capture.base import Camera, CameraError
from flashfas_edge.capture.v4l2_camera import (
    V4L2Camera,
    driver_stamp_is_monotonic,
    parse_source,
)
from flashfas_edge.clock import monotonic_us

WIDTH, HEIGHT, FPS, N_FRAMES = 160, 120, 30.0, 45
PATCH = 16  # top-left patch encodes the frame number as its grey level


def _write_video(path: Path, n_frames: int = N_FRAMES) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened(), "MJPG/.avi writer unavailable in this OpenCV build"
    for i in range(n_frames):
        bgr = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        bgr[:, : WIDTH // 2] = (0, 0, 255)  # left half red (BGR order)
        bgr[:, WIDTH // 2:] = (255, 0, 0)  # right half blue
        bgr[:PATCH, :PATCH] = 5 * i  # frame number, readable after JPEG (≤ ±3 error)
        writer.write(bgr)
    writer.release()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return _write_video(tmp_path_factory.mktemp("v4l2cam") / "colours.avi")


@pytest.fixture
def camera(video):
    cam = V4L2Camera(str(video), width=WIDTH, height=HEIGHT, fps=FPS, loop=True)
    cam.start()
    yield cam
    cam.stop()


def _frame_number(image: np.ndarray) -> int:
    return int(round(float(image[2:PATCH - 2, 2:PATCH - 2].mean()) / 5))


def test_frames_arrive_in_order_with_monotonic_timestamps(camera):
    assert isinstance(camera, Camera)
    t0 = monotonic_us()
    frames = camera.frames_between(t0, t0 + 400_000, timeout_s=3)
    assert len(frames) >= 8  # 30 fps paced over 0.4 s (slack for a busy CI machine)
    info = camera.info()
    assert (info.width, info.height, info.fps) == (WIDTH, HEIGHT, FPS)
    starts = [f.t_start_us for f in frames]
    assert all(t0 <= t < t0 + 400_000 for t in starts)
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert [f.index for f in frames] == list(range(frames[0].index, frames[0].index + len(frames)))
    numbers = [_frame_number(f.image) for f in frames]
    expected = [(numbers[0] + k) % N_FRAMES for k in range(len(numbers))]  # loop=True wraps
    assert numbers == expected  # file order, nothing skipped or repeated
    gaps_us = np.diff(starts)
    assert 0.5 * 1e6 / FPS < np.median(gaps_us) < 1.5 * 1e6 / FPS
    assert all(f.exposure_us == info.exposure_us and f.readout_us == info.readout_us
               for f in frames)
    # no driver stamp for a file: first row started exposure + readout before arrival
    assert camera.driver_timestamps_used == 0
    assert frames[-1].t_start_us < monotonic_us() - info.exposure_us - info.readout_us


def test_frames_are_rgb(camera):
    t0 = monotonic_us()
    frame = camera.frames_between(t0, t0 + 100_000, timeout_s=3)[0]
    image = frame.image
    assert image.dtype == np.uint8 and image.shape == (HEIGHT, WIDTH, 3)
    left = image[HEIGHT // 2 - 10:HEIGHT // 2 + 10, 20:60].reshape(-1, 3).mean(0)
    right = image[HEIGHT // 2 - 10:HEIGHT // 2 + 10, 100:140].reshape(-1, 3).mean(0)
    assert left[0] > 240 and left[1] < 15 and left[2] < 15, left  # red in channel 0
    assert right[2] > 240 and right[0] < 15 and right[1] < 15, right  # blue in channel 2


def test_frames_between_blocks_until_the_window_is_complete(camera):
    t1 = monotonic_us() + 250_000
    began = time.monotonic()
    frames = camera.frames_between(t1 - 250_000, t1, timeout_s=3)
    waited_s = time.monotonic() - began
    assert waited_s >= 0.2  # could not return before a frame starting at/after t1 existed
    assert camera.last_frame_time_us() >= t1
    assert frames and all(f.t_start_us < t1 for f in frames)


def test_frames_between_times_out_with_camera_error(camera):
    began = time.monotonic()
    with pytest.raises(CameraError, match="within 0.3 s"):
        camera.frames_between(monotonic_us(), monotonic_us() + 30_000_000, timeout_s=0.3)
    assert 0.25 <= time.monotonic() - began < 1.5


def test_stop_is_idempotent_and_restartable(video):
    cam = V4L2Camera(str(video), width=WIDTH, height=HEIGHT, fps=FPS, loop=True)
    cam.stop()  # before start: nothing to do
    with pytest.raises(CameraError, match="not running"):
        cam.frames_between(0, 1, timeout_s=0.1)
    cam.start()
    cam.start()  # already running: no second thread
    thread = cam._thread
    t0 = monotonic_us()
    assert cam.frames_between(t0, t0 + 50_000, timeout_s=3) is not None
    cam.stop()
    cam.stop()
    assert not thread.is_alive()
    last = cam.last_frame_time_us()
    with pytest.raises(CameraError, match="not running"):
        cam.frames_between(last + 1, last + 2, timeout_s=0.5)
    cam.start()
    t0 = monotonic_us()
    assert cam.frames_between(t0, t0 + 50_000, timeout_s=3)
    cam.stop()


def test_end_of_stream_is_a_stalled_camera(tmp_path):
    short = _write_video(tmp_path / "short.avi", n_frames=6)
    cam = V4L2Camera(str(short), width=WIDTH, height=HEIGHT, fps=FPS)
    cam.start()
    try:
        with pytest.raises(CameraError, match="stopped delivering"):
            cam.frames_between(monotonic_us(), monotonic_us() + 2_000_000, timeout_s=3)
        last = cam.last_frame_time_us()
        assert last is not None and monotonic_us() - last > 0  # the watchdog sees it age
        time.sleep(0.1)
        assert cam.last_frame_time_us() == last
    finally:
        cam.stop()


@pytest.mark.parametrize("device", ["/dev/video97", "97", str(Path("/nonexistent/clip.avi"))])
def test_missing_device_raises_camera_error(device):
    cam = V4L2Camera(device, width=WIDTH, height=HEIGHT, fps=FPS)
    with pytest.raises(CameraError):
        cam.start()
    assert cam.last_frame_time_us() is None
    cam.stop()


def test_mode_mismatch_raises_camera_error(video):
    with pytest.raises(CameraError, match=r"delivers 160x120, requested 320x240"):
        V4L2Camera(str(video), width=320, height=240, fps=FPS).start()
    with pytest.raises(CameraError, match=r"runs at 30 fps, requested 60 fps"):
        V4L2Camera(str(video), width=WIDTH, height=HEIGHT, fps=60).start()
    with pytest.raises(CameraError, match="does not fit the frame period"):
        V4L2Camera(str(video), width=WIDTH, height=HEIGHT, fps=FPS, exposure_us=50_000)


def test_source_parsing():
    assert parse_source("/dev/video2").is_v4l2 and parse_source("/dev/video2").target == \
        "/dev/video2"
    assert parse_source("1").target == 1 and parse_source(0).is_v4l2
    assert not parse_source("/tmp/clip.avi").is_v4l2


def test_driver_stamps_are_used_only_on_the_monotonic_clock():
    arrival = monotonic_us()
    assert driver_stamp_is_monotonic(arrival - 40_000, arrival)  # typical V4L2 buffer
    assert not driver_stamp_is_monotonic(0, arrival)  # no stamp yet
    assert not driver_stamp_is_monotonic(33, arrival)  # a media position in ms → µs
    assert not driver_stamp_is_monotonic(time.time_ns() // 1000, arrival)  # CLOCK_REALTIME
    assert not driver_stamp_is_monotonic(arrival + 1, arrival)  # from the future
    with pytest.raises(CameraError, match="four-character"):
        V4L2Camera("/dev/video0", fourcc="MJPEG")


def test_real_kiosk_camera_locks_the_calibrated_exposure(video, tmp_path):
    from flashfas_edge.config import load_config
    from flashfas_edge.kiosk.assembly import real_camera

    calibration = tmp_path / "calibration.toml"
    calibration.write_text("format_version = 1\nlatency_us = 30000\nexposure_us = 4000\n")
    config_file = tmp_path / "daemon.toml"
    config_file.write_text(
        f'calibration_file = "{calibration}"\n'
        f'[kiosk.camera]\ndevice = "{video}"\nwidth = {WIDTH}\nheight = {HEIGHT}\n'
        f"fps = {FPS}\nexposure_us = 9000\nreadout_us = 12000\n"
    )
    camera = real_camera(load_config(config_file))
    assert isinstance(camera, V4L2Camera)
    camera.start()
    try:
        info = camera.info()
        assert (info.exposure_us, info.readout_us) == (4000, 12000)  # calibration wins
    finally:
        camera.stop()


@pytest.mark.skipif(not os.path.exists("/dev/video0"), reason="no camera at /dev/video0")
def test_real_device_delivers_locked_frames():
    cam = V4L2Camera("/dev/video0", width=640, height=480, fps=30)
    try:
        cam.start()
    except CameraError as exc:
        pytest.skip(f"/dev/video0 cannot do 640x480@30 with manual exposure: {exc}")
    try:
        info = cam.info()
        assert cam.exposure_locked and 0 < info.exposure_us <= 1e6 / 30
        t0 = monotonic_us()
        frames = cam.frames_between(t0, t0 + 500_000, timeout_s=5)
        assert len(frames) >= 5 and frames[0].image.shape == (480, 640, 3)
        assert monotonic_us() - cam.last_frame_time_us() < 1_000_000  # host monotonic clock
    finally:
        cam.stop()

"""The LED-panel simulator: the panel firmware's own C core, built for the host, behind a pty.

``firmware_ctrl/firmware/targets/host_sim`` is the firmware's protocol core (the same C source as
the ATmega328P image) with a HAL whose serial line is the master side of a pseudo-terminal and
whose MCU clock is the host clock with an offset and a drift. The daemon's real driver
(``flash/led_serial.py``) opens the pty's slave through pyserial, as it would open /dev/ttyACM0.

The simulator reports every PWM change with the host-monotonic time the emitters really switched;
``LedPanelLight`` turns those into the simulated kiosk's flash light, so the virtual camera sees
the light the firmware switched — not what the driver asked for (docs/LED_PANEL.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from flashfas_edge.flash.base import FlashState
from flashfas_edge.sim.device import DeviceProfile
from flashfas_edge.sim.kiosk import SimKiosk

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware_ctrl" / "firmware"
# LED + MOSFET switching is µs-fast; 20 µs stands for the driver's slew (the camera cannot tell)
LED_RISE_US = 20
REFERENCE_MAX_LEVEL = 255  # the reference panel's brightness cap (core/panel_reference.h)


class PanelSimulatorError(RuntimeError):
    """The panel simulator could not be built or started."""


@dataclass(frozen=True)
class LedEvent:
    host_us: int  # when the emitters switched, host monotonic µs
    mcu_us: int  # the same instant on the panel's clock
    levels: tuple[int, ...]


def build_panel_simulator(build_dir: Path | None = None, extra_cflags: str = "") -> Path:
    """Build (or bring up to date) the host panel simulator with the system C compiler."""
    if not (FIRMWARE_DIR / "Makefile").is_file():
        raise PanelSimulatorError(f"the firmware sources are not here ({FIRMWARE_DIR}); the "
                                  "LED-panel simulator needs a source checkout")
    make = shutil.which("make")
    if make is None:
        raise PanelSimulatorError("building the LED-panel simulator needs make and cc")
    build = build_dir or FIRMWARE_DIR / "build"
    result = subprocess.run([make, "-s", "-C", str(FIRMWARE_DIR), "host", f"BUILD={build}",
                             f"HOST_FLAGS={extra_cflags}"], capture_output=True, text=True,
                            timeout=300, check=False)
    if result.returncode != 0:
        raise PanelSimulatorError(f"building the LED-panel simulator failed:\n{result.stderr}")
    return Path(build) / "host" / "panel_sim"


class PanelSimulator:
    """The simulated panel, its serial line at ``port`` (a symlink to the current pty, as udev's
    /dev/serial/by-id names follow a board that is unplugged and plugged in again)."""

    def __init__(self, port: Path, *, binary: Path | None = None, offset_us: int = 7_300_000,
                 drift_ppm: float = 180.0,
                 on_light: Callable[[LedEvent], None] | None = None) -> None:
        self.port = Path(port)
        self.binary = binary
        self.offset_us = offset_us
        self.drift_ppm = drift_ppm
        self.on_light = on_light
        self.events: deque[LedEvent] = deque(maxlen=4096)
        self._proc: subprocess.Popen[bytes] | None = None
        self._slave_fd: int | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        if self.binary is None:
            self.binary = build_panel_simulator()
        self._spawn()

    def stop(self) -> None:
        self._end(signal.SIGTERM)
        self.port.unlink(missing_ok=True)

    def unplug(self) -> None:
        """Pull the cable: the firmware dies without a goodbye and the pty goes away."""
        self._end(signal.SIGKILL)
        self.port.unlink(missing_ok=True)

    def plug(self) -> None:
        """Plug the panel in again: a fresh power-up (lights off) on a new pty, same port path."""
        self._spawn()

    def heat(self) -> None:
        """Heat the panel past its temperature limit (an over-temperature fault)."""
        self._signal(signal.SIGUSR1)

    def cool(self) -> None:
        self._signal(signal.SIGUSR2)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _signal(self, sig: int) -> None:
        if self._proc is None:
            raise PanelSimulatorError("the panel simulator is not running")
        self._proc.send_signal(sig)

    def _spawn(self) -> None:
        assert self.binary is not None
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo or line editing before the driver opens the port
        events_read, events_write = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [str(self.binary), "--fd", str(master), "--events-fd", str(events_write),
                 "--offset-us", str(self.offset_us), "--drift-ppm", str(self.drift_ppm)],
                pass_fds=(master, events_write), stdin=subprocess.DEVNULL)
        finally:
            os.close(master)
            os.close(events_write)
        # Held open so the pty exists while no driver has it open (a powered, idle panel).
        self._slave_fd = slave
        link = self.port.with_name(self.port.name + ".new")
        link.unlink(missing_ok=True)
        link.symlink_to(os.ttyname(slave))
        os.replace(link, self.port)
        self._reader = threading.Thread(target=self._read_events, args=(events_read,),
                                        name="led-panel-sim-events", daemon=True)
        self._reader.start()

    def _end(self, sig: int) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(sig)
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._reader is not None:
            self._reader.join(timeout=2)
            self._reader = None
        if self._slave_fd is not None:
            os.close(self._slave_fd)
            self._slave_fd = None

    def _read_events(self, fd: int) -> None:
        with os.fdopen(fd, "r", buffering=1) as stream:
            for line in stream:
                parts = line.split()
                if len(parts) < 3 or parts[0] != "L":
                    continue
                event = LedEvent(int(parts[1]), int(parts[2]), tuple(int(p) for p in parts[3:]))
                self.events.append(event)
                if self.on_light is not None:
                    self.on_light(event)


def led_panel_profile(profile: DeviceProfile) -> DeviceProfile:
    """The device with an LED panel as its flash surface: the same geometry and full-cap radiance,
    the light switching when the firmware switches it (no display pipeline latency)."""
    return replace(profile, latency_us=0, latency_jitter_us=0, display_rise_us=LED_RISE_US)


class LedPanelLight:
    """Feeds the panel simulator's switched emitters into the simulated kiosk's flash light."""

    def __init__(self, kiosk: SimKiosk, max_level: int = REFERENCE_MAX_LEVEL) -> None:
        self.kiosk = kiosk
        self.max_level = max_level

    def __call__(self, event: LedEvent) -> None:
        rgb = tuple(min(level / self.max_level, 1.0) for level in event.levels[:3])
        while len(rgb) < 3:
            rgb = (*rgb, rgb[0])
        self.kiosk.command_display(FlashState((rgb[0], rgb[1], rgb[2]), 1.0), event.host_us)


def start_led_panel(kiosk: SimKiosk, port: Path, **options: float) -> PanelSimulator:
    """Start the panel simulator whose switched emitters light ``kiosk``'s scene; the kiosk
    should have been built with :func:`led_panel_profile`. The driver opens ``port``."""
    panel = PanelSimulator(port, on_light=LedPanelLight(kiosk), **options)  # type: ignore[arg-type]
    panel.start()
    return panel

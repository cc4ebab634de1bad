"""The LED-panel flash: a FlashDriver for the panel firmware on a serial port (firmware_ctrl/).

At start the driver opens the port, checks the firmware's protocol version (HELLO), turns the
lights off and measures the panel's clock (``remote_clock.py``). A check loads the schedule as PWM
levels, arms, fires at a host-chosen time a few milliseconds ahead and reads back each step's
onset, stamped by the MCU and mapped to host monotonic µs. While idle a thread keeps measuring the
clock, which also keeps the firmware's host-silence watchdog fed.

Every fault is a :class:`FlashError` with a message that says what happened (fail closed): no
answer, a refused sequence (the firmware's own safety limits), a latched panel fault, an unplugged
port. After an error the link is closed; the next ``play`` or ``self_test`` opens it again and
repeats the handshake, so a panel plugged back in works without restarting the daemon.
"""

from __future__ import annotations

import logging
import struct
import threading
import time

import serial

from flashfas_edge.clock import monotonic_us
from flashfas_edge.flash.base import (
    DARK,
    FlashError,
    FlashPlayback,
    FlashSchedule,
    FlashState,
    OnsetGrid,
)
from flashfas_edge.flash.led_protocol import (
    CMD_ARM,
    CMD_CLEAR_FAULT,
    CMD_FIRE,
    CMD_HELLO,
    CMD_LOAD,
    CMD_OFF,
    CMD_REPORT,
    CMD_STATUS,
    CMD_TIME,
    ERR_FIRE_TIME,
    ERR_RATE_WAIT,
    FAULT_NAMES,
    NACK,
    NACK_REASONS,
    PROTOCOL_VERSION,
    REPLY,
    STATE_ABORTED,
    STATE_DONE,
    FrameReader,
    PanelInfo,
    Report,
    Status,
    encode_frame,
    load_body,
    parse_nack,
)
from flashfas_edge.flash.remote_clock import ClockKeeper, RemoteClock

log = logging.getLogger(__name__)


class PanelRefused(FlashError):
    """The firmware answered NACK: it refused the command (``code``, ``detail`` from the wire)."""

    def __init__(self, message: str, code: int, detail: int) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


class LedSerialFlash:
    def __init__(self, port: str, baudrate: int = 115200, *, reply_timeout_s: float = 0.1,
                 attempts: int = 4, sync_interval_s: float = 0.25, fire_lead_us: int = 20_000,
                 handshake_samples: int = 12, hello_wait_s: float = 2.0) -> None:
        self.port = port
        self.baudrate = baudrate
        self.reply_timeout_s = reply_timeout_s
        self.attempts = attempts
        self.sync_interval_s = sync_interval_s
        self.fire_lead_us = fire_lead_us
        self.handshake_samples = handshake_samples
        self.hello_wait_s = hello_wait_s
        self.clock = RemoteClock()
        self.info: PanelInfo | None = None
        self.stale_replies = 0  # answers to an earlier seq (late or duplicated), dropped
        self._serial: serial.Serial | None = None
        self._reader = FrameReader()
        self._seq = 0
        self._lock = threading.RLock()
        self._started = False
        self._clock_keeper = ClockKeeper("led-panel-clock", sync_interval_s, self._lock,
                                         self._idle_sample)

    # --- FlashDriver ----------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._connect()
            self._started = True
        self._clock_keeper.start()

    def stop(self) -> None:
        self._clock_keeper.stop()
        with self._lock:
            if self._serial is not None:
                try:
                    self._request(CMD_OFF)
                except FlashError as exc:
                    log.warning("LED panel: could not turn the lights off at stop: %s", exc)
            self._disconnect()
            self._started = False

    def self_test(self) -> None:
        with self._lock:
            self._require_started()
            self._ensure_connected()
            status = self.status()
            if status.fault:
                raise FlashError(f"LED panel on {self.port} reports a fault: "
                                 f"{FAULT_NAMES.get(status.fault, status.fault)} "
                                 f"(panel at {status.temperature_dc / 10:.1f} °C)")

    def supports_colour(self) -> bool:
        return self.info is not None and self.info.channels >= 3

    def holds_timing(self) -> bool:
        return True  # the MCU's timer starts each state; FIRE names the host time of the first

    def idle_state(self) -> FlashState:
        return DARK  # the panel's outputs are off between sequences (firmware: dark to dark)

    def play(self, schedule: FlashSchedule, timeout_s: float,
             grid: OnsetGrid | None = None) -> FlashPlayback:
        deadline_us = monotonic_us() + int(timeout_s * 1e6)
        with self._lock:
            self._require_started()
            self._ensure_connected()
            try:
                return self._play(schedule, deadline_us, grid)
            except PanelRefused:
                self._lights_off_quietly()
                raise
            except FlashError:
                self._disconnect()  # the next call opens the port and shakes hands again
                raise

    # --- panel operations -----------------------------------------------------------------
    def status(self) -> Status:
        with self._lock:
            self._ensure_connected()
            return Status.parse(self._request(CMD_STATUS))

    def clear_fault(self) -> None:
        with self._lock:
            self._ensure_connected()
            self._request(CMD_CLEAR_FAULT)

    def levels_for(self, schedule: FlashSchedule) -> list[tuple[int, ...]]:
        """Each state as PWM levels: colour × intensity × the panel's brightness cap."""
        info = self._info()
        out = []
        for state in schedule.states:
            rgb = state.rgb if info.channels >= 3 else (max(state.rgb),)
            levels = [round(min(max(c * state.intensity, 0.0), 1.0) * info.max_level)
                      for c in rgb]
            out.append(tuple(levels + [0] * (info.channels - len(levels))))
        return out

    def _play(self, schedule: FlashSchedule, deadline_us: int,
              grid: OnsetGrid | None) -> FlashPlayback:
        durations = [schedule.duration_of(k) for k in range(schedule.n0)]
        self._request(CMD_LOAD, load_body(self.levels_for(schedule), durations))
        self._request(CMD_ARM)
        sequence_us = sum(durations)
        late_fires = 0
        while True:
            fire_host_us = monotonic_us() + self.fire_lead_us
            if grid is not None:
                fire_host_us = grid.next_at_or_after(fire_host_us)
            try:
                self._request(CMD_FIRE, struct.pack("<Q", self.clock.to_remote_us(fire_host_us)))
                break
            except PanelRefused as exc:
                if exc.code == ERR_FIRE_TIME and late_fires < 3:
                    # The first FIRE was lost and its retransmission came after the fire time:
                    # still armed, so fire again at a fresh time (never twice: FIRE needs ARMED).
                    late_fires += 1
                    continue
                if exc.code != ERR_RATE_WAIT:
                    raise
                # The firmware's flash-rate rule (≤ 3 flashes in any second): wait if it fits.
                wait_us = exc.detail + self.fire_lead_us
                if monotonic_us() + wait_us + sequence_us > deadline_us:
                    raise
                time.sleep(exc.detail / 1e6)
        end_host_us = fire_host_us + sequence_us
        while True:
            left_s = (end_host_us - monotonic_us()) / 1e6
            if left_s > 0:
                time.sleep(min(left_s, 0.1))
                if left_s > 0.1:
                    continue
            report = Report.parse(self._request(CMD_REPORT))
            if report.state == STATE_DONE:
                break
            if report.state == STATE_ABORTED:
                raise FlashError(f"LED panel on {self.port} stopped the sequence: "
                                 f"{FAULT_NAMES.get(report.abort_reason, report.abort_reason)}")
            if monotonic_us() > deadline_us:
                raise FlashError(f"LED panel on {self.port} did not finish the sequence in time "
                                 f"(state {report.state})")
            time.sleep(0.003)
        onsets_mcu = report.onsets_mcu_us
        if any(t is None for t in onsets_mcu) or report.end_mcu_us is None:
            raise FlashError(f"LED panel on {self.port} reported a sequence without onsets")
        onsets = tuple(self.clock.to_host_us(t) for t in onsets_mcu if t is not None)
        return FlashPlayback(schedule, onsets, self.clock.to_host_us(report.end_mcu_us))

    # --- link -----------------------------------------------------------------------------
    def _require_started(self) -> None:
        if not self._started:
            raise FlashError("LED panel driver is not started")

    def _info(self) -> PanelInfo:
        if self.info is None:
            raise FlashError(f"LED panel on {self.port}: no handshake yet")
        return self.info

    def _ensure_connected(self) -> None:
        if self._serial is None:
            self._connect()

    def _connect(self) -> None:
        try:
            self._serial = serial.Serial(self.port, self.baudrate, timeout=0.005,
                                         write_timeout=1.0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            self._serial = None
            raise FlashError(f"cannot open the LED panel on {self.port}: {exc}") from exc
        try:
            self._serial.reset_input_buffer()
            self._reader.reset()
            self._seq = time.monotonic_ns() & 0xFF  # a fresh session starts off any old seq
            # An Arduino-class board may reset when the port opens and sit in its bootloader for
            # up to ~1 s: HELLO is retried for hello_wait_s before the panel counts as silent.
            hello = self._request(CMD_HELLO, bytes([PROTOCOL_VERSION]), attempts=max(
                self.attempts, int(self.hello_wait_s / self.reply_timeout_s)))
            version = PanelInfo.version_of(hello)
            if version != PROTOCOL_VERSION:
                raise FlashError(f"LED panel on {self.port} speaks protocol version {version}; "
                                 f"this daemon speaks version {PROTOCOL_VERSION} "
                                 "(update the firmware or the daemon so they match)")
            self.info = PanelInfo.parse(hello)
            self._request(CMD_OFF)
            self.clock.reset()
            for _ in range(self.handshake_samples):
                self._clock_sample()
            if self.clock.samples < 3:
                raise FlashError(f"LED panel on {self.port}: too few clock round trips answered")
        except FlashError:
            self._disconnect()
            raise
        log.info("LED panel on %s: %s, protocol %d, %d channels, %d-bit PWM", self.port,
                 self.info.firmware, self.info.protocol_version, self.info.channels,
                 self.info.pwm_bits)

    def _disconnect(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError):
                pass
        self._serial = None

    def _lights_off_quietly(self) -> None:
        try:
            self._request(CMD_OFF)
        except FlashError:
            self._disconnect()

    def _write(self, data: bytes) -> None:
        assert self._serial is not None
        try:
            self._serial.write(data)
        except (serial.SerialException, OSError) as exc:
            self._disconnect()
            raise FlashError(f"LED panel on {self.port} is unplugged or gone: {exc}") from exc

    def _answer(self, frame_type: int, seq: int, timeout_s: float) -> bytes | None:
        """The body of the answer to ``seq`` (None: none within the timeout); answers to other
        seqs — late or duplicated acks of earlier commands — are dropped."""
        assert self._serial is not None
        end = time.monotonic() + timeout_s
        while True:
            try:
                data = self._serial.read(max(1, self._serial.in_waiting))
            except (serial.SerialException, OSError) as exc:
                self._disconnect()
                raise FlashError(f"LED panel on {self.port} is unplugged or gone: {exc}") from exc
            for frame in self._reader.feed(data):
                if frame.seq != seq or frame.frame_type not in (frame_type | REPLY, NACK):
                    self.stale_replies += 1
                    continue
                if frame.frame_type == NACK:
                    command, code, detail = parse_nack(frame.body)
                    raise PanelRefused(
                        f"LED panel on {self.port} refused command 0x{command:02x}: "
                        f"{NACK_REASONS.get(code, f'code {code}')} (detail {detail})", code,
                        detail)
                return frame.body
            if time.monotonic() > end:
                return None

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _request(self, command: int, body: bytes = b"", attempts: int | None = None) -> bytes:
        """Send, wait for the answer, retransmit the same seq on silence (the firmware answers a
        retransmitted command from its cache without running it twice)."""
        if self._serial is None:
            raise FlashError(f"LED panel on {self.port} is not connected")
        seq = self._next_seq()
        frame = encode_frame(command, seq, body)
        tries = attempts or self.attempts
        for _ in range(tries):
            self._write(frame)
            answer = self._answer(command, seq, self.reply_timeout_s)
            if answer is not None:
                return answer
        raise FlashError(f"LED panel on {self.port} did not answer command 0x{command:02x} "
                         f"after {tries} tries")

    def _clock_sample(self) -> None:
        """One TIME round trip; a lost or retransmitted one is not a sample (its midpoint lies)."""
        seq = self._next_seq()
        frame = encode_frame(CMD_TIME, seq, bytes(8))  # padded: request and answer equally long
        sent_us = monotonic_us()
        self._write(frame)
        answer = self._answer(CMD_TIME, seq, self.reply_timeout_s)
        received_us = monotonic_us()
        if answer is not None:
            self.clock.add(sent_us, received_us, struct.unpack("<Q", answer)[0])

    def _idle_sample(self) -> None:
        if self._serial is not None:
            self._clock_sample()

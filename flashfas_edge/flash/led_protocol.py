"""The LED panel's wire protocol on the host side (firmware_ctrl/PROTOCOL.md): framing, commands
and the answers the driver reads.

A frame is ``0x00 · COBS(type · seq · body · CRC-16/CCITT-FALSE little-endian) · 0x00``. The
envelope never changes between protocol versions, so a host always reads a firmware's HELLO answer
and can say which version it speaks. The firmware's C core (firmware_ctrl/firmware/core) is the
other half; tests/test_led_panel_protocol.py holds both to the same bytes.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass

PROTOCOL_VERSION = 1

CMD_HELLO, CMD_TIME, CMD_LOAD, CMD_ARM, CMD_FIRE = 0x01, 0x02, 0x03, 0x04, 0x05
CMD_REPORT, CMD_STATUS, CMD_OFF, CMD_CLEAR_FAULT = 0x06, 0x07, 0x08, 0x09
NACK = 0x7F
REPLY = 0x80  # a reply's type is the command | REPLY

ERR_RATE_WAIT = 8
ERR_FIRE_TIME = 11
NACK_REASONS = {
    1: "malformed command",
    2: "unknown command",
    3: "a level above the panel's brightness cap",
    4: "no step, or more steps than the panel allows",
    5: "a step or the whole sequence outside the panel's duration limits",
    6: "mean brightness above the panel's duty-cycle cap",
    7: "more flashes per second than the panel's photosensitive-safety limit",
    ERR_RATE_WAIT: "too soon after the last sequence (flash-rate limit or cool-down)",
    9: "not in a state that allows it",
    10: "a latched fault: the lights stay off until it clears",
    ERR_FIRE_TIME: "fire time in the past or too far ahead",
}

STATE_NAMES = ("idle", "loaded", "armed", "scheduled", "playing", "done", "aborted")
FAULT_NAMES = {0: "none", 1: "over-temperature", 2: "LED driver fault", 3: "host silent (watchdog)",
               4: "stopped by the host"}
STATE_DONE, STATE_ABORTED = 5, 6
NOT_YET = 0xFFFFFFFF


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def cobs_encode(data: bytes) -> bytes:
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out += bytes([len(block) + 1]) + block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out += b"\xff" + block
                block.clear()
    out += bytes([len(block) + 1]) + block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0:
            raise ValueError("malformed COBS block")
        block = data[i + 1:i + code]
        if len(block) != code - 1 or 0 in block:
            raise ValueError("malformed COBS block")
        out += block
        i += code
        if code != 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


def encode_frame(frame_type: int, seq: int, body: bytes = b"") -> bytes:
    payload = bytes([frame_type, seq & 0xFF]) + body
    payload += struct.pack("<H", crc16(payload))
    return b"\x00" + cobs_encode(payload) + b"\x00"


@dataclass(frozen=True)
class Frame:
    frame_type: int
    seq: int
    body: bytes


class FrameReader:
    """Splits the byte stream at delimiters; frames failing COBS or the CRC are counted, dropped."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.bad_frames = 0

    def reset(self) -> None:
        self._buffer.clear()

    def feed(self, data: bytes) -> list[Frame]:
        frames = []
        self._buffer += data
        while (end := self._buffer.find(0)) >= 0:
            chunk = bytes(self._buffer[:end])
            del self._buffer[:end + 1]
            if not chunk:
                continue
            try:
                payload = cobs_decode(chunk)
            except ValueError:
                self.bad_frames += 1
                continue
            if len(payload) < 4 or crc16(payload[:-2]) != struct.unpack("<H", payload[-2:])[0]:
                self.bad_frames += 1
                continue
            frames.append(Frame(payload[0], payload[1], payload[2:-2]))
        return frames


@dataclass(frozen=True)
class PanelInfo:
    """The HELLO answer: what the panel is and the limits its firmware enforces."""

    protocol_version: int
    channels: int
    pwm_bits: int
    max_level: int  # brightness cap, PWM counts
    max_steps: int
    min_step_us: int
    max_step_us: int
    max_sequence_us: int
    duty_cap_permille: int
    max_flash_edges: int  # luminance edges per flash window (a flash is two)
    flash_window_us: int
    edge_permille: int
    watchdog_us: int
    max_fire_lead_us: int
    max_temperature_dc: int
    clock_hz: int
    firmware: str

    @staticmethod
    def version_of(body: bytes) -> int:
        if not body:
            raise ValueError("empty HELLO answer")
        return body[0]

    @staticmethod
    def parse(body: bytes) -> PanelInfo:
        values = struct.unpack_from("<BBBHBIIIHBIHIIhI", body)
        names = [f.name for f in dataclasses.fields(PanelInfo)][:len(values)]
        return PanelInfo(**dict(zip(names, values, strict=True)),
                         firmware=body[41:].decode("ascii", "replace"))


@dataclass(frozen=True)
class Report:
    """REPORT: the player's state and each step's onset on the MCU clock (None: not yet)."""

    state: int
    abort_reason: int
    onsets_mcu_us: tuple[int | None, ...]
    end_mcu_us: int | None

    @staticmethod
    def parse(body: bytes) -> Report:
        state, reason, steps, base = struct.unpack_from("<BBBQ", body)
        deltas = struct.unpack_from(f"<{steps + 1}I", body, 11)
        values = tuple(None if d == NOT_YET else base + d for d in deltas)
        return Report(state, reason, values[:-1], values[-1])


@dataclass(frozen=True)
class Status:
    state: int
    fault: int
    temperature_dc: int
    uptime_us: int
    frames_ok: int
    frames_bad: int
    edges_in_window: int
    lights_on: bool

    @staticmethod
    def parse(body: bytes) -> Status:
        state, fault, temp, uptime, ok, bad, edges, on = struct.unpack_from("<BBhQHHBB", body)
        return Status(state, fault, temp, uptime, ok, bad, edges, bool(on))


def load_body(levels: list[tuple[int, ...]], durations_us: list[int]) -> bytes:
    """LOAD: the step count, then per step each channel's level (u16) and the duration (u32)."""
    body = bytearray([len(levels)])
    for step_levels, duration in zip(levels, durations_us, strict=True):
        body += struct.pack(f"<{len(step_levels)}HI", *step_levels, duration)
    return bytes(body)


def parse_nack(body: bytes) -> tuple[int, int, int]:
    """(command, code, detail) of a NACK."""
    return struct.unpack_from("<BBI", body)

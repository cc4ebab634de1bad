"""Test rig for the LED panel: the firmware's host build behind a pty, and a line in between that
corrupts, drops, duplicates or delays bytes and whole frames on their way (real pty I/O both ways).
"""

from __future__ import annotations

import os
import select
import shutil
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

import pytest

from flashfas_edge.flash.led_protocol import cobs_decode

DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "engines" / "edge-default"


def require_bundle_and_compiler() -> Path:
    """For a test module that runs full checks through the panel simulator: the trained default
    bundle and the compiler that builds the simulator, or the whole module is skipped."""
    if not (DEFAULT_BUNDLE / "manifest.json").is_file():
        pytest.skip(f"the trained default bundle is not in this checkout ({DEFAULT_BUNDLE})",
                    allow_module_level=True)
    if shutil.which("cc") is None or shutil.which("make") is None:
        pytest.skip("the panel simulator needs cc and make", allow_module_level=True)
    return DEFAULT_BUNDLE

# (direction "to_panel" / "to_host", frame type, frame bytes incl. delimiter) → [(delay_s, bytes)]
FaultRule = Callable[[str, int, bytes], list[tuple[float, bytes]] | None]


def frame_type(chunk: bytes) -> int:
    try:
        payload = cobs_decode(chunk.rstrip(b"\x00"))
    except ValueError:
        return -1
    return payload[0] if payload else -1


class FaultyLine:
    """driver ⇄ pty (``port``) ⇄ this proxy ⇄ the panel simulator's pty (``panel_port``)."""

    def __init__(self, panel_port: Path, port: Path) -> None:
        self.port = port
        self.rules: list[FaultRule] = []
        self.applied = 0
        self._panel = os.open(panel_port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self._panel)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        port.unlink(missing_ok=True)
        port.symlink_to(os.ttyname(self._slave))
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._panel, self._master, self._slave):
            os.close(fd)
        self.port.unlink(missing_ok=True)

    def _send(self, fd: int, data: bytes, delay_s: float) -> None:
        def write() -> None:
            with self._lock:
                os.write(fd, data)

        if delay_s <= 0:
            write()
        else:
            threading.Timer(delay_s, write).start()

    def _forward(self, direction: str, chunk: bytes, out_fd: int) -> None:
        kind = frame_type(chunk)
        for rule in self.rules:
            plan = rule(direction, kind, chunk)
            if plan is not None:
                self.applied += 1
                for delay_s, data in plan:
                    self._send(out_fd, data, delay_s)
                return
        self._send(out_fd, chunk, 0)

    def _run(self) -> None:
        buffers = {self._master: bytearray(), self._panel: bytearray()}
        route = {self._master: ("to_panel", self._panel), self._panel: ("to_host", self._master)}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(buffers), [], [], 0.02)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    time.sleep(0.01)
                    continue
                buffer = buffers[fd]
                buffer += data
                direction, out_fd = route[fd]
                while (end := buffer.find(0)) >= 0:
                    chunk = bytes(buffer[:end + 1])
                    del buffer[:end + 1]
                    self._forward(direction, chunk, out_fd)


def once(direction: str, kind: int, transform: Callable[[bytes], list[tuple[float, bytes]]]
         ) -> FaultRule:
    """A rule that applies ``transform`` to the first frame of ``kind`` going ``direction``."""
    done = [False]

    def rule(d: str, k: int, chunk: bytes) -> list[tuple[float, bytes]] | None:
        if done[0] or d != direction or k != kind:
            return None
        done[0] = True
        return transform(chunk)

    return rule


def flip_byte(chunk: bytes) -> list[tuple[float, bytes]]:
    i = len(chunk) // 2
    return [(0, chunk[:i] + bytes([chunk[i] ^ 0x5A or 1]) + chunk[i + 1:])]


def drop_byte(chunk: bytes) -> list[tuple[float, bytes]]:
    i = len(chunk) // 2
    return [(0, chunk[:i] + chunk[i + 1:])]


def duplicate_byte(chunk: bytes) -> list[tuple[float, bytes]]:
    i = len(chunk) // 2
    return [(0, chunk[:i] + chunk[i:i + 1] + chunk[i:])]


def duplicate_frame(chunk: bytes) -> list[tuple[float, bytes]]:
    return [(0, chunk), (0.002, chunk)]


def delay_frame(delay_s: float) -> Callable[[bytes], list[tuple[float, bytes]]]:
    return lambda chunk: [(delay_s, chunk)]


def luminance_edges(events, max_level: int = 255, edge_permille: int = 100) -> list[int]:
    """Host times of the panel's luminance edges, computed from the switched levels (the
    firmware's own rule, PROTOCOL.md §6), to check the flash-rate cap from the outside."""
    edges, previous = [], 0
    for event in events:
        r, g, b = (event.levels + (0, 0, 0))[:3]
        lum = (2126 * r + 7152 * g + 722 * b) // (10 * max_level)
        if abs(lum - previous) >= edge_permille:
            edges.append(event.host_us)
        previous = lum
    return edges

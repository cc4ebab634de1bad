"""The LED-panel firmware builds: the host panel simulator with the system compiler, and the
ATmega328P image with the AVR cross toolchain (apt: gcc-avr avr-libc), warnings as errors.

The AVR build is skipped where the toolchain is missing, except in CI: ``.ci/run`` installs it and
sets ``FLASHFAS_CI_REQUIRE=...,avr``, so a missing tool fails there instead of skipping.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware_ctrl" / "firmware"
FLASH_BYTES = 32 * 1024 - 512  # ATmega328P flash less an Optiboot bootloader
RAM_BYTES = 2048


def _make(target: str, build: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-C", str(FIRMWARE), target, f"BUILD={build}"],
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_panel_simulator_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    if shutil.which("cc") is None or shutil.which("make") is None:
        pytest.skip("needs cc and make")
    result = _make("host", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "-Werror" in result.stdout
    assert (tmp_path / "host" / "panel_sim").is_file()


def test_the_atmega328p_image_builds_and_fits(tmp_path: Path) -> None:
    if shutil.which("avr-gcc") is None or shutil.which("make") is None:
        why = "needs avr-gcc and avr-libc (apt: gcc-avr avr-libc)"
        if "avr" in os.environ.get("FLASHFAS_CI_REQUIRE", "").split(","):
            pytest.fail(f"CI requires this test: {why}")
        pytest.skip(why)
    result = _make("atmega328p", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "-Werror" in result.stdout
    hex_file = tmp_path / "atmega328p" / "ledpanel.hex"
    assert hex_file.read_text().startswith(":")
    # avr-size: text data bss dec hex filename
    sizes = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+", result.stdout, re.MULTILINE)
    assert sizes, result.stdout
    text, data, bss = (int(v) for v in sizes.groups())
    assert text + data <= FLASH_BYTES
    assert data + bss <= RAM_BYTES - 384  # leave the stack its room
    print(f"ATmega328P image: {text + data} B flash, {data + bss} B static RAM")

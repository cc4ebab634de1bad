"""The display flash driver the configuration names (``[kiosk.flash] kind = "display"``,
``surface``): the browser client's (``flash/display_flash.py``) or the daemon's own full-screen
window (``flash/display_window.py``). On the simulated kiosk the driver is the same and the
presentations it reports light the simulated scene (``sim/kiosk_flash.py``, ``PresentedLight``).
"""

from __future__ import annotations

import importlib.util

from flashfas_edge.config import ConfigError, KioskConfig
from flashfas_edge.flash.base import FlashDriver
from flashfas_edge.flash.presentation import PresentedListener


def display_flash(kiosk: KioskConfig, idle_rgb: tuple[float, float, float] | None = None,
                  on_presented: PresentedListener | None = None) -> FlashDriver:
    if kiosk.display_surface == "window":
        if importlib.util.find_spec("pygame") is None:
            raise ConfigError("kiosk.flash.surface = \"window\" needs pygame: "
                              "pip install 'flashfas-edge[display-native]'")
        from flashfas_edge.flash.display_window import WindowDisplayFlash

        return WindowDisplayFlash(idle_rgb=idle_rgb, on_presented=on_presented)
    from flashfas_edge.flash.display_flash import DisplayFlash

    return DisplayFlash(on_presented=on_presented)

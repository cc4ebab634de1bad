"""The browser display flash during calibration: calibrate runs with the daemon stopped, so it
serves the flash client's two routes itself (``api/flash_routes.py``) on the daemon's own address
and key, and waits for the kiosk page to connect before it measures anything.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from flashfas_edge.calibrate.rig import CalibrationError
from flashfas_edge.config import LoadedConfig
from flashfas_edge.flash.base import FlashDriver

STARTUP_TIMEOUT_S = 5.0


@contextlib.contextmanager
def browser_flash_served(config: LoadedConfig, flash: FlashDriver,
                         note: Callable[[str], None]) -> Iterator[None]:
    """Serve ``/v1/flash/client.js`` and ``/v1/flash/ws`` while the block runs when ``flash`` is
    the browser client's driver; nothing for the other surfaces."""
    from flashfas_edge.flash.display_flash import DisplayFlash

    if not isinstance(flash, DisplayFlash):
        yield
        return
    import uvicorn
    from fastapi import FastAPI

    from flashfas_edge.api.auth import load_api_key
    from flashfas_edge.api.flash_routes import WEBSOCKET_OPTIONS, flash_client_router

    server = config.daemon.server
    key = load_api_key(server.api_key_file)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(flash_client_router(lambda: key, flash))
    uv = uvicorn.Server(uvicorn.Config(app, host=server.host, port=server.port, lifespan="off",
                                       log_level="warning", access_log=False,
                                       **WEBSOCKET_OPTIONS))
    thread = threading.Thread(target=uv.run, name="calibrate-flash-client", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            uv.should_exit = True
            raise CalibrationError(
                f"cannot serve the browser flash client on {server.host}:{server.port} (is the "
                "daemon still running? stop it: calibrate needs the camera, the flash and the "
                "port)")
        time.sleep(0.02)
    note(f"serving the flash client on http://{server.host}:{server.port}/v1/flash/client.js: "
         "open (or reload) the kiosk page")
    try:
        yield
    finally:
        uv.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT_S)


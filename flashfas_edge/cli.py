"""`flashfas-edge` command line: one sub-command module per area, loaded lazily."""

from __future__ import annotations

import argparse
import importlib
import sys

# (module, description) — each module defines ``register(subparsers)`` adding its sub-commands with
# ``set_defaults(func=...)``; ``func(args) -> int`` is the exit code. Heavy imports (torch, ORT)
# happen inside ``func`` so that ``--help`` stays fast.
_COMMAND_MODULES = (
    "flashfas_edge.sim.cli",
    "flashfas_edge.train.cli",
    "flashfas_edge.inference.trt_build.cli",
    "flashfas_edge.daemon.cli",
    "flashfas_edge.tools.cli",
    "flashfas_edge.calibrate.cli",
)

EPILOG = """examples:
  flashfas-edge demo                         simulated kiosk + default bundle, checks over HTTP
  flashfas-edge synth --out data/ds --n 200 --preview
  flashfas-edge serve --sim                  daemon on 127.0.0.1 with the simulated kiosk
  flashfas-edge check --json                 one liveness check against a running daemon
  flashfas-edge calibrate --sim --yes        calibrate the simulated kiosk (file + HTML report)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flashfas-edge",
        description="FlashFAS Edge: flash liveness for access-control kiosks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from flashfas_edge import __version__

    parser.add_argument("--version", action="version", version=f"flashfas-edge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""Operator tools around the daemon: ``record`` (kiosk sessions in the dataset format) and
``demo`` (the simulated kiosk and the default bundle, checks over the real API)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flashfas_edge.config import EX_CONFIG

_RECORD_EPILOG = """examples:
  flashfas-edge record --sim --out /tmp/rec --n 5 --scene print --ambient office
  flashfas-edge record --config /etc/flashfas-edge/flashfas-edge.toml --out /data/site1 --n 20
(stop the daemon first on a real kiosk: the camera and the flash are one resource)
"""
_DEMO_EPILOG = """examples:
  flashfas-edge demo                        # what `make demo` runs
  flashfas-edge demo --ambients office dark_room --repeats 2 --json-out /tmp/demo.json
  flashfas-edge demo --ambients sunlight   # the flash cannot beat the sun: retry, low_flash_snr
  flashfas-edge demo --landmarks mtcnn     # the real camera's face detector in the loop
exit codes: 0 no attack accepted, 1 an attack was accepted as live, 2 the daemon failed
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter

    record = subparsers.add_parser(
        "record", help="record kiosk sessions in the dataset format", epilog=_RECORD_EPILOG,
        formatter_class=fmt)
    record.add_argument("--config", type=Path, help="TOML configuration file")
    record.add_argument("--sim", action="store_true", help="record from the simulated kiosk")
    record.add_argument("--out", type=Path, required=True, help="output folder")
    record.add_argument("--n", type=int, default=1, help="number of sessions")
    record.add_argument("--scene", help="sim only: live | print | replay | mask")
    record.add_argument("--ambient", help="sim only: ambient scenario")
    record.add_argument("--seed", type=int, help="sim only: first scene seed")
    record.add_argument("--label", help="attack_type label to store (real kiosk)")
    record.set_defaults(func=_record)

    demo = subparsers.add_parser(
        "demo", help="simulated kiosk + default bundle: live faces and attacks over HTTP",
        epilog=_DEMO_EPILOG, formatter_class=fmt)
    demo.add_argument("--bundle", type=Path, help="model bundle (default: engines/edge-default)")
    demo.add_argument("--ambients", nargs="+", help="ambient scenarios to run")
    demo.add_argument("--scenes", nargs="+", help="scenes (default: live and every attack)")
    demo.add_argument("--repeats", type=int, default=1, help="checks per scene and ambient")
    demo.add_argument("--json-out", type=Path, help="also write every row as JSON here")
    demo.add_argument("--timeout", type=float, default=180.0,
                      help="seconds to wait for the daemon to become ready")
    demo.add_argument("--flash", choices=("sim", "led-sim"), default="sim",
                      help="sim: the simulated flash; led-sim: the LED-panel driver on the panel "
                           "firmware's simulator (pty)")
    demo.add_argument("--landmarks", choices=("ground_truth", "mtcnn"), default="ground_truth",
                      help="ground_truth: the simulated kiosk's own landmarks; mtcnn: the real "
                           "camera's detector on the simulated frames ([pipeline.landmarks])")
    demo.set_defaults(func=_demo)


def _record(args: argparse.Namespace) -> int:
    from flashfas_edge.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
    from flashfas_edge.tools.record import record_sessions

    config_path = args.config
    if config_path is None and not args.sim and DEFAULT_CONFIG_PATH.is_file():
        config_path = DEFAULT_CONFIG_PATH
    from flashfas_edge.inference.backend import BackendError
    from flashfas_edge.inference.bundle import BundleError

    try:
        config = load_config(config_path, sim=args.sim)
        return record_sessions(config, args.out, args.n, scene=args.scene, ambient=args.ambient,
                               seed=args.seed, label=args.label)
    except (ConfigError, BundleError, BackendError) as exc:
        print(f"flashfas-edge record: {exc}", file=sys.stderr)
        return EX_CONFIG


def _demo(args: argparse.Namespace) -> int:
    from flashfas_edge.tools.demo import run_demo

    return run_demo(bundle=args.bundle, ambients=args.ambients, scenes=args.scenes,
                    repeats=args.repeats, json_out=args.json_out, ready_timeout_s=args.timeout,
                    flash=args.flash, landmarks=args.landmarks)

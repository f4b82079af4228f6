"""``cloudtasks-emulator start …``: run the emulator until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
from typing import Sequence

from .server import EmulatorConfig, EmulatorServer

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in "1h", "30m", "90s", "1.5h" or "3600"."""
    match = _DURATION_RE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use e.g. 90s, 30m, 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloudtasks-emulator", description="A local Google Cloud Tasks v2 emulator.")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start the emulator (gRPC and REST) and dispatch tasks")
    start.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    start.add_argument("--port", type=int, default=8123, help="gRPC port; 0 picks a free one")
    start.add_argument("--http-port", type=int, default=8124, help="REST/OIDC port; 0 picks a free one")
    start.add_argument("--data-dir", help="keep state in DIR/emulator.sqlite3 across restarts")
    start.add_argument("--queue", action="append", default=[], metavar="NAME",
                       help="create projects/P/locations/L/queues/Q at start (repeatable)")
    start.add_argument("--config", help="YAML file of queues with rate_limits and retry_config")
    start.add_argument("--auto-create-queues", action="store_true",
                       help="CreateTask/ListTasks on a missing queue create it")
    start.add_argument("--name-reservation", type=parse_duration, default="1h",
                       help="how long a deleted or executed task's name stays reserved (default 1h)")
    start.add_argument("--app-engine-url", default="http://127.0.0.1:8080",
                       help="where App Engine tasks are sent")
    start.add_argument("--faults", metavar="SPEC",
                       help="inject faults, e.g. CreateTask:error=0.2:code=UNAVAILABLE,seed=7 (see core/faults.py)")
    start.add_argument("--log-level", default="WARNING", help="Python logging level (INFO logs every dispatch)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = EmulatorConfig(
        host=args.host, port=args.port, http_port=args.http_port, data_dir=args.data_dir, queues=args.queue,
        config_file=args.config, auto_create_queues=args.auto_create_queues,
        name_reservation=args.name_reservation, app_engine_url=args.app_engine_url)
    if args.faults:
        from .core.faults import FaultInjector

        try:
            config.faults = FaultInjector.from_spec(args.faults)
        except ValueError as exc:
            print(f"cloudtasks-emulator: --faults: {exc}", file=sys.stderr)
            return 2
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    server = EmulatorServer(config)
    try:
        server.start()
    except (OSError, ValueError) as exc:
        print(f"cloudtasks-emulator: {exc}", file=sys.stderr)
        server.stop()
        return 1
    if server.http_url:  # before the ready line, so whoever waits for that one finds this too
        print(f"REST and OIDC discovery on {server.http_url}", file=sys.stderr, flush=True)
    print(f"export CLOUD_TASKS_EMULATOR_HOST={server.grpc_target}", flush=True)
    try:
        while not stopping.wait(3600):
            pass
    finally:
        server.stop()
    return 0

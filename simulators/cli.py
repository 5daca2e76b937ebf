"""``python -m simulators``: run the simulated city from the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from deltasense.runtime import setup_logging
from deltasense.settings import ConfigFileError, Settings, load_settings
from simulators.city import MAX_DEVICES
from simulators.run import MAX_RATE, SimStats, simulate

_LOG = logging.getLogger("simulators")
_LOG_EVERY_S = 10


def _devices(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_DEVICES:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_DEVICES}, got {value}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _rate(text: str) -> float:
    value = _number(text)
    if not 0 < value <= MAX_RATE:
        raise argparse.ArgumentTypeError(
            f"must be > 0 and <= {MAX_RATE:g} readings per second per device, got {text}"
        )
    return value


def _duration(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulators",
        description="Simulate DeltaSense field devices in Bạc Liêu, publishing to the "
        "configured MQTT broker (DELTASENSE_* settings).",
    )
    parser.add_argument(
        "--devices", type=_devices, required=True, help=f"number of devices, 1..{MAX_DEVICES}"
    )
    parser.add_argument(
        "--rate",
        type=_rate,
        default=1.0,
        help=f"readings per second per device, > 0 and <= {MAX_RATE:g} (default 1)",
    )
    parser.add_argument(
        "--duration", type=_duration, default=None, help="seconds to run (default: until stopped)"
    )
    parser.add_argument("--seed", type=_seed, default=1, help="placement and value seed")
    return parser


def summary(stats: SimStats) -> str:
    kinds = ", ".join(f"{kind} {count}" for kind, count in stats.published.items())
    return (
        f"{stats.total} readings from {stats.devices} devices in {stats.elapsed_s:.1f} s "
        f"({kinds}); {stats.connects} connects, {stats.errors} errors, "
        f"{stats.skipped} ticks skipped"
    )


async def _run(settings: Settings, args: argparse.Namespace) -> SimStats | None:
    """Run until the duration ends or SIGTERM/SIGINT; the stats either way."""
    seen: list[SimStats] = []  # simulate() reports one live object; keep it for a signal stop

    def progress(stats: SimStats) -> None:
        if not seen:
            seen.append(stats)
        if int(stats.elapsed_s) % _LOG_EVERY_S == 0 and stats.elapsed_s >= 1:
            _LOG.info("%s", summary(stats))

    task = asyncio.ensure_future(
        simulate(
            settings,
            devices=args.devices,
            rate=args.rate,
            duration=args.duration,
            seed=args.seed,
            on_progress=progress,
        )
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        return await task
    return seen[0] if seen else None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except (ConfigFileError, ValidationError) as exc:
        print(f"error: bad settings: {exc}", file=sys.stderr)
        return 1
    setup_logging(settings)
    stats = asyncio.run(_run(settings, args))
    if stats is not None:
        print(summary(stats))
    return 0

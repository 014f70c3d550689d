"""``python -m calogen simulate``: showers from the cascade Monte Carlo (or GFlash), written as native HDF5.

    python -m calogen simulate --particle e- --energy 100 --theta 90 -n 50 --seed 1 --out s.h5
    python -m calogen simulate --energy-range 10 200 --theta-range 60 120 -n 1000 --out train.h5
    python -m calogen simulate --engine gflash --energy 100 --theta 90 -n 500 --out gflash.h5
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

from calogen.cli._common import (
    CliError,
    add_condition_args,
    add_device_arg,
    conditions_from_args,
    progress_bar,
    resolve_device,
)
from calogen.showers import Source
from calogen.simulation import gflash, mc

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` sub-command."""
    parser = subparsers.add_parser(
        "simulate",
        help="simulate showers with the analog electromagnetic-cascade Monte Carlo",
        description="Simulate e-, e+ or photon showers in the calorimeter and write a native HDF5 file. The Monte "
        f"Carlo accepts {mc.CONDITION_RANGE.describe()} ({mc.WIDE_CONDITION_RANGE.describe()} with --wide); "
        f"GFlash {gflash.CONDITION_RANGE.describe()}.",
    )
    parser.add_argument("--engine", choices=("mc", "gflash"), default="mc",
                        help="mc: the analog cascade Monte Carlo (default); gflash: the GFlash parametrisation")
    parser.add_argument("--particle", choices=("e-", "e+", "gamma"), default="e-", help="primary particle")
    add_condition_args(parser, default_n=10)
    parser.add_argument("--detector", default="clic_ecal",
                        help="detector name (clic_ecal, block_<material>) or a TOML geometry file")
    add_device_arg(parser)
    parser.add_argument("--wide", action="store_true",
                        help=f"Monte Carlo only: allow {mc.WIDE_CONDITION_RANGE.describe()} (outside the validated "
                        f"{mc.CONDITION_RANGE.describe()})")
    parser.add_argument("--bookkeeping", metavar="JSON", default=None,
                        help="also write the per-shower energy bookkeeping (GeV) to this JSON file")
    parser.add_argument("--out", required=True, help="output HDF5 file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Simulate and write the file; returns the exit code."""
    from calogen import sources
    from calogen.detector import get_detector
    from calogen.io import write_showers

    device = str(resolve_device(args.device))
    try:
        get_detector(args.detector)
    except (ValueError, KeyError) as exc:
        raise CliError(str(exc)) from exc
    if args.engine == "gflash":
        if args.particle != "e-":
            raise CliError(f"--engine gflash simulates electrons only; got --particle {args.particle}")
        if args.bookkeeping:
            raise CliError("--bookkeeping is a Monte Carlo feature; GFlash has no particle-level bookkeeping")
        if args.wide:
            raise CliError(f"--wide widens the Monte Carlo's range; GFlash accepts {gflash.CONDITION_RANGE.describe()}")
        engine: Source = gflash.GFlash(device=device, detector=args.detector)
        who, hint = gflash.NAME, ""
    else:
        engine = mc.MonteCarlo(device=device, particle=args.particle, detector=args.detector, wide=args.wide)
        who, hint = f"the {mc.NAME}", "" if args.wide else f"; --wide allows {mc.WIDE_CONDITION_RANGE.describe()}"
    conditions = conditions_from_args(args, engine.condition_range, who=who, hint=hint)
    progress = None if args.quiet else progress_bar(len(conditions), "simulate")
    start = time.perf_counter()
    book = None
    if args.bookkeeping:  # the bookkeeping is the Monte Carlo engine's own extra output, beyond the Source call
        showers, book = mc.simulate(conditions.energy_gev, conditions.theta_rad, particle=args.particle,
                                    detector=args.detector, seed=args.seed, device=device, progress=progress,
                                    return_bookkeeping=True, allow_out_of_range=args.wide)
    else:
        showers = sources.sample(engine, conditions, seed=args.seed, progress=progress)
    wall = time.perf_counter() - start
    showers.attrs.update({
        "command": "python -m calogen " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "wall_time_s": round(wall, 3),
    })
    path = write_showers(args.out, showers)
    if book is not None:
        with open(args.bookkeeping, "w") as fh:
            json.dump(book.to_dict(), fh)
    print(f"wrote {len(showers)} showers to {path} ({wall:.1f} s, {1000 * wall / len(showers):.0f} ms/shower)",
          file=sys.stderr)
    return 0

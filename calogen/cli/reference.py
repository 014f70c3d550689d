"""``python -m calogen reference``: make the Monte Carlo reference sample (a grid of energies and angles)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from calogen.cli._common import CliError, add_device_arg, deg_to_rad, progress_bar, rad_to_deg, resolve_device
from calogen.showers import Conditions
from calogen.simulation.mc import CONDITION_RANGE
from calogen.simulation.reference import DEFAULT_ENERGIES_GEV, DEFAULT_THETAS_RAD, make_reference

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("reference", help="simulate the Monte Carlo reference sample on an energy x angle grid")
    p.add_argument("--out", type=Path, default=Path("data/reference.h5"), help="output shower file")
    p.add_argument("--energies", type=float, nargs="+", default=list(DEFAULT_ENERGIES_GEV), metavar="GEV",
                   help=f"primary energies, GeV (the Monte Carlo accepts {CONDITION_RANGE.describe()})")
    p.add_argument("--thetas", type=float, nargs="+", metavar="DEG",
                   default=[round(float(t), 6) for t in rad_to_deg(DEFAULT_THETAS_RAD)],
                   help="polar angles, degrees (90 = normal incidence)")
    p.add_argument("-n", "--number", dest="n", type=int, nargs="+", default=[100],
                   help="showers per grid point: one number, or one per energy")
    p.add_argument("--seed", type=int, default=20261123, help="seed of the first grid point (+1 per point)")
    p.add_argument("--particle", choices=("e-", "e+", "gamma"), default="e-")
    p.add_argument("--workers", type=int, default=1,
                   help="processes simulating grid points in parallel (the sample does not depend on it)")
    add_device_arg(p)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    thetas_rad = [float(t) for t in deg_to_rad(args.thetas)]
    try:
        grid = Conditions.broadcast([e for e in args.energies for _ in thetas_rad], thetas_rad * len(args.energies))
    except ValueError as exc:
        raise CliError(f"--energies {' '.join(map(str, args.energies))} --thetas {' '.join(map(str, args.thetas))}: "
                       f"{exc}") from None
    CONDITION_RANGE.check(grid, "the Monte Carlo")  # before the progress bar; OutOfRangeError names the range
    if min(args.n) <= 0 or len(args.n) not in (1, len(args.energies)):
        raise CliError(f"-n {' '.join(map(str, args.n))}: give one positive number of showers per point, or one "
                       f"per energy ({len(args.energies)} energies)")
    if args.workers < 1:
        raise CliError(f"--workers {args.workers}: give at least one worker process")
    command = "python -m calogen " + " ".join(sys.argv[1:]) if sys.argv[1:] else None
    counts = args.n * len(args.energies) if len(args.n) == 1 else args.n
    total = len(args.thetas) * sum(counts)
    prov = make_reference(args.out, energies_gev=args.energies, thetas_rad=thetas_rad, n_per_point=counts,
                          seed=args.seed, particle=args.particle, device=str(device), command=command,
                          progress=progress_bar(total, "reference"), workers=args.workers)
    print(f"wrote {args.out} ({prov['showers']} showers, {prov['wall_time_s']:.0f} s) "
          f"and {args.out.with_suffix('.json')}")
    return 0

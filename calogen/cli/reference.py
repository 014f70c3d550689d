"""``python -m calogen reference``: make the Monte Carlo reference sample (a grid of energies and angles)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from calogen.cli._common import CliError, add_device_arg, progress_bar, resolve_device
from calogen.simulation.reference import DEFAULT_ENERGIES_GEV, DEFAULT_THETAS_DEG, make_reference

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("reference", help="simulate the Monte Carlo reference sample on an energy x angle grid")
    p.add_argument("--out", type=Path, default=Path("data/reference.h5"), help="output shower file")
    p.add_argument("--energies", type=float, nargs="+", default=list(DEFAULT_ENERGIES_GEV), metavar="GEV")
    p.add_argument("--thetas", type=float, nargs="+", default=list(DEFAULT_THETAS_DEG), metavar="DEG")
    p.add_argument("-n", "--number", dest="n", type=int, nargs="+", default=[100],
                   help="showers per grid point: one number, or one per energy")
    p.add_argument("--seed", type=int, default=20261123, help="seed of the first grid point (+1 per point)")
    p.add_argument("--particle", choices=("e-", "e+", "gamma"), default="e-")
    p.add_argument("--workers", type=int, default=1,
                   help="processes simulating grid points in parallel (the sample does not depend on it)")
    add_device_arg(p)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    for energy in args.energies:
        if not math.isfinite(energy) or not 1.0 <= energy <= 500.0:
            raise CliError(f"energy={energy:g} GeV is outside the allowed range 1-500 GeV")
    for theta in args.thetas:
        if not math.isfinite(theta) or not 60.0 <= theta <= 120.0:
            raise CliError(f"theta={theta:g} deg is outside the allowed range 60-120 deg")
    if min(args.n) <= 0 or len(args.n) not in (1, len(args.energies)):
        raise CliError(f"-n {' '.join(map(str, args.n))}: give one positive number of showers per point, or one "
                       f"per energy ({len(args.energies)} energies)")
    if args.workers < 1:
        raise CliError(f"--workers {args.workers}: give at least one worker process")
    command = "python -m calogen " + " ".join(sys.argv[1:]) if sys.argv[1:] else None
    counts = args.n * len(args.energies) if len(args.n) == 1 else args.n
    total = len(args.thetas) * sum(counts)
    prov = make_reference(args.out, energies_gev=args.energies, thetas_deg=args.thetas, n_per_point=counts,
                          seed=args.seed, particle=args.particle, device=str(device), command=command,
                          progress=progress_bar(total, "reference"), workers=args.workers)
    print(f"wrote {args.out} ({prov['showers']} showers, {prov['wall_time_s']:.0f} s) "
          f"and {args.out.with_suffix('.json')}")
    return 0

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

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` sub-command."""
    parser = subparsers.add_parser(
        "simulate",
        help="simulate showers with the analog electromagnetic-cascade Monte Carlo",
        description="Simulate e-, e+ or photon showers in the calorimeter and write a native HDF5 file.",
    )
    parser.add_argument("--engine", choices=("mc", "gflash"), default="mc",
                        help="mc: the analog cascade Monte Carlo (default); gflash: the GFlash parametrisation")
    parser.add_argument("--particle", choices=("e-", "e+", "gamma"), default="e-", help="primary particle")
    add_condition_args(parser, default_n=10)
    parser.add_argument("--detector", default="clic_ecal",
                        help="detector name (clic_ecal, block_<material>) or a TOML geometry file")
    add_device_arg(parser)
    parser.add_argument("--wide", action="store_true",
                        help="allow energies 0.01-2000 GeV and angles 1-179 deg (outside the validated range)")
    parser.add_argument("--bookkeeping", metavar="JSON", default=None,
                        help="also write the per-shower energy bookkeeping (GeV) to this JSON file")
    parser.add_argument("--out", required=True, help="output HDF5 file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Simulate and write the file; returns the exit code."""
    from calogen.detector import get_detector
    from calogen.io import write_showers
    from calogen.simulation.mc import simulate

    energy_range = (0.01, 2000.0) if args.wide else (1.0, 500.0)
    theta_range = (1.0, 179.0) if args.wide else (60.0, 120.0)
    energy, theta = conditions_from_args(args, energy_range=energy_range, theta_range_deg=theta_range)
    device = resolve_device(args.device)
    try:
        detector = get_detector(args.detector)
    except (ValueError, KeyError) as exc:
        raise CliError(str(exc)) from exc
    progress = None if args.quiet else progress_bar(len(energy), "simulate")
    start = time.perf_counter()
    if args.engine == "gflash":
        from calogen.simulation.gflash import simulate_gflash

        if args.particle != "e-":
            raise CliError(f"--engine gflash simulates electrons only; got --particle {args.particle}")
        if args.bookkeeping:
            raise CliError("--bookkeeping is a Monte Carlo feature; GFlash has no particle-level bookkeeping")
        showers = simulate_gflash(energy, theta, detector=detector, seed=args.seed, device=device, progress=progress)
        book = None
    else:
        showers, book = simulate(
            energy, theta, particle=args.particle, detector=detector, seed=args.seed, device=device,
            progress=progress, return_bookkeeping=True, allow_out_of_range=args.wide,
        )
    wall = time.perf_counter() - start
    showers.attrs.update({
        "command": "python -m calogen " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "wall_time_s": round(wall, 3),
    })
    path = write_showers(args.out, showers)
    if book is not None and args.bookkeeping:
        with open(args.bookkeeping, "w") as fh:
            json.dump(book.to_dict(), fh)
    print(f"wrote {len(showers)} showers to {path} ({wall:.1f} s, {1000 * wall / len(showers):.0f} ms/shower)",
          file=sys.stderr)
    return 0

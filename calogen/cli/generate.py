"""``python -m calogen generate``: sample showers from an installed or saved model into an HDF5 file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from calogen.cli._common import (
    CliError,
    add_condition_args,
    add_device_arg,
    conditions_from_args,
    progress_bar,
    resolve_device,
)

__all__ = ["register", "run"]

# The command line accepts any physical condition; the model's card decides what is in range (and the
# message names that range), so these bounds only reject nonsense.
_ENERGY_LIMITS_GEV = (1e-3, 1e5)
_THETA_LIMITS_DEG = (0.0, 180.0)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``generate`` sub-command."""
    parser = subparsers.add_parser(
        "generate",
        help="sample showers from a trained generator",
        description="Sample showers from a trained generator (a name under models/ or a model folder) and "
        "write them, in GeV, to a native HDF5 shower file.",
    )
    parser.add_argument("--model", required=True, help="model name (see `python -m calogen models`) or model folder")
    add_condition_args(parser)
    add_device_arg(parser)
    parser.add_argument("--out", required=True, type=Path, help="output HDF5 file (native format)")
    parser.add_argument("--batch-size", type=int, default=256, help="showers per forward pass")
    parser.add_argument("--fast", action="store_true",
                        help="use the generator's exact speed-ups (conv3d: pixel-shuffle rewrite, channels-last)")
    parser.add_argument("--allow-extrapolation", action="store_true",
                        help="allow conditions outside the range the model was trained on")


def run(args: argparse.Namespace) -> int:
    """Load the model, sample, write the file; returns 0, or raises CliError / ValueError for bad input."""
    from calogen.gan.generate import load_generator
    from calogen.io import write_showers

    if args.batch_size <= 0:
        raise CliError(f"--batch-size {args.batch_size} must be a positive integer")
    energy_gev, theta_rad = conditions_from_args(
        args, energy_range=_ENERGY_LIMITS_GEV, theta_range_deg=_THETA_LIMITS_DEG
    )
    device = resolve_device(args.device)
    model = load_generator(args.model, device=device, fast=args.fast)
    if not args.allow_extrapolation:
        try:
            model.check_conditions(energy_gev, theta_rad)  # before the progress bar appears
        except ValueError as exc:
            raise CliError(str(exc).replace("allow_extrapolation=True", "--allow-extrapolation")) from None
    start = time.perf_counter()
    showers = model.generate(
        energy_gev,
        theta_rad,
        seed=args.seed,
        allow_extrapolation=args.allow_extrapolation,
        batch_size=args.batch_size,
        progress=progress_bar(len(energy_gev), f"generate ({model.name})"),
    )
    elapsed = time.perf_counter() - start
    showers.attrs["source"] = model.name
    path = write_showers(args.out, showers)
    print(
        f"wrote {len(showers)} showers from {model.name} ({model.arch}, {device}) to {path} "
        f"in {elapsed:.2f} s ({1e3 * elapsed / max(len(showers), 1):.2f} ms/shower)",
        file=sys.stderr,
    )
    return 0

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


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``generate`` sub-command."""
    parser = subparsers.add_parser(
        "generate",
        help="sample showers from a trained generator",
        description="Sample showers from a trained generator (a name under models/ or a model folder) and "
        "write them, in GeV, to a native HDF5 shower file. The conditions must lie in the range the model's card "
        "declares (`python -m calogen models` lists it), unless --allow-extrapolation.",
    )
    parser.add_argument("--model", required=True, help="model name (see `python -m calogen models`) or model folder")
    add_condition_args(parser)
    add_device_arg(parser)
    parser.add_argument("--out", required=True, type=Path, help="output HDF5 file (native format)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="showers per forward pass (default 64 on a CPU, 256 on a GPU)")
    parser.add_argument("--fast", action="store_true",
                        help="use the generator's exact speed-ups (conv3d: pixel-shuffle rewrite, channels-last)")
    parser.add_argument("--bf16", action="store_true",
                        help="a factorised generator's shape network in bfloat16 (faster on CPUs with AVX512-BF16 or "
                        "AMX; not exact: its own figures come from validate --model ... --bf16)")
    parser.add_argument("--allow-extrapolation", action="store_true",
                        help="allow conditions outside the range the model was trained on")


def run(args: argparse.Namespace) -> int:
    """Load the model, sample, write the file; returns 0, or raises CliError / ValueError for bad input."""
    from calogen import sources
    from calogen.gan.generate import load_generator
    from calogen.io import write_showers

    if args.batch_size is not None and args.batch_size <= 0:
        raise CliError(f"--batch-size {args.batch_size} must be a positive integer")
    if args.n <= 0:
        raise CliError(f"-n {args.n}: the number of showers must be a positive integer")
    device = resolve_device(args.device)
    model = load_generator(args.model, device=device, fast=args.fast, bf16=args.bf16)
    model.batch_size = args.batch_size or model.batch_size
    accepted = None if args.allow_extrapolation else model.condition_range
    conditions = conditions_from_args(args, accepted, who=f"model {model.name}",
                                      hint="; pass --allow-extrapolation to go beyond")
    start = time.perf_counter()
    showers = sources.sample(model, conditions, seed=args.seed, allow_extrapolation=args.allow_extrapolation,
                             progress=progress_bar(len(conditions), f"generate ({model.name})"))
    elapsed = time.perf_counter() - start
    showers.attrs["source"] = model.name
    path = write_showers(args.out, showers)
    print(
        f"wrote {len(showers)} showers from {model.name} ({model.arch}, {device}) to {path} "
        f"in {elapsed:.2f} s ({1e3 * elapsed / max(len(showers), 1):.2f} ms/shower)",
        file=sys.stderr,
    )
    return 0

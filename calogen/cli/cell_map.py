"""``python -m calogen cell-map``: fit a factorised generator's cell-energy map on Monte Carlo showers.

    python -m calogen cell-map --model models/conv2d --data runs/train-mc --out runs/conv2d-mapped
    python -m calogen validate --model runs/conv2d-mapped --reference data/reference.h5 --draws 4 --update-card

The new folder holds the model's weights, the fitted map and a card without validation figures until
``validate --update-card`` measures them (:func:`calogen.gan.factorised.export.export_with_cell_map`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch

from calogen.cli._common import CliError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``cell-map`` sub-command."""
    parser = subparsers.add_parser(
        "cell-map",
        help="fit a factorised generator's cell-energy map on Monte Carlo showers",
        description="Map the generated cell energies onto the Monte Carlo's distribution per energy bin, angle "
        "group, layer group and ring around the shower axis (histogram matching; each layer keeps the energy "
        "flow's energy), fitted on training showers and as many generated at their conditions; writes a new "
        "model folder.",
    )
    parser.add_argument("--model", required=True, help="a factorised model name or folder")
    parser.add_argument("--data", required=True,
                        help="a `calogen produce` folder or a native shower file (never the held-out reference)")
    parser.add_argument("--out", required=True, type=Path, help="the new model folder (must not hold files)")
    parser.add_argument("--showers", type=int, default=None, help="use at most this many showers (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated showers (default 0)")
    parser.add_argument("--energy-bins", type=int, default=None,
                        help="primary-energy bins over 2-500 GeV, equal in log E (default 16)")
    parser.add_argument("--first-ring", type=int, default=None,
                        help="leave the rings inside this one as generated: 0 maps every cell (the default), 1 from "
                        "1.5 cells, 2 from 3 cells out, 3 from 6, 4 from 12")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the generated showers are drawn (default cpu); the histograms are filled on "
                        "the CPU either way")


def run(args: argparse.Namespace) -> int:
    """Fit the map and write the folder."""
    from calogen.gan.factorised.cell_map import CellMapConfig
    from calogen.gan.factorised.export import export_with_cell_map

    if args.showers is not None and args.showers < 1:
        raise CliError(f"--showers {args.showers} must be at least 1")
    if args.threads < 1:
        raise CliError(f"--threads {args.threads} must be at least 1")
    settings = {k: v for k, v in (("energy_bins", args.energy_bins), ("first_ring", args.first_ring)) if v is not None}
    try:
        config = CellMapConfig(**settings)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.device == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda: torch sees no CUDA device on this machine")
    torch.set_num_threads(args.threads)
    command = "python -m calogen " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    folder = export_with_cell_map(args.model, args.data, args.out, max_showers=args.showers, seed=args.seed,
                                  command=command, config=config, device=args.device,
                                  log=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"wrote {folder}; add the validation figures with: python -m calogen validate --model {folder} "
          "--reference data/reference.h5 --draws 4 --update-card")
    return 0

"""``python -m calogen export``: write a model as ONNX or TorchScript for use outside Python."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from calogen.cli._common import CliError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` sub-command."""
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX or TorchScript",
        description="Export a generator with inputs energy_gev (B,), theta_rad (B,), noise (B, latent_dim) and "
        "output showers (B, X, Y, Z) in GeV, dynamic batch; ONNX is what ONNX Runtime in Geant4 "
        "fast-simulation examples loads.",
    )
    parser.add_argument("--model", required=True, help="model name (see `python -m calogen models`) or model folder")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="output format")
    parser.add_argument("--out", required=True, type=Path, help="output file (.onnx or .pt)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version")


def run(args: argparse.Namespace) -> int:
    """Export; returns 0, or raises CliError / ValueError for bad input."""
    from calogen.gan.export import export_model

    if args.opset < 11:
        raise CliError(f"--opset {args.opset} is too old; use 11 or newer (17 is the default)")
    path = export_model(args.model, args.format, args.out, opset=args.opset)
    print(f"wrote {args.format} model {args.model} to {path} ({path.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return 0

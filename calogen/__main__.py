"""``python -m calogen <command>``: simulate, reference, generate, validate, train, campaign, cell-map, bench, export,
models, produce."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from calogen import __version__
from calogen.cli._common import CliError
from calogen.io import ShowerFileError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = ("simulate", "reference", "generate", "validate", "train", "campaign", "cell-map", "bench", "export",
            "models", "produce")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command whose module is present."""
    parser = argparse.ArgumentParser(
        prog="python -m calogen",
        description="Calorimeter showers: Monte Carlo, GAN generators, validation and speed.",
    )
    parser.add_argument("--version", action="version", version=f"calogen {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"calogen.cli.{name.replace('-', '_')}")
        except ModuleNotFoundError as exc:
            if exc.name == f"calogen.cli.{name.replace('-', '_')}":
                continue
            raise
        module.register(subparsers)
        subparsers.choices[name].set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; user mistakes print one ``error:`` line and return 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (CliError, ShowerFileError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

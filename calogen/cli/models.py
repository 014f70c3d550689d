"""``python -m calogen models``: list the installed generators with their ranges and validation figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["register", "run", "format_table"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` sub-command."""
    parser = subparsers.add_parser(
        "models",
        help="list installed models",
        description="List the models installed in the models folder (models/ next to the calogen package, or "
        "$CALOGEN_MODELS): architecture, training ranges and validation figures.",
    )
    parser.add_argument("--models-dir", type=Path, default=None, help="folder to list instead of the default")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")


def _range(ranges: dict[str, Any], key: str) -> str:
    value = ranges.get(key)
    if not value:
        return "-"
    lo, hi = value
    return f"{lo:g}-{hi:g}"


def format_table(models: list[dict[str, Any]]) -> str:
    """A fixed-width text table of ``calogen.generate.list_models`` entries."""
    header = ("name", "arch", "energy GeV", "theta deg", "validation", "path")
    rows = []
    for m in models:
        if "error" in m:
            rows.append((m["name"], "?", "-", "-", "unreadable card: " + m["error"], m["path"]))
            continue
        ranges = m.get("condition_ranges") or {}
        validation = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(m.get("validation", {}).items())[:3]
        )
        energy, theta = _range(ranges, "energy_gev"), _range(ranges, "theta_deg")
        rows.append((m["name"], m["arch"], energy, theta, validation or "-", m["path"]))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the table (or JSON); returns 0."""
    from calogen.generate import list_models, models_root

    models = list_models(args.models_dir)
    if args.json:
        print(json.dumps(models, indent=2))
    elif not models:
        root = args.models_dir if args.models_dir is not None else models_root()
        print(f"no models installed in {root}")
    else:
        print(format_table(models))
    return 0

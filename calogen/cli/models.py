"""``python -m calogen models``: list the installed generators with their ranges and validation figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from calogen.cli._common import describe_figure, rad_to_deg
from calogen.showers import ConditionRange

__all__ = ["format_figures", "format_table", "register", "run"]

_OTHER_FIGURES = 5  # figures listed for a card without any of calogen's headline figures


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


def _interval(values: Any) -> str:
    lo, hi = values
    return f"{lo:g}-{hi:g}"


def format_table(models: list[dict[str, Any]]) -> str:
    """A fixed-width text table of ``calogen.gan.generate.list_models`` entries, each followed by its headline
    validation figures in words (:func:`format_figures`)."""
    header = ("name", "arch", "energy GeV", "theta deg", "path")
    rows = []
    for m in models:
        if "error" in m:
            rows.append((m["name"], "?", "-", "-", m["path"]))
            continue
        accepted = ConditionRange.from_json(m["condition_range"])
        rows.append((m["name"], m["arch"], _interval(accepted.energy_gev), _interval(rad_to_deg(accepted.theta_rad)),
                     m["path"]))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    for m, row in zip(models, rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        lines += ["    " + line for line in format_figures(m)]
    return "\n".join(lines)


def format_figures(model: dict[str, Any]) -> list[str]:
    """The headline validation figures of a model's card, one line each, with name, unit, pass line and
    meaning (see :func:`calogen.cli._common.describe_figure`); a line saying how to measure them if absent."""
    from calogen.validation.comparison import Comparison

    if "error" in model:
        return [f"unreadable card: {model['error']}"]
    comparison = Comparison.from_json(model.get("validation") or {})
    shown = [(figure.key, figure.value) for figure in comparison.headline]
    if not shown:  # a card from elsewhere: its own figures, as named there
        shown = list(comparison.metrics.items())[:_OTHER_FIGURES]
    if not shown:
        return [(f"not validated yet: python -m calogen validate --model {model['name']} --reference "
                 "data/reference.h5 --update-card")]
    return ["validation figures from card.json (JSON name=value: figure, value, target: verdict (meaning)):",
            *("  " + describe_figure(key, value) for key, value in shown)]


def run(args: argparse.Namespace) -> int:
    """Print the table (or JSON); returns 0."""
    from calogen.gan.generate import list_models
    from calogen.paths import models_dir

    models = list_models(args.models_dir)
    if args.json:
        print(json.dumps(models, indent=2))
    elif not models:
        root = args.models_dir if args.models_dir is not None else models_dir()
        print(f"no models installed in {root}")
    else:
        print(format_table(models))
    return 0

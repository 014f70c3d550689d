"""Model cards: the measured validation written into ``card.json`` by code, never by hand.

:func:`calogen.compare.validate_model` measures a model against held-out Monte Carlo showers and returns the
card's ``validation`` entry (:meth:`calogen.validation.comparison.Comparison.to_card_json`);
:func:`write_validation` puts it into the model folder's ``card.json`` atomically.
``python -m calogen validate --model NAME --reference data/reference.h5 --update-card`` does both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from calogen.io import atomic_write

__all__ = ["write_validation"]


def write_validation(model_dir: str | os.PathLike[str], validation: dict[str, Any], *,
                     key: str = "validation") -> Path:
    """Replace ``validation`` (or ``key``: ``validation_bf16`` holds the figures of a factorised generator's
    bfloat16 path) in ``model_dir/card.json`` (atomic: temporary file, then rename).

    Figures written at training time (the epoch-selection SF errors) move to ``training.selection``.
    Raises FileNotFoundError when the folder has no card.
    """
    card_path = Path(model_dir) / "card.json"
    if not card_path.is_file():
        raise FileNotFoundError(f"{card_path}: no model card to update")
    card = json.loads(card_path.read_text())
    if key not in ("validation", "validation_bf16"):
        raise ValueError(f"key={key!r}: a card holds 'validation' and 'validation_bf16'")
    previous = card.get("validation")
    if key == "validation" and isinstance(previous, dict) and previous and "bins" not in previous:
        # the training-time figures (held-out SF error per epoch, used to select the epoch) stay with training
        card.setdefault("training", {}).setdefault("selection", previous)
    card[key] = validation
    text = json.dumps(card, indent=2, default=_json_default) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    return atomic_write(card_path, write)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")

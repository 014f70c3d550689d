"""Model-card validation: a generator measured against held-out Monte Carlo, written into its card by code.

:func:`validate_model` generates one shower for every shower of a held-out reference file (same energy and
angle, so every bin is compared like for like), runs :func:`calogen.validation.metrics.compare` in the reference's energy
and angle bins and returns the figures a card carries; :func:`write_validation` puts them into
``card.json`` atomically. ``python -m calogen validate --model NAME --reference data/reference.h5 --update-card``
does both.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from calogen.io import atomic_write

__all__ = ["CARD_METRICS", "validate_model", "write_validation"]

# the flat metrics copied from calogen.validation.metrics.compare into a card
CARD_METRICS = (
    "sf_mre", "shape_mse", "bmre_profile_x", "bmre_profile_y", "bmre_profile_z", "separation_mean",
    "ssim_L1", "ssim_L0.0001", "mscn_jsd", "correlation_mse", "cell_variance_ratio", "nn_ratio",
    "fpd_x1e3", "kpd_x1e3", "classifier_auc_low", "classifier_auc_high",
)

_BIN_KEYS = (
    "n_reference", "n_candidate", "sf_reference", "sf_reference_err", "sf_candidate", "sf_candidate_err",
    "sf_relative_error", "shape_mse_z", "bmre_profile_x", "bmre_profile_y", "bmre_profile_z",
)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def validate_model(
    model: str | os.PathLike[str],
    reference_path: str | os.PathLike[str],
    *,
    seed: int = 97531,
    classifier: bool = True,
    device: str = "cpu",
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure a generator against a held-out reference file; returns the card's ``validation`` dict.

    Only reference showers inside the model's trained condition range are used. The dict holds the flat
    metrics of :data:`CARD_METRICS`, the per-bin SF table (energy bin in GeV, angle bin in degrees) and the
    provenance of the measurement (reference file, its seed, sample sizes, device, wall time).
    """
    from calogen.gan.generate import load_generator
    from calogen.io import read_any
    from calogen.validation.metrics import compare

    say = progress or (lambda _msg: None)
    start = time.perf_counter()
    generator = load_generator(model, device=device, fast=True)
    reference = read_any(reference_path)
    ranges = generator.card.get("condition_ranges") or {}
    keep = np.ones(len(reference), dtype=bool)
    if "energy_gev" in ranges:
        lo, hi = ranges["energy_gev"]
        keep &= (reference.energy_gev >= lo) & (reference.energy_gev <= hi)
    if "theta_deg" in ranges:
        lo, hi = ranges["theta_deg"]
        theta_deg = np.rad2deg(reference.theta_rad)
        keep &= (theta_deg >= lo - 1e-3) & (theta_deg <= hi + 1e-3)
    if not keep.any():
        raise ValueError(f"{reference_path}: no reference shower lies inside the model's range {ranges}")
    reference = reference.select(keep)
    say(f"generating {len(reference)} showers with {generator.name}")
    candidate = generator.generate(reference.energy_gev, reference.theta_rad, seed=seed)
    say("comparing")
    result = compare(reference, candidate, classifier=classifier, seed=seed)
    metrics = result["metrics"]
    bins = []
    for row in result["bins"]:
        entry = {k: _finite_or_none(row[k]) for k in _BIN_KEYS if k in row}
        entry["energy_bin_gev"] = [round(float(v), 3) for v in row["energy_gev"]]
        entry["theta_bin_deg"] = [round(math.degrees(float(v)), 2) for v in row["theta_rad"]]
        bins.append(entry)
    ref_attrs = reference.attrs
    return {
        **{name: _finite_or_none(float(metrics[name])) for name in CARD_METRICS if name in metrics},
        "sf_relative_error_max_bin": _finite_or_none(
            max((b["sf_relative_error"] for b in bins if b.get("sf_relative_error") is not None), default=None)
        ),
        "bins": bins,
        "reference": {
            "file": Path(reference_path).name,
            "seed": ref_attrs.get("seed"),
            "source": ref_attrs.get("source"),
            "held_out": True,
            "showers": len(reference),
        },
        "generator_seed": seed,
        "classifier": classifier,
        "device": str(device),
        "wall_time_s": round(time.perf_counter() - start, 1),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
    }


def write_validation(model_dir: str | os.PathLike[str], validation: dict[str, Any]) -> Path:
    """Replace ``validation`` in ``model_dir/card.json`` (atomic: temporary file, then rename).

    Figures written at training time (the epoch-selection SF errors) move to ``training.selection``.
    """
    card_path = Path(model_dir) / "card.json"
    if not card_path.is_file():
        raise FileNotFoundError(f"{card_path}: no model card to update")
    card = json.loads(card_path.read_text())
    previous = card.get("validation")
    if isinstance(previous, dict) and previous and "bins" not in previous:
        # the training-time figures (held-out SF error per epoch, used to select the epoch) stay with training
        card.setdefault("training", {}).setdefault("selection", previous)
    card["validation"] = validation
    text = json.dumps(card, indent=2, default=_json_default) + "\n"
    return atomic_write(card_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")

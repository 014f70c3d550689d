"""Sentences and numbers the app's pages show: progress with the time left, the measured speed-up, a model card
in words, and the headline numbers of one shower (angles in degrees, through :mod:`calogen.app.state`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from calogen.app.state import to_degrees
from calogen.gan.generate import card_condition_range
from calogen.validation import features

__all__ = [
    "angle_label",
    "angle_tolerance_deg",
    "format_card",
    "measured_theta_rad",
    "progress_text",
    "shower_numbers",
    "speedup_sentence",
]

def angle_label(theta_rad: float) -> str:
    """An angle for people: ``"90 deg"``."""
    return f"{to_degrees(theta_rad):g} deg"


def progress_text(done: int, total: int, elapsed_s: float, *, unit: str = "showers") -> str:
    """Progress line with an estimate of the time left, from the rate so far: "2/4 showers, 12 s so far,
    about 12 s left" (no estimate before the first chunk is done)."""
    line = f"{done}/{total} {unit}, {_duration(elapsed_s)} so far"
    if 0 < done < total:
        line += f", about {_duration(elapsed_s / done * (total - done))} left"
    return line


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def _per_shower(ms: float) -> str:
    return f"{ms / 1e3:.3g} s" if ms >= 1e3 else f"{ms:.3g} ms"


def speedup_sentence(results: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> str | None:
    """The measured speed-up of the fastest trained generator (else GFlash, else a random-weight network)
    over the Monte Carlo, as a sentence, from calogen.bench rows (BenchResult.to_dict()) and the run's
    ``meta`` (device, energy_gev, measured). None when the rows hold no Monte Carlo or nothing to compare."""
    mc = next((r for r in results if r.get("kind") == "mc"), None)
    if mc is None:
        return None
    for kind in ("model", "gflash", "arch"):
        rows = [r for r in results if r.get("kind") == kind and r.get("ms_per_shower")]
        if rows:
            fast = min(rows, key=lambda r: float(r["ms_per_shower"]))
            break
    else:
        return None
    ratio = float(mc["ms_per_shower"]) / float(fast["ms_per_shower"])
    energy = meta.get("energy_gev")
    at = f" at {float(energy):g} GeV" if energy is not None else ""
    when = f", measured {str(meta['measured'])[:16].replace('T', ' ')}" if meta.get("measured") else ""
    return (f"On this machine ({fast.get('device', '?')}), {fast['name']} makes a shower in "
            f"{_per_shower(float(fast['ms_per_shower']))} (batches of {fast.get('batch_size', '?')}), the Monte "
            f"Carlo in {_per_shower(float(mc['ms_per_shower']))}{at}: {ratio:,.0f} times faster{when}.")


# ---------------------------------------------------------------- numbers for one shower


def measured_theta_rad(shower: npt.ArrayLike) -> float:
    """Polar angle measured from the layer barycentres of one (nx, ny, nz) shower, radians.

    The 3DGAN measurement (straight-line fit of the layer y barycentres against depth) of
    :func:`calogen.validation.features.measured_angle`; pi/2 = normal incidence.
    """
    return float(features.measured_angle(np.asarray(shower, dtype=np.float32)[None])[0])


def angle_tolerance_deg(energy_gev: float) -> float:
    """How far one shower's measured angle may sit from the true angle before it counts as wrong, degrees.

    About 3 standard deviations plus the bias of the barycentre fit in the Monte Carlo reference
    (data/reference.h5: spread 4.3 deg at 2 GeV, 1.6 at 10, 0.8 at 50, 0.5 at 200 GeV; bias up to 1.1 deg
    at 62 and 118 deg), i.e. 1.5 + 15 / sqrt(E / GeV).
    """
    return 1.5 + 15.0 / math.sqrt(max(float(energy_gev), 1e-3))


def shower_numbers(shower: npt.ArrayLike, energy_gev: float, theta_rad: float) -> dict[str, float]:
    """Headline numbers of one shower.

    shower: (nx, ny, nz) GeV. Returns deposited_gev (sum of cells), sampling_fraction (deposited / primary),
    hits (cells above 0.2 MeV, calogen.validation.features.HIT_THRESHOLD_GEV, as in the 3DGAN validation),
    max_layer (layer with the most energy, 0-based), theta_deg (true) and measured_theta_deg, degrees.
    """
    cells = np.asarray(shower, dtype=np.float64)
    deposited = float(cells.sum())
    return {
        "energy_gev": float(energy_gev),
        "deposited_gev": deposited,
        "sampling_fraction": deposited / float(energy_gev) if energy_gev > 0 else float("nan"),
        "hits": int((cells > features.HIT_THRESHOLD_GEV).sum()),
        "max_layer": int(np.argmax(cells.sum(axis=(0, 1)))),
        "theta_deg": to_degrees(float(theta_rad)),
        "measured_theta_deg": to_degrees(measured_theta_rad(cells)),
    }


def format_card(card: Mapping[str, Any]) -> str:
    """A model card (card.json contents) as readable Markdown: what it is, what it was trained on and how,
    and where its validation figures come from (the figures themselves: :func:`calogen.plots.report.judged_rows`)."""
    lines = [f"### {card.get('name', 'unnamed model')}"]
    if card.get("description"):
        lines.append(str(card["description"]))
    facts = []
    if "arch" in card:
        params = card.get("parameters")
        facts.append(f"**Architecture:** `{card['arch']}`"
                     + (f", {params / 1e6:.2f} M parameters" if isinstance(params, (int, float)) else ""))
    try:
        accepted = card_condition_range(card)
    except ValueError as exc:
        facts.append(f"**Conditions:** unreadable ({exc})")
    else:
        assumed = "" if {"condition_range", "condition_ranges"} & set(card) else " (the card gives none: assumed)"
        facts.append(f"**Energy range:** {accepted.energy_gev[0]:g}-{accepted.energy_gev[1]:g} GeV{assumed}")
        t_lo, t_hi = (to_degrees(t) for t in accepted.theta_rad)
        facts.append(f"**Angle range:** {t_lo:g}-{t_hi:g} deg{assumed}")
    pre = card.get("preprocessing")
    if isinstance(pre, Mapping) and pre:
        facts.append("**Pre-processing:** " + ", ".join(f"{k} {v}" for k, v in pre.items()))
    training = card.get("training")
    if isinstance(training, Mapping) and training:
        facts.append("**Training:** " + _training_sentence(training))
    cell_map = card.get("cell_map")
    if isinstance(cell_map, Mapping) and cell_map:
        facts.append("**Cell map:** " + _cell_map_sentence(cell_map, (card.get("config") or {}).get("cell_map")))
    validation = card.get("validation")
    if isinstance(validation, Mapping) and validation:
        facts.append("**Validation:** " + _validation_sentence(validation))
    lines.extend(f"- {fact}" for fact in facts)
    return "\n".join(lines)



_RING_STARTS = {0: "every cell", 1: "cells from 1.5 cells out", 2: "cells from 3 cells out",
                3: "cells from 6 cells out", 4: "cells from 12 cells out"}


def _cell_map_sentence(account: Mapping[str, Any], settings: Any) -> str:
    """What a factorised model's cell map moved and what it was fitted on."""
    ring = settings.get("first_ring") if isinstance(settings, Mapping) else None
    moved = _RING_STARTS.get(ring, "cells") if isinstance(ring, int) else "cells"
    text = (f"{moved} moved onto the Monte Carlo's cell-energy distribution, fitted on "
            f"{int(account.get('showers', 0)):,} Monte Carlo training showers")
    if account.get("classes"):
        text += f" ({int(account.get('classes_mapped', 0)):,} of {int(account['classes']):,} classes mapped)"
    return text


def _training_sentence(training: Mapping[str, Any]) -> str:
    parts = []
    data = training.get("data_provenance")
    if isinstance(data, Mapping) and data.get("showers"):
        parts.append(f"{int(data['showers']):,} {'Monte Carlo ' if data.get('source') == 'mc' else ''}showers")
    elif training.get("data"):
        parts.append(f"data `{training['data']}`")
    if training.get("steps") is not None:
        parts.append(f"{int(training['steps']):,} steps")
    if training.get("epochs") is not None:
        epoch = training.get("selected_epoch")
        parts.append(f"{int(training['epochs'])} epochs" + (f" (epoch {epoch} kept)" if epoch is not None else ""))
    if training.get("device"):
        parts.append(f"on {training['device']}")
    wall = training.get("wall_time_s")
    if isinstance(wall, (int, float)):
        parts.append(f"{wall / 60:.0f} min" if wall >= 60 else f"{wall:.0f} s")
    return ", ".join(parts) or "no details recorded"


def _validation_sentence(validation: Mapping[str, Any]) -> str:
    reference = validation.get("reference")
    if not isinstance(reference, Mapping):
        return "figures without a recorded reference sample"
    held_out = " held-out" if reference.get("held_out") else ""
    when = f", measured {str(validation['measured'])[:10]}" if validation.get("measured") else ""
    return (f"against {reference.get('showers', '?')}{held_out} Monte Carlo showers of "
            f"`{reference.get('file', '?')}`{when}")

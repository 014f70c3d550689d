"""calogen.sources: the ranking of shower sources and the progress of a Monte Carlo request."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from calogen import sources



def _card(folder: Path, name: str, validation: dict | None) -> sources.Source:
    path = folder / name
    path.mkdir(parents=True)
    card = {"name": name, "arch": "conv2d"} | ({"validation": validation} if validation is not None else {})
    (path / "card.json").write_text(json.dumps(card))
    return sources.Source(name, "model", str(path), "installed")


def test_rank_puts_the_best_validated_model_first_and_the_monte_carlo_last(tmp_path: Path) -> None:
    weak = _card(tmp_path, "weak", {"sf_mre": 2.1, "separation_mean": 0.5, "classifier_auc_high": 1.0})
    good = _card(tmp_path, "good", {"sf_mre": 0.03, "separation_mean": 0.02, "classifier_auc_high": 0.6})
    fair = _card(tmp_path, "fair", {"sf_mre": 0.04, "separation_mean": 0.2, "classifier_auc_high": 0.6})
    unknown = _card(tmp_path, "unknown", None)
    mc, gflash = sources.Source(sources.MONTE_CARLO, "mc"), sources.Source(sources.GFLASH, "gflash")
    ranked = sources.rank_sources([mc, unknown, weak, gflash, fair, good])
    assert [s.name for s in ranked] == ["good", "fair", "weak", "unknown", sources.GFLASH, sources.MONTE_CARLO]


def test_monte_carlo_reports_progress_per_chunk() -> None:
    calls: list[tuple[int, int]] = []
    batch = sources.sample(sources.Source(sources.MONTE_CARLO, "mc"), 2.0, math.pi / 2, 3, seed=1,
                           progress=lambda done, total: calls.append((done, total)))
    assert len(batch) == 3
    assert calls == [(1, 3), (2, 3), (3, 3)]  # one call per shower, not one at the end

"""calogen.sources: the registry, the Source protocol every registered source keeps, and the ranking."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from calogen import sources
from calogen.showers import ConditionRange, Conditions, OutOfRangeError, Source

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty models, runs and data folders, with one small model installed (random weights, 8 x 8 x 6 cells)."""
    from calogen.gan.generate import save_model
    from calogen.gan.nets import build_generator

    for name, env in (("models", "CALOGEN_MODELS"), ("runs", "CALOGEN_RUNS"), ("data", "CALOGEN_DATA")):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(env, str(tmp_path / name))
    torch.manual_seed(0)
    accepted = ConditionRange((10.0, 200.0), (math.radians(70.0), math.radians(110.0)))
    save_model(tmp_path / "models" / "small", build_generator("wgan-gp-atlas", shape=[8, 8, 6]),
               {"name": "small", "arch": "wgan-gp-atlas", "config": {"shape": [8, 8, 6]},
                "condition_range": accepted.to_json()})
    return tmp_path


def test_every_registered_source_keeps_the_protocol(folders: Path) -> None:
    """One shower per condition, a seed gives the same showers (with progress or not), conditions outside the
    source's range raise OutOfRangeError naming it, and progress reaches (n, n)."""
    listed = sources.list_sources()
    assert [e.name for e in listed] == ["small", sources.MONTE_CARLO, sources.GFLASH]
    for entry in listed:
        source = sources.load_source(entry)
        assert isinstance(source, Source) and source.name == entry.name
        assert source.condition_range == entry.condition_range  # the entry knows it without loading weights
        (e_lo, e_hi), (t_lo, t_hi) = source.condition_range.energy_gev, source.condition_range.theta_rad
        energy = max(e_lo, 1.0)  # the Monte Carlo's cheapest showers
        conditions = Conditions.broadcast([energy, 1.5 * energy], [t_lo, 0.5 * (t_lo + t_hi)])
        calls: list[tuple[int, int]] = []
        batch = sources.sample(source, conditions, seed=5, progress=lambda done, total, calls=calls: calls.append(
            (done, total)))
        assert len(batch) == 2 and batch.energy_gev.tolist() == pytest.approx(conditions.energy_gev.tolist())
        np.testing.assert_allclose(batch.theta_rad, conditions.theta_rad, rtol=1e-6)
        assert calls and calls[-1] == (2, 2), entry.name
        np.testing.assert_array_equal(batch.showers, sources.sample(source, conditions, seed=5).showers,
                                      err_msg=entry.name)
        outside = Conditions.broadcast(2.0 * e_hi, t_lo)
        with pytest.raises(OutOfRangeError, match=f"energy {2 * e_hi:g} GeV is outside {e_lo:g}-{e_hi:g} GeV, "
                                                  "the range .* accepts") as raised:
            source.sample(outside, seed=5)
        with pytest.raises(OutOfRangeError) as checked:
            entry.check(outside)  # the same message, before anything is loaded
        assert str(checked.value) == str(raised.value)


def test_a_model_extrapolates_only_when_asked(folders: Path) -> None:
    beyond = Conditions.broadcast(300.0, math.pi / 2, 2)
    with pytest.raises(OutOfRangeError, match="^energy 300 GeV is outside 10-200 GeV, the range model small accepts$"):
        sources.sample("small", beyond, seed=1)
    batch = sources.sample("small", beyond, seed=1, allow_extrapolation=True)
    assert len(batch) == 2 and batch.attrs["extrapolated"] is True
    # the engines keep their own range whatever is asked
    with pytest.raises(OutOfRangeError, match="the range GFlash accepts"):
        sources.sample("gflash", Conditions.broadcast(9000.0, math.pi / 2), allow_extrapolation=True)


def test_find_source_by_alias_name_or_folder(folders: Path) -> None:
    assert sources.find_source("mc").name == sources.MONTE_CARLO
    assert sources.find_source("GFlash").kind == "gflash"
    small = sources.find_source("small")
    assert small.kind == "model" and Path(small.path or "").is_absolute()
    assert small.condition_range.describe() == "10-200 GeV, 70-110 deg"
    assert sources.find_source(str(folders / "models" / "small")).name == "small"
    with pytest.raises(ValueError, match="source 'nope' is neither a known source nor a model folder; choose one "
                                         "of: mc, gflash, small"):
        sources.find_source("nope")


def test_run_models_are_listed_with_their_run(folders: Path) -> None:
    run_model = folders / "runs" / "r1" / "model"
    run_model.mkdir(parents=True)
    (run_model / "card.json").write_text(json.dumps({"name": "best", "arch": "conv2d"}))
    entries = {e.name: e for e in sources.list_sources()}
    assert entries["r1/best"].origin == "run r1" and entries["r1/best"].condition_range.describe() == \
        "2-500 GeV, 60-120 deg"  # a card without a range: calogen's training range
    assert "r1/best" not in {e.name for e in sources.list_sources(include_runs=False)}


def _card(folder: Path, name: str, validation: dict | None) -> sources.SourceEntry:
    path = folder / name
    path.mkdir(parents=True)
    card = {"name": name, "arch": "conv2d"} | ({"validation": validation} if validation is not None else {})
    (path / "card.json").write_text(json.dumps(card))
    return sources.SourceEntry(name, "model", str(path), "installed")


def test_rank_puts_the_best_validated_model_first_and_the_monte_carlo_last(tmp_path: Path) -> None:
    weak = _card(tmp_path, "weak", {"sf_mre": 2.1, "separation_mean": 0.5, "classifier_auc_high": 1.0})
    good = _card(tmp_path, "good", {"sf_mre": 0.03, "separation_mean": 0.02, "classifier_auc_high": 0.6})
    fair = _card(tmp_path, "fair", {"sf_mre": 0.04, "separation_mean": 0.2, "classifier_auc_high": 0.6})
    unknown = _card(tmp_path, "unknown", None)
    mc, gflash = sources.SourceEntry(sources.MONTE_CARLO, "mc"), sources.SourceEntry(sources.GFLASH, "gflash")
    ranked = sources.rank_sources([mc, unknown, weak, gflash, fair, good])
    assert [s.name for s in ranked] == ["good", "fair", "weak", "unknown", sources.GFLASH, sources.MONTE_CARLO]


def test_reference_near_finds_the_closest_showers(tmp_path: Path) -> None:
    from calogen.io import ShowerSet, write_showers

    energy = np.array([10.0, 50.0, 52.0, 50.0], np.float32)
    theta = np.array([math.pi / 2, math.pi / 2, math.pi / 2, math.radians(100.0)], np.float32)
    path = write_showers(tmp_path / "ref.h5", ShowerSet(np.zeros((4, 3, 3, 2), np.float32), energy, theta))
    near = sources.reference_near(path, 50.0, math.pi / 2, 2)
    assert near is not None and near.energy_gev.tolist() == [50.0, 52.0]  # 100 deg is more than 5 deg away
    assert sources.reference_near(path, 200.0, math.pi / 2, 2) is None

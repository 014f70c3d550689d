"""calogen.compare: a typed Comparison from two samples, from a source, from two files; its JSON round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from synthetic import synthetic_showers

from calogen.compare import compare_files, compare_samples, compare_source
from calogen.io import write_showers
from calogen.showers import ConditionRange, Conditions, OutOfRangeError, ShowerSet
from calogen.validation.binning import ConditionBins
from calogen.validation.comparison import BinRow, Comparison

BINS = ConditionBins(((50.0, 75.0), (75.0, 100.0), (100.0, 125.0), (125.0, 150.0)), ((1.5, 1.65),))


@pytest.fixture(scope="module")
def samples() -> dict[str, ShowerSet]:
    ref = synthetic_showers(400, seed=1)
    return {"ref": ref, "other": synthetic_showers(400, seed=2),
            "scaled": ShowerSet(ref.showers * np.float32(1.10), ref.energy_gev, ref.theta_rad, {"source": "x1.1"}),
            "shifted": synthetic_showers(400, seed=3, layer_shift=1)}


@pytest.fixture(scope="module")
def results(samples: dict[str, ShowerSet]) -> dict[str, Comparison]:
    return {name: compare_samples(samples["ref"], samples[name], bins=BINS, seed=0)
            for name in ("other", "scaled", "shifted")}


def test_a_sample_against_itself_gives_zero_error_and_auc_one_half(samples: dict[str, ShowerSet]) -> None:
    ref = samples["ref"].select(slice(0, 200))
    same = compare_samples(ref, ref, bins=BINS, classifier=True, classifier_epochs=3, max_classifier_showers=200)
    assert same.sf_mre == 0.0 and all(row.sf_relative_error == 0.0 for row in same.bins)
    assert same.classifier["high"].auc == pytest.approx(0.5, abs=0.02)
    assert same.classifier["low"].auc == pytest.approx(0.5, abs=0.02)
    m = same.metrics
    assert all(m[k] == 0.0 for k in m if k.startswith(("separation_", "wasserstein_")))
    assert m["shape_mse"] == 0.0 and m["correlation_mse"] == 0.0 and m["mscn_jsd"] == pytest.approx(0.0, abs=1e-12)
    assert m["ssim_L1"] == pytest.approx(1.0) and m["cell_variance_ratio"] == pytest.approx(1.0)
    assert m["exact_copy_fraction"] == 1.0  # the memorisation check sees a copy
    assert same.failed == [] and {f.key for f in same.headline} >= {"sf_mre", "classifier_auc_high"}


def test_cells_scaled_by_1_1_give_ten_percent_in_every_bin(results: dict[str, Comparison]) -> None:
    scaled = results["scaled"]
    assert len(scaled.bins) == 4
    for row in scaled.bins:
        assert row.sf_relative_error == pytest.approx(0.10, rel=1e-5)
        assert row.sf_candidate / row.sf_reference == pytest.approx(1.10, rel=1e-5)
    assert scaled.sf_mre == pytest.approx(0.10, rel=1e-5)
    assert scaled.metrics["sf_relative_error_max_bin"] == pytest.approx(0.10, rel=1e-5)
    assert [f.label for f in scaled.headline if f.key == "sf_mre"] == ["SF error"]
    assert "SF error" in scaled.failed  # 10 % misses the 5 % target
    assert scaled.features["sampling_fraction"].candidate.sum() == 400


def test_independent_draws_agree_and_a_layer_shift_is_caught(results: dict[str, Comparison]) -> None:
    same, shifted = results["other"].metrics, results["shifted"].metrics
    assert same["sf_mre"] < 0.02 and same["separation_mean"] < 0.06  # 400 showers: statistical floor ~0.04
    assert 0.8 < same["cell_variance_ratio"] < 1.25 and same["exact_copy_fraction"] == 0.0
    assert shifted["shape_mse_z"] > 20 * same["shape_mse_z"]
    assert shifted["bmre_profile_z"] > 5 * same["bmre_profile_z"]
    assert shifted["separation_barycentre_z_layer"] > 0.3
    assert shifted["fpd"] > 10 * abs(same["fpd"]) + 0.1
    profile = results["shifted"].profiles["z"]
    assert int(np.argmax(profile.candidate)) == int(np.argmax(profile.reference)) + 1


def test_json_round_trip_keeps_every_part(results: dict[str, Comparison]) -> None:
    original = results["shifted"]
    text = json.dumps(original.to_json(), allow_nan=False)
    data = json.loads(text)
    assert set(data) == {"metrics", "bins", "histograms", "info"}
    assert data["bins"][0]["energy_gev"] == [50.0, 75.0] and "ssim_L0.0001" in data["bins"][0]
    back = Comparison.from_json(data)
    assert back.to_json() == data
    assert back.bins == original.bins and back.metrics == original.metrics
    np.testing.assert_allclose(back.profiles["z"].candidate, original.profiles["z"].candidate)
    assert back.correlation is not None and back.correlation.names == original.correlation.names


def test_card_json_reads_back_and_old_cards_read(results: dict[str, Comparison]) -> None:
    card = results["scaled"].to_card_json(reference={"file": "r.h5", "showers": 400, "held_out": True},
                                          generator_seed=5, command="python -m calogen validate")
    assert card["sf_mre"] == pytest.approx(0.1, rel=1e-5) and card["bins"][0]["theta_bin_deg"] == [85.94, 94.54]
    back = Comparison.from_json(card)
    assert back.sf_mre == card["sf_mre"] and "generator_seed" not in back.metrics
    assert back.bins[0].theta_rad == pytest.approx((math.radians(85.94), math.radians(94.54)))
    assert back.info.n_reference == 400
    with open("models/conv2d/card.json") as f:  # a shipped card, in the flat form cards keep
        shipped = Comparison.from_json(json.load(f)["validation"])
    assert len(shipped.bins) == 24 and shipped.bins[0].sf_relative_error is not None
    assert shipped.sf_mre == pytest.approx(np.mean([b.sf_relative_error for b in shipped.bins]), rel=1e-6)
    assert ("SF error" in shipped.failed) == (shipped.sf_mre > 0.05)  # judged against its 5 % target
    with pytest.raises(ValueError, match="not a comparison"):
        Comparison.from_json({"metrics": {}, "bins": [{"energy_gev": [1.0]}]})


class _ScaledCopies:
    """A tiny source: each shower is a stored shower of the same energy, cells times ``factor``."""

    name = "scaled copies"
    condition_range = ConditionRange((50.0, 150.0), (1.0, 2.0))

    def __init__(self, pool: ShowerSet, factor: float) -> None:
        self.pool, self.factor, self.calls = pool, factor, []

    def sample(self, conditions: Conditions, seed: int | None = None, progress=None) -> ShowerSet:
        self.condition_range.check(conditions, self.name)
        self.calls.append(seed)
        index = [int(np.argmin(np.abs(self.pool.energy_gev - e))) for e in conditions.energy_gev]
        return ShowerSet(self.pool.showers[index] * np.float32(self.factor), conditions.energy_gev,
                         conditions.theta_rad)


def test_compare_source_draws_at_the_reference_conditions(samples: dict[str, ShowerSet]) -> None:
    reference = samples["ref"].select(slice(0, 120))
    source = _ScaledCopies(reference, 1.05)
    result = compare_source(source, reference, seed=7, bins=BINS)
    assert source.calls == [7]
    assert result.info.candidate_source == "scaled copies" and result.info.n_candidate == 120
    assert result.sf_mre == pytest.approx(0.05, rel=1e-5)
    outside = ShowerSet(reference.showers[:3], np.full(3, 300.0, np.float32), reference.theta_rad[:3])
    with pytest.raises(OutOfRangeError, match="300 GeV"):
        compare_source(source, outside, seed=1)


def test_more_draws_per_reference_shower_fill_every_bin_in_proportion(samples: dict[str, ShowerSet]) -> None:
    reference = samples["ref"].select(slice(0, 120))
    source = _ScaledCopies(reference, 1.05)
    result = compare_source(source, reference, seed=7, bins=BINS, draws=3)
    assert result.info.n_candidate == 360 and result.info.n_reference == 120
    assert result.bins and all(row.n_candidate == 3 * row.n_reference for row in result.bins)
    assert result.sf_mre == pytest.approx(0.05, rel=1e-5)
    for draws in (0, 1.5):
        with pytest.raises(ValueError, match="at least one shower per reference shower"):
            compare_source(source, reference, seed=7, bins=BINS, draws=draws)  # type: ignore[arg-type]


class _LaterDrawsDoubled(_ScaledCopies):
    """Exact copies of the reference in the first draw, every later shower doubled."""

    def __init__(self, pool: ShowerSet) -> None:
        super().__init__(pool, 1.0)

    def sample(self, conditions: Conditions, seed: int | None = None, progress=None) -> ShowerSet:
        drawn = super().sample(conditions, seed, progress)
        drawn.showers[len(self.pool):] *= 2.0
        return drawn


def test_the_classifier_sees_the_draw_matched_to_the_reference(samples: dict[str, ShowerSet]) -> None:
    """With 3 draws the SF figures see the doubled showers, the classifier only the first, exact, draw."""
    reference = samples["ref"].select(slice(0, 120))
    result = compare_source(_LaterDrawsDoubled(reference), reference, seed=7, bins=BINS, draws=3, classifier=True,
                            classifier_epochs=3)
    assert result.sf_mre == pytest.approx(2.0 / 3.0, rel=1e-4)  # (1 + 2 + 2) / 3 - 1
    assert result.metrics["classifier_auc_high"] == pytest.approx(0.5, abs=0.1)
    assert result.classifier["high"].n_test == 2 * (120 - int(0.6 * 120) - int(0.2 * 120))


def test_bad_samples_are_refused(samples: dict[str, ShowerSet]) -> None:
    ref = samples["ref"]
    small = ShowerSet(ref.showers[:5, :10], ref.energy_gev[:5], ref.theta_rad[:5])
    with pytest.raises(ValueError, match="geometry"):
        compare_samples(ref, small)
    with pytest.raises(ValueError, match="at least 2 showers"):
        compare_samples(ref, ref.select(slice(0, 1)))


def test_angle_bins_split_rows() -> None:
    ref = ShowerSet.concatenate([synthetic_showers(60, seed=5, theta_rad=1.2),
                                 synthetic_showers(60, seed=6, theta_rad=1.9)])
    cand = ShowerSet.concatenate([synthetic_showers(60, seed=7, theta_rad=1.2),
                                  synthetic_showers(60, seed=8, theta_rad=1.9)])
    result = compare_samples(ref, cand, bins=ConditionBins(((50.0, 150.0),), ((1.1, 1.3), (1.8, 2.0))))
    assert [row.theta_rad for row in result.bins] == [(1.1, 1.3), (1.8, 2.0)]
    assert result.bins[0].measured_angle_rad_reference < 1.5 < result.bins[1].measured_angle_rad_reference


def test_compare_files_records_coverage_and_checks_geometry(tmp_path, samples: dict[str, ShowerSet]) -> None:
    ref_path = write_showers(tmp_path / "ref.h5", samples["ref"].select(slice(0, 100)))
    cand_path = write_showers(tmp_path / "cand.h5", samples["other"].select(slice(0, 100)))
    result = compare_files(ref_path, cand_path, energy_bins_gev=[(50.0, 100.0), (100.0, 150.0)], classifier=False)
    assert result.info.coverage is not None and result.info.coverage.n_reference == 100
    assert result.info.reference_path == str(ref_path) and isinstance(result.bins[0], BinRow)
    bad_path = write_showers(tmp_path / "bad.h5", synthetic_showers(20, seed=9, geometry=(9, 9, 25)))
    with pytest.raises(ValueError, match="ref.h5.*bad.h5"):
        compare_files(ref_path, bad_path, classifier=False)

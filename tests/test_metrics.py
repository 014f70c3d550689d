"""Sample-versus-sample metrics on synthetic showers with known differences."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from calogen.validation import metrics as M
from calogen.validation.classifier import classifier_test, roc_auc
from calogen.io import ShowerSet, write_showers


def synthetic_showers(
    n: int,
    *,
    seed: int,
    geometry: tuple[int, int, int] = (15, 15, 25),
    energy_gev: tuple[float, float] = (50.0, 150.0),
    theta_rad: float = 0.5 * math.pi,
    scale: float = 1.0,
    layer_shift: int = 0,
) -> ShowerSet:
    """Parametrised showers: gamma longitudinal profile x exponential lateral profile, Poisson-like noise.

    Sampling fraction 2%; t_max = ln(E / 10 MeV) / 1.5 layers; lateral exponential radius 1.2 cells; the axis
    tilts in y by cot(theta) cells per layer; cell fluctuations Gamma with variance 1e-4 GeV x mean.
    """
    rng = np.random.default_rng(seed)
    nx, ny, nz = geometry
    energy = rng.uniform(*energy_gev, size=n)
    b = 0.5
    t_max = np.log(energy / 0.01) / 1.5 * rng.lognormal(0.0, 0.05, size=n)
    a = 1.0 + b * t_max
    t = np.arange(nz) + 0.5
    longitudinal = t[None, :] ** (a[:, None] - 1) * np.exp(-b * t[None, :])
    longitudinal /= longitudinal.sum(axis=1, keepdims=True)
    x = np.arange(nx) - (nx - 1) / 2
    y = np.arange(ny) - (ny - 1) / 2
    y_axis = (t - nz / 2)[None, :] / math.tan(theta_rad) + rng.normal(0, 0.2, size=(n, 1))  # (n, nz)
    dx = x[None, :, None, None]
    dy = y[None, None, :, None] - y_axis[:, None, None, :]
    lateral = np.exp(-np.sqrt(dx**2 + dy**2) / 1.2)
    lateral /= lateral.sum(axis=(1, 2), keepdims=True)
    mean = 0.02 * energy[:, None, None, None] * lateral * longitudinal[:, None, None, :]
    q = 1e-4  # GeV: variance = q x mean
    cells = rng.gamma(np.maximum(mean / q, 1e-12), q)
    cells[cells < 1e-6] = 0.0
    if layer_shift:
        cells = np.roll(cells, layer_shift, axis=3)
        cells[..., :layer_shift] = 0.0
    showers = (cells * scale).astype(np.float32)
    return ShowerSet(showers, energy.astype(np.float32), np.full(n, theta_rad, np.float32), {"source": "toy"})


@pytest.fixture(scope="module")
def samples() -> dict[str, ShowerSet]:
    ref = synthetic_showers(1000, seed=1)
    other = synthetic_showers(1000, seed=2)
    scaled = ShowerSet(other.showers * np.float32(1.10), other.energy_gev, other.theta_rad, {"source": "scaled"})
    shifted = synthetic_showers(1000, seed=3, layer_shift=1)
    return {"ref": ref, "other": other, "scaled": scaled, "shifted": shifted}


@pytest.fixture(scope="module")
def results(samples: dict[str, ShowerSet]) -> dict[str, dict]:
    bins = [(50.0, 75.0), (75.0, 100.0), (100.0, 125.0), (125.0, 150.0)]
    ref = samples["ref"]
    return {
        name: M.compare(ref, samples[name], energy_bins=bins, seed=0)
        for name in ("ref", "other", "scaled", "shifted")
    }


def test_separation_power_known_values() -> None:
    assert M.separation_power([1, 2, 3, 0, 0], [0, 0, 0, 4, 5]) == pytest.approx(1.0)
    assert M.separation_power([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)
    # h = (1/2, 1/2), g = (1, 0): S = 1/2 [ (1/2)^2 / (3/2) + (1/2)^2 / (1/2) ] = 1/3
    assert M.separation_power([1, 1], [1, 0]) == pytest.approx(1.0 / 3.0)


def test_bmre_and_wasserstein_known_values() -> None:
    assert M.bmre([1, 2, 1], [1, 2, 1]) == 0.0
    assert M.bmre([1, 1], [1.2, 0.8]) == pytest.approx(0.2)
    rng = np.random.default_rng(0)
    a = rng.normal(size=20000)
    assert M.wasserstein(a, a) == 0.0
    assert M.wasserstein(a, a + 0.5) == pytest.approx(0.5, rel=0.02)  # in units of the reference std (1)


def test_ssim_identical_and_different() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((15, 15, 25))
    assert M.ssim(img, img, data_range=1.0) == pytest.approx(1.0)
    assert M.ssim(img, img, data_range=1e-4) == pytest.approx(1.0)
    assert M.ssim(img, rng.random((15, 15, 25)), data_range=1.0) < 0.5


def test_fpd_kpd_identical_zero_and_shift_positive() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 6))
    assert M.fpd(x, x)[0] == pytest.approx(0.0, abs=1e-9)
    assert M.frechet_distance(x, x + 1.0) == pytest.approx(6.0)
    assert M.kpd(x, x)[0] == pytest.approx(0.0, abs=1e-12)
    same, _ = M.fpd(x, rng.normal(size=(800, 6)))
    moved, _ = M.fpd(x, rng.normal(size=(800, 6)) + 0.5)
    assert abs(same) < 0.03
    assert moved == pytest.approx(6 * 0.25, rel=0.15)  # |mu_r - mu_c|^2 = 6 x 0.5^2
    assert M.kpd(x, rng.normal(size=(800, 6)) + 0.5)[0] > 10 * abs(M.kpd(x, rng.normal(size=(800, 6)))[0])


def test_roc_auc_known_values() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5


def test_identical_samples_give_zero_distances(results: dict[str, dict]) -> None:
    m = results["ref"]["metrics"]
    assert m["sf_mre"] == 0.0
    assert m["separation_mean"] == 0.0
    assert all(m[k] == 0.0 for k in m if k.startswith(("separation_", "wasserstein_")))
    assert m["shape_mse"] == 0.0 and m["bmre_profile_z"] == 0.0
    assert m["ssim_L1"] == pytest.approx(1.0) and m["ssim_L0.0001"] == pytest.approx(1.0)
    assert m["mscn_jsd"] == pytest.approx(0.0, abs=1e-12)
    assert m["correlation_mse"] == 0.0
    assert m["fpd"] == pytest.approx(0.0, abs=1e-6) and m["kpd"] == pytest.approx(0.0, abs=1e-12)
    assert m["cell_variance_ratio"] == pytest.approx(1.0)
    assert m["exact_copy_fraction"] == 1.0 and m["nn_ratio"] == pytest.approx(0.0, abs=1e-3)


def test_independent_seeds_agree(results: dict[str, dict]) -> None:
    m = results["other"]["metrics"]
    assert m["sf_mre"] < 0.02
    assert m["separation_mean"] < 0.02
    assert m["shape_mse_z"] < 1e-3
    assert 0.8 < m["cell_variance_ratio"] < 1.25
    assert m["nn_ratio"] > 0.8 and m["exact_copy_fraction"] == 0.0
    assert abs(m["fpd"]) < 0.5  # 127 standardised features: a shift of 0.06 sigma in each
    assert m["ssim_L0.0001"] > 0.9


def test_scaled_cells_give_ten_percent_sf_error(results: dict[str, dict]) -> None:
    m = results["scaled"]["metrics"]
    assert m["sf_mre"] == pytest.approx(0.10, abs=0.01)
    assert len(results["scaled"]["bins"]) == 4
    for row in results["scaled"]["bins"]:
        assert row["sf_candidate"] / row["sf_reference"] == pytest.approx(1.10, abs=0.015)


def test_layer_shift_is_caught_by_shape_metrics(results: dict[str, dict]) -> None:
    same, shifted = results["other"]["metrics"], results["shifted"]["metrics"]
    assert shifted["shape_mse_z"] > 20 * same["shape_mse_z"]
    assert shifted["bmre_profile_z"] > 5 * same["bmre_profile_z"]
    assert shifted["separation_barycentre_z_layer"] > 0.3
    assert shifted["wasserstein_barycentre_z_layer"] > 1.0
    assert shifted["fpd"] > 10 * abs(same["fpd"]) + 0.1
    # transverse shapes are untouched by a longitudinal shift
    assert shifted["shape_mse_x"] < 10 * same["shape_mse_x"] + 1e-4


def test_result_is_json_and_has_figure_data(results: dict[str, dict]) -> None:
    result = results["other"]
    text = json.dumps(result, allow_nan=False)
    back = json.loads(text)
    assert set(back) == {"metrics", "bins", "histograms", "info"}
    h = back["histograms"]
    for key in ("features", "profile_x", "profile_y", "profile_z", "cell_spectrum", "sparsity", "mscn",
                "correlation", "sf_vs_energy"):
        assert key in h
    assert len(h["profile_z"]["reference"]) == 25
    assert back["bins"][0]["energy_gev"] == [50.0, 75.0]


def test_angle_bins_split_rows() -> None:
    a = synthetic_showers(200, seed=5, theta_rad=1.2)
    b = synthetic_showers(200, seed=6, theta_rad=1.9)
    ref = ShowerSet.concatenate([a, b])
    cand = ShowerSet.concatenate([synthetic_showers(200, seed=7, theta_rad=1.2),
                                  synthetic_showers(200, seed=8, theta_rad=1.9)])
    result = M.compare(ref, cand, energy_bins=[(50.0, 150.0)], theta_bins_rad=[(1.1, 1.3), (1.8, 2.0)])
    rows = result["bins"]
    assert [r["theta_rad"] for r in rows] == [[1.1, 1.3], [1.8, 2.0]]
    assert rows[0]["measured_angle_rad_reference"] < 1.5 < rows[1]["measured_angle_rad_reference"]


def test_compare_rejects_bad_input(samples: dict[str, ShowerSet]) -> None:
    small = ShowerSet(samples["ref"].showers[:5, :10], samples["ref"].energy_gev[:5], samples["ref"].theta_rad[:5])
    with pytest.raises(ValueError, match="geometry"):
        M.compare(samples["ref"], small)
    with pytest.raises(ValueError, match="high > low"):
        M.compare(samples["ref"], samples["other"], energy_bins=[(100.0, 50.0)])


def test_classifier_identical_samples_auc_half(samples: dict[str, ShowerSet]) -> None:
    ref = samples["ref"].select(slice(0, 600))
    result = classifier_test(ref, ref, level="high", max_showers=600, epochs=5)
    assert result["auc"] == pytest.approx(0.5, abs=0.02)
    assert result["jsd"] < 0.02


@pytest.mark.parametrize("level", ["high", "low"])
def test_classifier_independent_seeds_auc_near_half(samples: dict[str, ShowerSet], level: str) -> None:
    result = classifier_test(samples["ref"], samples["other"], level=level, max_showers=1000)
    assert result["auc"] == pytest.approx(0.5, abs=0.07)


def test_classifier_detects_scaled_cells(samples: dict[str, ShowerSet]) -> None:
    result = classifier_test(samples["ref"], samples["scaled"], level="high", max_showers=1000)
    assert result["auc"] > 0.8
    assert result["jsd"] > 0.1


def test_validate_files_writes_json_and_checks_geometry(tmp_path, samples: dict[str, ShowerSet]) -> None:
    ref_path = write_showers(tmp_path / "ref.h5", samples["ref"].select(slice(0, 200)))
    cand_path = write_showers(tmp_path / "cand.h5", samples["other"].select(slice(0, 200)))
    out = tmp_path / "out" / "report.json"
    result = M.validate_files(ref_path, cand_path, out_json=out, classifier=False)
    assert json.loads(out.read_text())["metrics"]["sf_mre"] == pytest.approx(result["metrics"]["sf_mre"])
    other = synthetic_showers(20, seed=9, geometry=(9, 9, 25))
    bad_path = write_showers(tmp_path / "bad.h5", other)
    with pytest.raises(ValueError, match="ref.h5.*bad.h5"):
        M.validate_files(ref_path, bad_path, out_json=None, classifier=False)

"""The generators shipped in models/: they load on a CPU, respond to the conditions, and their cards hold
provenance and figures measured by `calogen validate --update-card` against held-out Monte Carlo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from calogen.gan.generate import card_condition_range, load_generator
from calogen.showers import TRAINING_RANGE

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p for p in (ROOT / "models").glob("*") if (p / "card.json").exists())

pytestmark = pytest.mark.skipif(not SHIPPED, reason="models/ holds no generator")


def _training_data_seed(training: dict) -> int:
    """The seed of the showers a model was trained on: a `train` run's provenance or a `produce` folder's."""
    if "data_provenance" in training:
        return int(training["data_provenance"]["seed"])
    return int(training["data"]["parameters"]["seed"])


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_card_records_training_and_held_out_validation(folder: Path) -> None:
    card = json.loads((folder / "card.json").read_text())
    training = card["training"]
    assert training["command"].startswith(("python -m calogen train", "python -m calogen campaign"))
    # "cpu", "cuda", or a campaign's devices in order of use, e.g. "cpu, cuda:0 (NVIDIA H200)"
    assert all(part.startswith(("cpu", "cuda")) for part in training["device"].split(", "))
    if training["command"].startswith("python -m calogen train"):
        assert training["wall_time_s"] > 0 and training["epochs"] > 0
    else:  # a campaign says how far it got
        assert training["cpu_hours"] > 0 and training["steps"] > 0 and training["showers_seen"] > 0
        assert training["status"] and training["sessions"]
    validation = card["validation"]
    assert validation["command"].startswith("python -m calogen validate")
    assert validation["reference"]["held_out"] is True
    # the validation showers come from seeds the training data never used
    assert validation["reference"]["seed"] != _training_data_seed(training)
    assert validation["classifier"] is True and 0.0 <= validation["classifier_auc_low"] <= 1.0
    bins = validation["bins"]
    assert {b["energy_bin_gev"][0] + 5 for b in bins} >= {50.0, 100.0, 200.0}
    assert validation["sf_mre"] == pytest.approx(np.mean([b["sf_relative_error"] for b in bins]), rel=1e-6)
    assert card_condition_range(card) == TRAINING_RANGE
    if "cell_map" in card:  # a cell map is fitted on training showers, never on the reference
        assert card["cell_map"]["command"].startswith("python -m calogen cell-map")
        assert int(card["cell_map"]["data"]["parameters"]["seed"]) != validation["reference"]["seed"]
        assert card["cell_map"]["showers"] > 0 and "cell_map" in card["config"]


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_loads_on_cpu_and_deposit_grows_with_energy(folder: Path) -> None:
    generator = load_generator(folder, device="cpu", fast=True)
    theta = np.full(32, np.pi / 2, np.float32)
    low = generator.generate(np.full(32, 20.0, np.float32), theta, seed=5).showers
    high = generator.generate(np.full(32, 200.0, np.float32), theta, seed=5).showers
    assert low.shape == high.shape == (32, 51, 51, 25)
    assert np.isfinite(high).all() and (high >= 0).all()
    assert high.sum(axis=(1, 2, 3)).mean() > 1.5 * low.sum(axis=(1, 2, 3)).mean()
    again = generator.generate(np.full(32, 200.0, np.float32), theta, seed=5).showers
    np.testing.assert_array_equal(again, high)  # a seed reproduces the batch


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_the_energy_flow_draws_no_runaway_layer_energies(folder: Path) -> None:
    """20,000 draws of the layer energies at 100 GeV, 90 deg from the base the sampler uses (truncated at 3.5):
    none reaches twice the median sampling fraction (untruncated, the flows shipped when the truncation came in
    gave showers of up to hundreds of times it), and the spread stays the Monte Carlo's size (a few %)."""
    import torch

    from calogen.gan.factorised.model import FactorisedGenerator

    module = load_generator(folder, device="cpu").module
    if not isinstance(module, FactorisedGenerator):
        pytest.skip("not a factorised generator")
    n = 20_000
    energy, theta = torch.full((n,), 100.0), torch.full((n,), np.pi / 2)
    generator = torch.Generator().manual_seed(11)
    raw = torch.randn(n, module.latent_dim, generator=generator)
    with torch.no_grad():
        base = module.truncate_noise(raw, generator)[:, :25]
        sf = module.energy_flow.from_base(energy, theta, base).sum(1).numpy() / 100.0
    assert float(base.abs().max()) <= 3.5
    assert sf.max() < 2.0 * np.median(sf)
    assert 0.02 < sf.std() / sf.mean() < 0.10

"""The cell-energy map: generated cells take the Monte Carlo's distribution per class, layers keep their energy, a
model folder with a map loads and a campaign does not carry it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import synthetic_showers

from calogen.__main__ import main
from calogen.gan.factorised.campaign import CampaignConfig, run_campaign
from calogen.gan.factorised.cell_map import CellHistograms, CellMapConfig, cell_classes, fit_cell_map
from calogen.gan.factorised.export import checkpoint_from_model, export_model, export_with_cell_map
from calogen.gan.generate import load_generator
from calogen.io import write_showers
from calogen.showers import ShowerSet

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = CellMapConfig(n_layers=5, energy_bins=2, layer_group=5, ring_edges_cells=(2.0,), min_cells=50,
                      first_ring=1)
SMALL_SHAPE = {"channels": [8, 8, 4], "latent_dim": 12, "speckle_dim": 4, "threshold_gev": 5e-5}


def _showers(n: int, seed: int, *, median_gev: float, spread: float, filled: float) -> torch.Tensor:
    """(n, 15, 15, 5) showers: one 1 GeV core cell per layer at (7, 7) and a halo of cells, each filled with
    probability ``filled`` with a log-normal energy (``median_gev``, ``spread`` in ln); cells below the
    0.05 MeV threshold are empty, as the generator's are."""
    rng = np.random.default_rng(seed)
    cells = rng.lognormal(math.log(median_gev), spread, (n, 15, 15, 5)) * (rng.random((n, 15, 15, 5)) < filled)
    cells[cells < 5e-5] = 0.0
    cells[:, 7, 7, :] = 1.0
    return torch.from_numpy(cells.astype(np.float32))


def _halo(showers: torch.Tensor) -> torch.Tensor:
    """The non-empty halo cells (2 or more cells from the centre) of (n, 15, 15, 5) showers."""
    x = torch.arange(15)
    far = ((x[:, None] - 7) ** 2 + (x[None, :] - 7) ** 2) >= 4
    halo = showers[:, far, :]
    return halo[halo > 0]


def _conditions(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((n,), 100.0, dtype=torch.float64), torch.full((n,), math.radians(90.0), dtype=torch.float64)


def test_the_map_gives_generated_cells_the_monte_carlo_distribution_and_keeps_layer_energies() -> None:
    """Generated halo cells too faint and too many (median 0.1 MeV, 60 % drawn) against Monte Carlo ones of
    0.5 MeV in 30 % of the cells: mapped, the halo holds the Monte Carlo's share of filled cells and their
    quantiles, the hits above 0.2 MeV follow, and every layer keeps its energy."""
    energy, theta = _conditions(200)
    reference = _showers(200, 1, median_gev=5e-4, spread=0.5, filled=0.3)
    cell_map = fit_cell_map([(reference, energy, theta)],
                            lambda e, t: _showers(len(e), 2, median_gev=1e-4, spread=1.0, filled=0.6), SMALL)
    assert bool(cell_map.active.any())
    fresh = _showers(200, 3, median_gev=1e-4, spread=1.0, filled=0.6)
    mapped = cell_map(fresh, energy, theta)
    torch.testing.assert_close(mapped.sum(dim=(1, 2)), fresh.sum(dim=(1, 2)), rtol=1e-5, atol=0.0)
    halo_ref, halo_gen, halo_map = _halo(reference), _halo(fresh), _halo(mapped)
    assert len(halo_gen) > 1.4 * len(halo_ref)
    assert len(halo_map) == pytest.approx(len(halo_ref), rel=0.05)
    # the layer's scale-back moves the halo by the core's change only: compare shapes of the distributions
    ratio = torch.quantile(halo_map, torch.tensor([0.1, 0.5, 0.9])) / torch.quantile(
        halo_ref, torch.tensor([0.1, 0.5, 0.9]))
    assert float(ratio.max() / ratio.min()) < 1.08
    hits = [int((h > 2e-4).sum()) for h in (halo_ref, halo_gen, halo_map)]
    assert abs(hits[2] - hits[0]) < 0.1 * hits[0] < abs(hits[1] - hits[0])


def test_fewer_generated_cells_take_the_monte_carlo_upper_quantiles() -> None:
    """A generator filling 15 % of the halo against the Monte Carlo's 30 %: no cell is emptied, and the mapped
    cells take the upper half of the Monte Carlo's distribution (their median near its 75 % quantile)."""
    energy, theta = _conditions(200)
    reference = _showers(200, 1, median_gev=5e-4, spread=0.5, filled=0.3)
    generated = _showers(200, 2, median_gev=1e-4, spread=1.0, filled=0.15)
    cell_map = fit_cell_map([(reference, energy, theta)], lambda e, t: generated, SMALL)
    mapped = cell_map(generated, energy, theta)
    assert len(_halo(mapped)) == len(_halo(generated))
    upper = float(torch.quantile(_halo(reference), 0.75))
    assert float(_halo(mapped).median()) == pytest.approx(upper, rel=0.15)


def test_classes_with_too_few_cells_are_left_as_generated() -> None:
    energy, theta = _conditions(20)
    reference = _showers(20, 1, median_gev=5e-4, spread=0.5, filled=0.3)
    generated = _showers(20, 2, median_gev=1e-4, spread=1.0, filled=0.6)
    config = CellMapConfig(n_layers=5, energy_bins=2, layer_group=5, ring_edges_cells=(2.0,), min_cells=10 ** 6,
                           first_ring=0)
    cell_map = fit_cell_map([(reference, energy, theta)], lambda e, t: generated, config)
    assert not bool(cell_map.active.any())
    torch.testing.assert_close(cell_map(generated, energy, theta), generated)


def test_cell_classes_follow_energy_angle_layer_group_and_ring() -> None:
    """The class index counts rings fastest, then layer groups, angle groups and energy bins; the ring is measured
    from the layer's barycentre."""
    config = CellMapConfig(n_layers=4, energy_bins=2, energy_range_gev=(2.0, 200.0), layer_group=2,
                           angle_edges_deg=(15.0,), ring_edges_cells=(1.5,), first_ring=1)
    showers = torch.zeros(2, 9, 9, 4)
    showers[:, 4, 4, :] = 1.0
    classes = cell_classes(showers, torch.tensor([5.0, 150.0]), torch.tensor([math.radians(90.0),
                                                                              math.radians(65.0)]), config)
    assert config.n_classes == 2 * 2 * 2 * 2
    assert classes[0, 4, 4, 0] == 0 and classes[0, 0, 0, 0] == 1 and classes[0, 4, 4, 3] == 2
    assert classes[1, 4, 4, 0] == ((1 * 2 + 1) * 2 + 0) * 2  # 150 GeV, 25 deg from normal incidence
    histograms = CellHistograms.empty(config)
    histograms.add(showers, torch.tensor([5.0, 150.0]), torch.tensor([1.57, 1.13]))
    assert int(histograms.cells.sum()) == showers.numel() and int(histograms.counts.sum()) == 8
    cdf = histograms.cdf()
    assert cdf[0, 0] == pytest.approx(8 / 9)  # 1 of the 9 core cells filled
    assert cdf[1, 0] == 1.0 and np.all(np.diff(cdf, axis=1) >= 0.0)  # the outer ring empty


def test_bad_map_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="increasing positive"):
        CellMapConfig(ring_edges_cells=(3.0, 1.0))
    with pytest.raises(ValueError, match="layer_group"):
        CellMapConfig(layer_group=0)
    with pytest.raises(ValueError, match="first_ring"):
        CellMapConfig(first_ring=5)


def _toy_folder(tmp_path: Path) -> tuple[Path, Path, CampaignConfig]:
    """A tiny factorised model folder (3 campaign steps) and the toy data it was trained on."""
    data = tmp_path / "toy.h5"
    write_showers(data, synthetic_showers(48, seed=5, geometry=(51, 51, 25), energy_gev=(2.0, 500.0)))
    config = CampaignConfig(arch="factorised-conv2d", data=str(data), batch_size=8, flow_epochs=1, holdout=16,
                            seed=7, shape=SMALL_SHAPE)
    run_campaign(config, tmp_path / "runs" / "a", minutes=30.0, steps=3, log=lambda _: None)
    return export_model(tmp_path / "runs" / "a", tmp_path / "models" / "m"), data, config


def test_a_mapped_model_folder_loads_samples_and_is_not_carried_into_a_campaign(tmp_path: Path) -> None:
    """cell-map writes a new folder (weights + map, the card's cell_map account, no validation figures) that
    loads and samples with the flow's layer energies; a campaign started from it goes on without the map; an
    occupied output folder and the reference sample are refused."""
    folder, data, config = _toy_folder(tmp_path)
    mapped_dir = export_with_cell_map(folder, data, tmp_path / "models" / "mapped", max_showers=32, seed=3,
                                      command="test", config=CellMapConfig(energy_bins=1, min_cells=20))
    card = json.loads((mapped_dir / "card.json").read_text())
    assert card["cell_map"]["showers"] == 32 and card["cell_map"]["from_model"] == str(folder)
    assert "cell_map" in card["config"] and "validation" not in card
    plain, mapped = load_generator(folder), load_generator(mapped_dir)
    assert mapped.module.cell_map is not None and bool(mapped.module.cell_map.active.any())
    a = plain.generate(100.0, math.radians(90.0), 6, seed=11).showers  # the toy data is at 90 deg
    b = mapped.generate(100.0, math.radians(90.0), 6, seed=11).showers
    np.testing.assert_allclose(b.sum(axis=(1, 2)), a.sum(axis=(1, 2)), rtol=1e-4)  # the flow's layer energies
    assert not np.array_equal(a, b)

    checkpoint_from_model(mapped_dir, tmp_path / "runs" / "b", config)
    saved = torch.load(tmp_path / "runs" / "b" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert not any(k.startswith("cell_map.") for k in saved["model"])
    state = run_campaign(config, tmp_path / "runs" / "b", minutes=30.0, steps=4, critic_warmup=0, log=lambda _: None)
    assert state["step"] == 4

    with pytest.raises(ValueError, match="holds files"):
        export_with_cell_map(folder, data, mapped_dir)
    reference = tmp_path / "reference.h5"
    sample = ShowerSet(np.zeros((2, 51, 51, 25), np.float32), np.array([10.0, 20.0]), np.array([1.5, 1.5]),
                       {"source": "reference"})
    write_showers(reference, sample)
    with pytest.raises(ValueError, match="never fitted on"):
        export_with_cell_map(folder, reference, tmp_path / "models" / "other")
    assert not (tmp_path / "models" / "other").exists()


def test_the_cell_map_command_writes_the_folder_and_refuses_bad_input(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder, data, _ = _toy_folder(tmp_path)
    out = tmp_path / "models" / "cli"
    assert main(["cell-map", "--model", str(folder), "--data", str(data), "--out", str(out), "--showers", "16",
                 "--threads", "1"]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["cell_map"]["showers"] == 16 and card["cell_map"]["command"].startswith("python -m calogen ")
    assert main(["cell-map", "--model", str(folder), "--data", str(data), "--out", str(out)]) == 2
    assert "holds files" in capsys.readouterr().err
    assert main(["cell-map", "--model", str(folder), "--data", str(data), "--out", str(tmp_path / "x"),
                 "--showers", "0"]) == 2
    assert "--showers 0" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["cell-map", "--model", str(folder), "--data", str(data), "--out", str(tmp_path / "x"),
                 "--first-ring", "7"]) == 2
    assert "first_ring=7" in capsys.readouterr().err and not (tmp_path / "x").exists()
    out = tmp_path / "models" / "cli1"
    assert main(["cell-map", "--model", str(folder), "--data", str(data), "--out", str(out), "--showers", "16",
                 "--first-ring", "1", "--energy-bins", "4", "--threads", "1"]) == 0
    settings = json.loads((out / "card.json").read_text())["config"]["cell_map"]
    assert settings["first_ring"] == 1 and settings["energy_bins"] == 4

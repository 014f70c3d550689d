"""Factorised generators: the layer-energy flow learns, shapes are normalised, a campaign resumes, improves a
figure and exports a model folder that loads like any other."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from calogen.gan.factorised.campaign import CampaignConfig, run_campaign
from calogen.gan.factorised.data import data_physics, load_training_data
from calogen.gan.factorised.energy_flow import (
    EnergyFlowConfig,
    context_features,
    from_flow_space,
    redraw_beyond,
    to_flow_space,
)
from calogen.gan.factorised.export import export_model
from calogen.gan.factorised.flow_fit import train_energy_flow
from calogen.gan.factorised.model import FactorisedGenerator, build_factorised
from calogen.gan.factorised.placement import offset_within_cell
from calogen.gan.factorised.shape_nets import (
    OFFSET_DIM,
    ShapeConfig,
    _layer_shapes,
    _Speckle,
    _split_latent,
    build_shape_generator,
)
from calogen.gan.factorised.shower_figures import (
    angle_groups,
    axis_angle,
    axis_distance,
    axis_residuals,
    condition_groups,
    core_fraction,
    grouped_gap,
    layer_widths,
    ring_hits,
    soft_hits,
)
from calogen.gan.generate import ModelLoadError, load_generator
from calogen.io import write_showers
from calogen.showers import ShowerSet
from calogen.validation.features import high_level_features, measured_angle

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_SHAPE = {"channels": [8, 8, 4], "latent_dim": 12, "speckle_dim": 4, "threshold_gev": 5e-5}


def _toy_showers(n: int, seed: int) -> ShowerSet:
    """Showers with a known law: SF 2 %, a gamma-like longitudinal profile peaking later at higher energy, a
    Gaussian core of 1 cell whose centre moves in y with depth by tan(pi/2 - theta) cells per layer."""
    rng = np.random.default_rng(seed)
    energy = np.exp(rng.uniform(math.log(2.0), math.log(500.0), n))
    theta = rng.uniform(math.radians(60.0), math.radians(120.0), n)
    layers = np.arange(25) + 0.5
    x = np.arange(51) + 0.5
    cells = np.zeros((n, 51, 51, 25), np.float32)
    for i in range(n):
        t_max = 2.0 + 1.5 * math.log(energy[i])
        profile = layers ** 3 * np.exp(-3.0 * layers / t_max)
        profile = profile / profile.sum() * rng.lognormal(0.0, 0.05, 25)
        layer_energy = 0.02 * energy[i] * profile
        shift = math.tan(math.pi / 2 - theta[i]) * (layers - 12.5)
        gx = np.exp(-0.5 * (x - 25.5) ** 2)
        for k in range(25):
            gy = np.exp(-0.5 * (x - 25.5 - shift[k]) ** 2)
            image = np.outer(gx, gy)
            cells[i, :, :, k] = layer_energy[k] * image / image.sum()
    return ShowerSet(cells, energy, theta, {"particle": "e-", "source": "toy"})


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("toy") / "toy.h5"
    write_showers(path, _toy_showers(160, seed=5))
    return path


def test_flow_space_round_trip_keeps_empty_layers() -> None:
    energy = np.array([2.0, 100.0])
    layers = np.array([[0.0, 1e-5, 0.01] + [0.0] * 22, [0.5, 0.2, 0.0] + [0.01] * 22])
    back = from_flow_space(to_flow_space(layers, energy, rng=None), energy)
    np.testing.assert_allclose(back, layers, rtol=1e-4, atol=1e-9)
    dequantised = to_flow_space(layers, energy, rng=np.random.default_rng(0))
    assert np.all(from_flow_space(dequantised, energy)[layers == 0.0] == 0.0)  # empty layers come back empty


@pytest.mark.parametrize("kind", ["conv2d", "conv3d"])
def test_shape_generators_give_normalised_non_negative_layers(kind: str) -> None:
    torch.manual_seed(0)
    net = build_shape_generator(ShapeConfig(kind=kind, channels=(8, 8, 4), latent_dim=8))  # type: ignore[arg-type]
    with torch.no_grad():
        shapes = net(torch.randn(3, 8), torch.randn(3, 27))
    assert shapes.shape == (3, 51, 51, 25)
    assert float(shapes.min()) >= 0.0
    sums = shapes.sum(dim=(1, 2))
    torch.testing.assert_close(sums, torch.ones_like(sums))  # no layer can die


def test_cells_far_below_their_layer_are_exactly_empty() -> None:
    logits = torch.zeros(1, 51, 51, 25)
    logits[0, 25, 25, :] = 20.0  # one cell per layer holds almost everything
    logits[0, 25, 26, :] = 18.0
    shapes = _layer_shapes(logits)[0]
    assert int((shapes[0, :, :, 0] > 0).sum()) == 2  # the rest fall below SPARSITY_FLOOR: exact zeros
    torch.testing.assert_close(shapes.sum(dim=(1, 2)), torch.ones(1, 25))


def test_an_energy_threshold_empties_cells_but_never_a_layer() -> None:
    torch.manual_seed(5)
    config = ShapeConfig(channels=(8, 8, 4), latent_dim=12, speckle_dim=4, threshold_gev=5e-5)
    net = build_shape_generator(config)
    layer_energy = torch.full((2, 25), 0.1)
    layer_energy[:, 24] = 1e-5  # a layer holding less than one threshold
    with torch.no_grad():
        cells = net(torch.randn(2, 12), torch.randn(2, 27), layer_energy) * layer_energy[:, None, None, :]
    assert float(cells[cells > 0].min()) > 0.0
    occupied = cells[:, :, :, :24]
    assert float(occupied[occupied > 0].min()) >= 0.0 and int((occupied > 0).sum()) < occupied.numel()
    # every non-empty cell of a normal layer was above 0.05 MeV before renormalisation, so above it after
    assert float(occupied[occupied > 0].min()) >= 5e-5
    torch.testing.assert_close(cells.sum(dim=(1, 2)), layer_energy, rtol=1e-5, atol=1e-9)  # the tiny layer lives
    with pytest.raises(ValueError, match="speckle_dim"):
        build_shape_generator(ShapeConfig(latent_dim=8, speckle_dim=8))


def test_the_speckle_field_is_unit_normal_and_a_function_of_the_noise() -> None:
    speckle = _Speckle(32, (51, 51, 25))
    noise = torch.randn(4, 32, generator=torch.Generator().manual_seed(0))
    field = speckle(noise)
    assert field.shape == (4, 51, 51, 25)
    assert float(field.mean()) == pytest.approx(0.0, abs=0.02) and float(field.std()) == pytest.approx(1.0, abs=0.03)
    torch.testing.assert_close(_Speckle(32, (51, 51, 25))(noise), field)  # rebuilt: the same field
    torch.testing.assert_close(speckle(noise[2:3]), field[2:3])  # independent of the batch
    corr = np.corrcoef(field[0].flatten().numpy()[:2000], field[0].flatten().numpy()[1:2001])[0, 1]
    assert abs(corr) < 0.1  # neighbouring cells are independent
    # the layers-first layout the Conv2D generator works in is the same field, transposed
    torch.testing.assert_close(speckle(noise, layers_first=True), field.permute(0, 3, 1, 2))


def test_a_capped_speckle_field_is_bounded_and_keeps_its_small_values() -> None:
    """c tanh(eps / c): never beyond +-c, the unbounded field's values where they are small, the same field in
    either memory layout; a negative cap, or a cap without a field, is refused."""
    noise = torch.randn(3, 32, generator=torch.Generator().manual_seed(4))
    free = _Speckle(32, (51, 51, 25))(noise)
    capped = _Speckle(32, (51, 51, 25), cap=2.0)(noise)
    assert float(free.abs().max()) > 3.5 and float(capped.abs().max()) <= 2.0
    small = free.abs() < 0.3
    torch.testing.assert_close(capped[small], free[small], rtol=0.01, atol=0.0)  # tanh(u) = u (1 - u^2 / 3 ...)
    torch.testing.assert_close(capped, 2.0 * torch.tanh(free / 2.0))
    layers_first = _Speckle(32, (51, 51, 25), cap=2.0)(noise, layers_first=True)
    torch.testing.assert_close(layers_first, capped.permute(0, 3, 1, 2))
    with pytest.raises(ValueError, match="speckle_cap=-1.0"):
        build_shape_generator(ShapeConfig(speckle_dim=8, speckle_cap=-1.0))
    with pytest.raises(ValueError, match=r"speckle field \(speckle_dim > 0\)"):
        build_shape_generator(ShapeConfig(speckle_dim=0, speckle_cap=2.0))


def test_layer_shapes_take_any_memory_layout() -> None:
    """The shapes of (B, X, Y, Z) logits do not depend on how the logits lie in memory (the Conv2D generator
    hands them over laid out layer first): every layer sums to one and cells below the floor are empty."""
    logits = torch.randn(3, 51, 51, 25, generator=torch.Generator().manual_seed(1)) * 3.0
    floor = torch.full((3, 25), 1e-3)
    shapes, density = _layer_shapes(logits, floor)
    transposed = _layer_shapes(logits.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1), floor)[0]
    torch.testing.assert_close(transposed, shapes)
    torch.testing.assert_close(shapes.sum(dim=(1, 2)), torch.ones(3, 25))
    assert float(shapes[shapes > 0].min()) >= 1e-3
    # the density the cut was made from: every cell non-empty, each layer summing to one, the kept cells in the
    # same proportions (the shapes are the density renormalised over the cells above the floor)
    assert float(density.min()) > 0.0
    torch.testing.assert_close(density.sum(dim=(1, 2)), torch.ones(3, 25))
    kept = density * (shapes > 0)
    torch.testing.assert_close(shapes, kept / kept.sum(dim=(1, 2), keepdim=True))


def test_ring_hits_count_hits_by_distance_from_the_layer_axis() -> None:
    showers = torch.zeros(1, 51, 51, 25)
    showers[0, 25, 25, 3] = 0.1  # the core: the layer's barycentre
    showers[0, 27, 25, 3] = 1e-3  # 2 cells out
    showers[0, 25, 45, 3] = 1e-3  # 20 cells out: the rest of the window
    showers[0, 25, 30, 3] = 1e-5  # below 0.2 MeV: no hit anywhere
    hard = ring_hits(showers, soft=False)
    assert hard.shape == (1, 25, 5)
    assert hard[0, 3].tolist() == [1.0, 1.0, 0.0, 0.0, 1.0] and float(hard.sum()) == 3.0
    torch.testing.assert_close(ring_hits(showers), hard, atol=0.01, rtol=0.0)  # the soft count agrees


@pytest.mark.parametrize("kind", ["conv2d", "conv3d"])
def test_axis_shear_puts_the_layers_on_the_incidence_axis(kind: str) -> None:
    """A shower drawn straight down its own frame comes out tilted: the measured angle (3DGAN, layer barycentres
    against depth) is the incidence angle, and the energy-weighted mean depth stays on the window's centre."""
    torch.manual_seed(8)
    config = ShapeConfig(kind=kind, channels=(8, 8, 4), latent_dim=8, axis_shear=True)  # type: ignore[arg-type]
    net = build_shape_generator(config)
    assert net.shear is not None
    logits = torch.full((3, 51, 51, 25), -30.0)
    logits[:, 25, 25, :] = 10.0  # a pencil along the frame's axis
    theta = torch.tensor([math.radians(a) for a in (62.0, 90.0, 118.0)])
    layers = torch.rand(3, 25) + 0.1
    shift = net.shear.shift_cells(theta, layers)
    assert torch.allclose((shift * layers).sum(1), torch.zeros(3), atol=1e-4)  # the barycentre does not move
    shower = torch.softmax(net.shear(logits, shift).reshape(3, -1, 25), 1).reshape(3, 51, 51, 25)
    shower = shower * layers[:, None, None]
    angle = np.degrees(measured_angle(shower.numpy()))
    np.testing.assert_allclose(angle, [62.0, 90.0, 118.0], atol=0.5)
    conditions = torch.cat([torch.zeros(3, 1), ((theta - math.pi / 2) / 0.5)[:, None], torch.zeros(3, 25)], 1)
    with torch.no_grad():
        shapes = net(torch.randn(3, 8), conditions, layers)
    torch.testing.assert_close(shapes.sum(dim=(1, 2)), torch.ones(3, 25))
    with pytest.raises(ValueError, match="needs the layer energies"):
        net(torch.randn(3, 8), conditions)
    assert build_shape_generator(ShapeConfig(kind=kind, channels=(8, 8, 4), latent_dim=8)).shear is None  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["conv2d", "conv3d"])
def test_entry_offset_places_the_shower_uniformly_within_its_central_cell(kind: str) -> None:
    """The last two latent values move the shower by an offset uniform over +-0.5 cells in x and y (the entry
    point uniform over a cell, the window centred on the barycentre's cell): a shower's barycentre moves by
    exactly that offset (in either memory layout), and the rest of the latent is the network's."""
    torch.manual_seed(9)
    config = ShapeConfig(kind=kind, channels=(8, 8, 4), latent_dim=12, speckle_dim=4, axis_shear=True,  # type: ignore[arg-type]
                         entry_offset=True)
    net = build_shape_generator(config)
    assert net.config.latent_dim - net.config.speckle_dim - OFFSET_DIM == 6  # the network's own latent

    offset = _split_latent(config, torch.randn(20000, 12))[2]
    assert offset is not None and offset.shape == (20000, 2)
    assert float(offset.abs().max()) <= 0.5
    for column in offset.T:  # uniform over [-0.5, 0.5)
        assert stats.kstest(column.numpy(), stats.uniform(loc=-0.5, scale=1.0).cdf).pvalue > 1e-3

    cells = torch.arange(51.0)
    mean = -((cells[:, None] - 25) ** 2 + (cells[None, :] - 25) ** 2)[None, :, :, None].expand(4, 51, 51, 25) / 2.0
    moved = torch.tensor([[0.3, -0.2], [-0.5, 0.49], [0.0, 0.0], [0.1, 0.4]])
    shape = torch.softmax(offset_within_cell(mean, moved).reshape(4, -1, 25), 1).reshape(4, 51, 51, 25)
    barycentre_x = (shape.sum(dim=(2, 3)) * cells).sum(1) / 25.0 - 25.0
    barycentre_y = (shape.sum(dim=(1, 3)) * cells).sum(1) / 25.0 - 25.0
    torch.testing.assert_close(torch.stack([barycentre_x, barycentre_y], 1), moved, atol=1e-4, rtol=0.0)
    layers_first = offset_within_cell(mean.permute(0, 3, 1, 2), moved, layers_first=True)  # the Conv2D net's layout
    torch.testing.assert_close(layers_first.permute(0, 2, 3, 1), offset_within_cell(mean, moved))

    conditions = torch.zeros(4, 27)
    with torch.no_grad():
        shapes = net(torch.randn(4, 12), conditions, torch.ones(4, 25))
    torch.testing.assert_close(shapes.sum(dim=(1, 2)), torch.ones(4, 25))
    with pytest.raises(ValueError, match="below latent_dim=8 less the 2 values of the entry offset"):
        build_shape_generator(replace(config, latent_dim=8, speckle_dim=6))


def test_soft_hits_count_cells_above_0_2_mev() -> None:
    showers = torch.zeros(1, 51, 51, 25)
    showers[0, :10, 0, 0] = 1e-3  # ten cells of 1 MeV
    showers[0, :5, 1, 1] = 1e-5  # five of 0.01 MeV in the next layer
    assert float(soft_hits(showers)[0, 0]) == pytest.approx(10.0, abs=0.05)
    assert float(soft_hits(showers)[0, 1]) < 1e-4


def test_the_density_gives_a_hit_gradient_where_the_threshold_empties_cells() -> None:
    """A cell the 0.05 MeV threshold has emptied cannot grow into a hit through the generator's cells (no
    gradient reaches its logit); through the density before the threshold it can, and a wider sigmoid pulls it
    harder."""
    logits = (3.0 * torch.randn(2, 51, 51, 25, generator=torch.Generator().manual_seed(2))).requires_grad_(True)
    layers = torch.full((2, 25), 0.05)  # 50 MeV a layer over 2601 cells: many below 0.05 MeV
    floor = layers.new_full((2, 25), 5e-5) / layers
    shapes, density = _layer_shapes(logits, floor)
    empty = shapes.detach() == 0.0
    assert int(empty.sum()) > 1000
    pulls = []
    for cells, width in ((shapes, 0.25), (density, 0.25), (density, 1.0)):
        (grad,) = torch.autograd.grad(ring_hits(cells * layers[:, None, None, :], width=width).sum(), logits,
                                      retain_graph=True)
        pulls.append(float(grad[empty].abs().mean()))
    # through the cells only the softmax's normalisation reaches an emptied logit, a million times weaker
    assert pulls[0] < 1e-6 * pulls[1] and pulls[2] > 3.0 * pulls[1], pulls


def test_generator_layers_carry_the_flow_energies() -> None:
    torch.manual_seed(1)
    model = build_factorised("factorised-conv2d", {"shape": SMALL_SHAPE})
    energy, theta = torch.tensor([10.0, 300.0]), torch.tensor([1.2, 1.9])
    noise = torch.randn(2, model.latent_dim)
    with torch.no_grad():
        showers = model(energy, theta, noise)
        layers = model.energy_flow.from_base(energy, theta, noise[:, :25])
        torch.testing.assert_close(showers.sum(dim=(1, 2)), layers, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(model(energy, theta, noise), showers)  # the noise fixes the showers


def test_the_fast_path_gives_the_same_showers() -> None:
    """The Conv2D generator's channels-last convolutions (what models load with) change the arithmetic's order
    only: the same showers to 1e-5 of the largest cell (a cell sitting on the 0.05 MeV threshold may flip, at most
    one in 10^4), the same layer energies; switching it off restores the default layout."""
    torch.manual_seed(3)
    model = build_factorised("factorised-conv2d", {"shape": {**SMALL_SHAPE, "speckle_dim": 8,
                                                             "threshold_gev": 5e-5}}).eval()
    energy, theta = torch.tensor([5.0, 80.0, 400.0]), torch.tensor([1.1, 1.57, 2.0])
    noise = torch.randn(3, model.latent_dim)
    with torch.no_grad():
        plain = model(energy, theta, noise)
        fast = model.use_fast_path(True)(energy, theta, noise)
        assert model.shape.conv.weight.is_contiguous(memory_format=torch.channels_last)
        back = model.use_fast_path(False)(energy, theta, noise)
    differs = (fast - plain).abs() > 1e-5 * float(plain.max())
    assert float(differs.float().mean()) < 1e-4 and torch.equal(back, plain)
    torch.testing.assert_close(fast.sum(dim=(1, 2)), plain.sum(dim=(1, 2)), rtol=1e-5, atol=1e-9)
    assert model.shape.conv.weight.is_contiguous()


def test_energy_flow_learns_the_sampling_fraction(toy_file: Path) -> None:
    torch.manual_seed(2)
    data = load_training_data(toy_file)
    train, holdout = data.split(40)
    model = FactorisedGenerator(EnergyFlowConfig(transforms=3, hidden=32), ShapeConfig(channels=(8, 8, 4),
                                                                                        latent_dim=8))
    history = train_energy_flow(model.energy_flow, train, holdout, epochs=40, batch=32, lr=3e-3, seed=2)
    assert history[-1]["nll_holdout"] < history[0]["nll_holdout"] - 10.0
    # the flow keeps its best epoch on the held-out showers: the likelihood of the weights it ends with is that one
    kept = [epoch for epoch in history if epoch.get("kept")]
    assert len(kept) == 1 and kept[0]["nll_holdout"] == min(epoch["nll_holdout"] for epoch in history)
    c_hold = context_features(holdout.energy_gev, holdout.theta_rad)
    rng = np.random.default_rng(2)  # the held-out showers dequantised as the fit did, after the training set
    to_flow_space(train.layer_energy.numpy(), train.energy_gev.numpy(), rng)
    u_hold = torch.from_numpy(to_flow_space(holdout.layer_energy.numpy(), holdout.energy_gev.numpy(), rng))
    with torch.no_grad():
        assert float(-model.energy_flow.log_prob(u_hold, c_hold).mean()) == pytest.approx(kept[0]["nll_holdout"],
                                                                                        abs=1e-4)
    energy = torch.full((400,), 50.0)
    layers = model.energy_flow.sample_layer_energies(energy, torch.full((400,), math.pi / 2),
                                                     generator=torch.Generator().manual_seed(3))
    sf = float(layers.sum(1).mean() / 50.0)
    assert sf == pytest.approx(0.02, rel=0.10)  # the toy law: 2 %


def test_campaign_improves_the_hit_count_resumes_and_exports(toy_file: Path, tmp_path: Path) -> None:
    torch.manual_seed(4)
    config = CampaignConfig(arch="factorised-conv2d", data=str(toy_file), batch_size=16, flow_epochs=2,
                            holdout=32, seed=4, shape=SMALL_SHAPE, lr_generator=1e-3, lr_critic=1e-3,
                            instance_noise=0.0, axis_weight=0.0)  # the axis term has its own test
    run = tmp_path / "run"
    first = run_campaign(config, run, minutes=30.0, steps=15, monitor_every=15, log=lambda _: None)
    assert first["step"] == 15 and first["showers_seen"] == 15 * 16
    before = abs(first["monitor"]["hits_rel_error"])  # the untrained shapes spread energy over far too many cells
    state = run_campaign(config, run, minutes=30.0, steps=120, monitor_every=40, log=lambda _: None)
    assert state["step"] == 120 and len(state["sessions"]) == 2
    after = abs(state["monitor"]["hits_rel_error"])
    assert before > 1.0 and after < 0.5 * before, (before, after)
    for distance in ("fpd_x1e3", "kpd_x1e3"):  # the high-level features' distributions come closer too
        assert 0.0 < state["monitor"][distance] < first["monitor"][distance], distance
    progress = json.loads((run / "progress.json").read_text())
    assert progress["step"] == 120 and progress["cpu_hours"] > 0.0

    folder = export_model(run, tmp_path / "models" / "toy2d", status="in progress: a test")
    card = json.loads((folder / "card.json").read_text())
    assert card["arch"] == "factorised-conv2d" and card["training"]["steps"] == 120
    assert card["training"]["showers_seen"] == 120 * 16 and card["training"]["data"]["files"] == 1
    assert card["training"]["device"] == "cpu" and {s["device"] for s in card["training"]["sessions"]} == {"cpu"}
    generator = load_generator(folder)
    sample = generator.generate(100.0, math.pi / 2, n=3, seed=7)
    assert sample.showers.shape == (3, 51, 51, 25) and float(sample.showers.min()) >= 0.0
    np.testing.assert_array_equal(generator.generate(100.0, math.pi / 2, n=3, seed=7).showers, sample.showers)

    # the session's best monitored weights (lowest KPD against the monitoring showers, its start included)
    best = state["sessions"][-1]["best"]
    monitored = [json.loads(line) for line in (run / "monitor.jsonl").read_text().splitlines()]
    assert best["kpd_x1e3"] <= min(r["kpd_x1e3"] for r in monitored if r["step"] > 15)
    best_folder = export_model(run, tmp_path / "models" / "best2d", best=True)
    best_card = json.loads((best_folder / "card.json").read_text())
    assert best_card["training"]["steps"] == best["step"] == best_card["training"]["weights"]["step"]
    assert best_card["training"]["cpu_hours"] == card["training"]["cpu_hours"]  # the whole campaign's
    assert load_generator(best_folder).generate(100.0, math.pi / 2, n=2, seed=7).showers.shape == (2, 51, 51, 25)
    (run / "best.pt").unlink()
    with pytest.raises(ValueError, match="best monitored"):
        export_model(run, tmp_path / "models" / "none", best=True)
    assert not (tmp_path / "models" / "none").exists()

    card["config"]["shape"]["channels"] = [16, 8, 4]  # a card that no longer matches its weights
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="shape"):
        load_generator(folder)


def test_the_paired_hit_constraint_brings_each_showers_hit_count_to_its_monte_carlo_twins(toy_file: Path,
                                                                                          tmp_path: Path) -> None:
    """With the per-shower hit-count constraint alone among the hit constraints, training lowers the mean
    |log(1 + hits)| difference between each generated shower and the Monte Carlo shower it was drawn beside."""
    torch.manual_seed(4)
    config = CampaignConfig(arch="factorised-conv2d", data=str(toy_file), batch_size=16, flow_epochs=2,
                            holdout=32, seed=4, shape=SMALL_SHAPE, lr_generator=1e-3, lr_critic=1e-3,
                            axis_weight=0.0, hits_weight=0.0, ring_weight=0.0, paired_hits_weight=2.0)
    run = tmp_path / "run"
    first = run_campaign(config, run, minutes=30.0, steps=15, monitor_every=15, log=lambda _: None)
    before = first["monitor"]["paired_hits_loss"]
    state = run_campaign(config, run, minutes=30.0, steps=120, monitor_every=40, log=lambda _: None)
    after = state["monitor"]["paired_hits_loss"]
    assert after < 0.5 * before, (before, after)
    with pytest.raises(ValueError, match="must not be negative"):
        CampaignConfig(arch="factorised-conv2d", data=str(toy_file), paired_hits_weight=-1.0)


def test_the_feature_critic_alone_brings_the_high_level_features_closer(toy_file: Path, tmp_path: Path) -> None:
    """Every other term off, the critic on the classifier's features trains the shapes: the monitored FPD of the
    high-level features falls; the critic and its optimiser are in the checkpoint and a resumed session goes on
    with them; a run that had none trains a new one alone first."""
    torch.manual_seed(4)
    config = CampaignConfig(arch="factorised-conv2d", data=str(toy_file), batch_size=16, flow_epochs=2,
                            holdout=32, seed=4, shape=SMALL_SHAPE, lr_generator=1e-3, lr_critic=1e-3,
                            adversarial_weight=0.0, angle_weight=0.0, axis_weight=0.0, width_weight=0.0,
                            hits_weight=0.0, core_weight=0.0, ring_weight=0.0, feature_adversarial_weight=1.0)
    run = tmp_path / "run"
    first = run_campaign(config, run, minutes=30.0, steps=15, monitor_every=15, log=lambda _: None)
    saved = torch.load(run / "checkpoint.pt", weights_only=False)
    assert {"feature_critic", "opt_f"} <= saved.keys()
    messages: list[str] = []
    state = run_campaign(config, run, minutes=30.0, steps=100, monitor_every=85, log=messages.append)
    assert not any("training a new one" in m for m in messages), messages  # the saved one goes on
    assert state["monitor"]["fpd_x1e3"] < 0.6 * first["monitor"]["fpd_x1e3"], (first["monitor"], state["monitor"])
    assert state["monitor"]["loss_feature_critic"] > 0.0

    plain = replace(config, feature_adversarial_weight=0.0)
    run_campaign(plain, tmp_path / "plain", minutes=30.0, steps=2, log=lambda _: None)
    assert "feature_critic" not in torch.load(tmp_path / "plain" / "checkpoint.pt", weights_only=False)
    messages.clear()
    run_campaign(config, tmp_path / "plain", minutes=30.0, steps=3, critic_warmup=2, log=messages.append)
    assert any("no feature critic: training a new one alone for 2 steps" in m for m in messages), messages


def test_the_feature_critics_features_are_the_classifiers() -> None:
    """Barycentres (from the window centre, /5), ln widths and ln(1 + hits) - 6 of :func:`high_level_features` are
    those of the validation's classifier, for showers whose cells are far from the hit threshold."""
    from calogen.gan.factorised.feature_critic import high_level_features as critic_features

    rng = np.random.default_rng(3)
    cells = rng.exponential(1e-2, size=(2, 51, 51, 25)) * (rng.random((2, 51, 51, 25)) < 0.03)
    cells[:, 20, 27, :] += 0.05
    hlf, names = high_level_features(cells.astype(np.float32), np.full(2, 50.0))
    mine = critic_features(torch.from_numpy(cells), hit_width=0.01).numpy()
    column = {n: i for i, n in enumerate(names)}
    for k, (kind, axis) in enumerate([("bary", "x"), ("bary", "y"), ("width", "x"), ("width", "y")]):
        theirs = hlf[:, [column[f"{axis}_{kind}_layer{z}"] for z in range(25)]]
        expected = theirs / 5.0 if kind == "bary" else np.log(theirs)
        np.testing.assert_allclose(mine[:, 25 * k:25 * (k + 1)], expected, rtol=1e-4, atol=1e-5)
    hits = 10 ** hlf[:, column["log10_1p_hits"]] - 1.0
    np.testing.assert_allclose(mine[:, -1], np.log1p(hits) - 6.0, atol=2e-3)


def test_a_standardised_feature_critic_tells_small_differences_apart_that_a_raw_one_cannot() -> None:
    """Two feature samples whose every feature differs by a third of its spread (as the shipped generators' do): the
    spectrally normalised critic on standardised features (gain 3) reaches a far lower hinge loss in 300 steps
    than the same critic on the raw features; the standardisation is the features' own mean and spread."""
    from calogen.gan.factorised.feature_critic import FeatureCritic, feature_standardisation

    gen = torch.Generator().manual_seed(0)
    spread = torch.full((101,), 0.1)
    real = 0.5 + spread * torch.randn(2048, 101, generator=gen)
    fake = 0.5 + spread * (torch.randn(2048, 101, generator=gen) - 1.0 / 3.0)
    conditions = torch.zeros(64, 27)

    def hinge_after_training(critic: FeatureCritic) -> float:
        torch.manual_seed(1)
        opt = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.0, 0.9))
        for step in range(300):
            rows = torch.randint(0, 2048, (64,), generator=gen)
            loss = (torch.relu(1.0 - critic(real[rows], conditions)).mean()
                    + torch.relu(1.0 + critic(fake[rows], conditions)).mean())
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return float(torch.relu(1.0 - critic(real, torch.zeros(2048, 27))).mean()
                         + torch.relu(1.0 + critic(fake, torch.zeros(2048, 27))).mean())

    torch.manual_seed(2)
    raw = hinge_after_training(FeatureCritic())
    torch.manual_seed(2)
    standardised = FeatureCritic().standardise(real.mean(0), real.std(0), gain=3.0)
    assert torch.allclose(standardised.feature_scale, real.std(0) / 3.0)
    scaled = hinge_after_training(standardised)
    assert raw > 1.5 and scaled < 0.3 * raw, (raw, scaled)  # (1.84 and 0.16 here)

    showers = torch.zeros(4, 51, 51, 25)
    showers[:, 25, 25, :] = 1.0
    showers[:2, 26, 25, :] = 0.5
    mean, std = feature_standardisation([showers[:2], showers[2:]])
    assert mean.shape == std.shape == (101,)
    assert torch.all(std[25:50] == 1.0)  # the y barycentres never vary here: std 1, not 0
    assert torch.allclose(mean[:25], torch.full((25,), 0.5 * (1.0 / 3.0) / 5.0), atol=1e-6)  # x barycentre
    with pytest.raises(ValueError, match="gain=0.0 must be positive"):
        FeatureCritic().standardise(mean, std, gain=0.0)


def test_a_campaign_standardises_a_new_feature_critic_and_starts_a_new_one_for_another_gain(toy_file: Path,
                                                                                           tmp_path: Path) -> None:
    """With a feature-critic gain the campaign's new critic carries the training showers' feature statistics over
    the gain (in the checkpoint); a session at the same gain goes on with it, one with another gain trains a new
    critic alone first, standardised at that gain; a negative gain is refused."""
    from calogen.gan.factorised.data import load_training_data
    from calogen.gan.factorised.feature_critic import feature_standardisation
    from calogen.gan.factorised.shape_nets import cells_from_view

    config = CampaignConfig(arch="factorised-conv2d", data=str(toy_file), batch_size=8, flow_epochs=1,
                            holdout=32, seed=4, shape=SMALL_SHAPE, feature_adversarial_weight=1.0,
                            feature_critic_gain=2.0)
    run = tmp_path / "run"
    run_campaign(config, run, minutes=30.0, steps=2, log=lambda _: None)
    saved = torch.load(run / "checkpoint.pt", weights_only=False)["feature_critic"]
    train, _ = load_training_data(str(toy_file)).split(32)
    mean, std = feature_standardisation([cells_from_view(train.critic_view[:2048])], config.hit_width)
    torch.testing.assert_close(saved["feature_mean"], mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(saved["feature_scale"], std / 2.0, rtol=1e-4, atol=1e-5)
    messages: list[str] = []
    run_campaign(config, run, minutes=30.0, steps=3, critic_warmup=2, log=messages.append)
    assert not any("training a new one" in m for m in messages), messages
    run_campaign(replace(config, feature_critic_gain=3.0), run, minutes=30.0, steps=4, critic_warmup=2,
                 log=messages.append)
    assert any("no feature critic at gain 3: training a new one alone for 2 steps" in m for m in messages), messages
    resaved = torch.load(run / "checkpoint.pt", weights_only=False)["feature_critic"]
    torch.testing.assert_close(resaved["feature_scale"], std / 3.0, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="feature_critic_gain=-1.0 must not be negative"):
        replace(config, feature_critic_gain=-1.0)


def test_the_angle_bias_constraint_brings_the_mean_axis_angle_to_the_monte_carlos(toy_file: Path,
                                                                                  tmp_path: Path) -> None:
    """Without the per-shower angle and axis constraints, the grouped axis-angle constraint brings the generated
    showers' mean measured angle, below 80 and above 100 deg, closer to the monitoring showers' than the same
    training without it."""
    def angle_gaps(weight: float) -> float:
        torch.manual_seed(4)
        config = CampaignConfig(arch="factorised-conv2d", data=str(toy_file), batch_size=16, flow_epochs=2,
                                holdout=32, seed=4, shape=SMALL_SHAPE, lr_generator=1e-3, lr_critic=1e-3,
                                angle_weight=0.0, axis_weight=0.0, angle_bias_weight=weight)
        state = run_campaign(config, tmp_path / f"run-{weight}", minutes=30.0, steps=100, monitor_every=100,
                             log=lambda _: None)
        return sum(abs(state["monitor"][f"angle_difference_deg_{side}"]) for side in ("below_80deg", "above_100deg"))

    with_constraint, without = angle_gaps(30.0), angle_gaps(0.0)
    assert with_constraint < 0.8 * without, (with_constraint, without)


def test_the_axis_angle_is_the_validation_measured_angle_and_has_a_gradient() -> None:
    """The generator loss's axis angle equals the angle validate measures (a line through the layers' y barycentres
    against their depth, weighted by layer energy), here on sparse random showers, one with five layers only."""
    from calogen.validation.features import clic_layer_depth_mm

    rng = np.random.default_rng(7)
    showers = rng.exponential(1e-3, (4, 51, 51, 25)) * (rng.random((4, 51, 51, 25)) < 0.01)
    showers[0, :, :, 5:] = 0.0
    cells = torch.from_numpy(showers).requires_grad_(True)
    angle = axis_angle(cells, torch.from_numpy(clic_layer_depth_mm(25)))
    np.testing.assert_allclose(angle.detach().numpy(), measured_angle(showers), rtol=1e-7)
    angle.sum().backward()
    assert cells.grad is not None and torch.isfinite(cells.grad).all() and cells.grad.abs().sum() > 0


def test_axis_residuals_see_the_one_layer_that_strays_from_a_straight_axis() -> None:
    """One cell per layer on a straight tilted line: no residuals; the same with layer 3 moved 2 cells in x: its x
    residual is the largest (the fitted line moves a little towards it), y unchanged; an empty layer gives 0."""
    from calogen.validation.features import clic_layer_depth_mm

    depth = torch.from_numpy(clic_layer_depth_mm(25))
    straight = torch.zeros(1, 51, 51, 25, dtype=torch.float64)
    for layer in range(24):  # layer 24 empty
        straight[0, 25, 10 + round(depth[layer].item() / 5.1), layer] = 1.0
    residuals = axis_residuals(straight, depth)
    y_line = residuals[0, :, 1]
    strayed = straight.clone()
    strayed[0, :, :, 3] = torch.roll(straight[0, :, :, 3], 2, dims=0)
    moved = axis_residuals(strayed, depth)[0]
    assert int(moved[:, 0].abs().argmax()) == 3 and 1.5 < float(moved[3, 0]) < 2.0
    torch.testing.assert_close(moved[:, 1], y_line)
    assert float(residuals[0, 24].abs().sum()) == 0.0 and float(residuals[0, :, 0].abs().max()) < 1e-9


def test_with_no_adversarial_weight_the_generator_does_not_follow_the_critic(toy_file: Path, tmp_path: Path) -> None:
    """At adversarial weight 0 the shape generator learns from the physics constraints alone: critics trained at
    other learning rates leave its weights the same to the bit; at weight 1 they do not."""
    def shape_weights(adversarial: float, lr_critic: float) -> dict[str, torch.Tensor]:
        torch.manual_seed(4)
        config = CampaignConfig(arch="factorised-conv2d", data=str(toy_file), batch_size=16, flow_epochs=1,
                                holdout=32, seed=4, shape=SMALL_SHAPE, lr_generator=1e-3, lr_critic=lr_critic,
                                adversarial_weight=adversarial)
        run = tmp_path / f"run-{adversarial}-{lr_critic}"
        run_campaign(config, run, minutes=30.0, steps=6, log=lambda _: None)
        saved = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
        return {k: v for k, v in saved["model"].items() if k.startswith("shape.")}

    alone, other_critic = shape_weights(0.0, 1e-3), shape_weights(0.0, 1e-2)
    assert all(torch.equal(alone[k], other_critic[k]) for k in alone)
    followed, other_followed = shape_weights(1.0, 1e-3), shape_weights(1.0, 1e-2)
    assert not all(torch.equal(followed[k], other_followed[k]) for k in followed)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_a_campaign_on_cuda_is_refused_without_a_cuda_device(toy_file: Path, tmp_path: Path) -> None:
    config = CampaignConfig(arch="factorised-conv2d", data=str(toy_file), batch_size=8, flow_epochs=1, holdout=32,
                            shape=SMALL_SHAPE)
    with pytest.raises(ValueError, match="no CUDA device"):
        run_campaign(config, tmp_path / "run", minutes=1.0, steps=1, log=lambda _: None, device="cuda")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_campaign_trains_on_cuda_and_its_model_loads_on_the_cpu(toy_file: Path, tmp_path: Path) -> None:
    """A session on the GPU: the nets, the flow's fit and the training showers there; the checkpoint resumes on
    the CPU and the card records both devices."""
    torch.manual_seed(4)
    config = CampaignConfig(arch="factorised-conv2d", data=str(toy_file), batch_size=16, flow_epochs=2,
                            holdout=32, seed=4, shape=SMALL_SHAPE, lr_generator=1e-3, lr_critic=1e-3,
                            instance_noise=0.0, axis_weight=0.0)  # as the CPU campaign's test
    run = tmp_path / "run"
    first = run_campaign(config, run, minutes=30.0, steps=15, monitor_every=15, log=lambda _: None, device="cuda")
    before = abs(first["monitor"]["hits_rel_error"])
    state = run_campaign(config, run, minutes=30.0, steps=120, monitor_every=40, log=lambda _: None, device="cuda")
    assert abs(state["monitor"]["hits_rel_error"]) < before
    run_campaign(config, run, minutes=30.0, steps=122, log=lambda _: None)  # resumed on the CPU
    card = json.loads((export_model(run, tmp_path / "models" / "m") / "card.json").read_text())
    assert card["training"]["device"].startswith("cuda (") and card["training"]["device"].endswith("), cpu")
    sample = load_generator(tmp_path / "models" / "m").generate(100.0, math.pi / 2, n=3, seed=7)
    assert sample.showers.shape == (3, 51, 51, 25) and np.isfinite(sample.showers).all()


def test_sigterm_ends_a_campaign_session_with_its_checkpoint(toy_file: Path, tmp_path: Path) -> None:
    """A campaign asked to stop (SIGTERM, as a shell's kill or a job runner sends) finishes the step it is in,
    writes its checkpoint and returns; the next session resumes from there."""
    import signal

    config = CampaignConfig(arch="factorised-conv2d", data=str(toy_file), batch_size=8, flow_epochs=1, holdout=32,
                            seed=5, shape=SMALL_SHAPE)
    run = tmp_path / "run"

    def stop_at_first_monitor(line: str) -> None:
        if line.startswith("step="):
            signal.raise_signal(signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    state = run_campaign(config, run, minutes=30.0, steps=10_000, monitor_every=3, log=stop_at_first_monitor)
    assert state["step"] == 3  # the step of the signal, not the 10,000 asked for
    assert signal.getsignal(signal.SIGTERM) == before  # the process's own handling is back
    saved = json.loads((run / "progress.json").read_text())
    assert saved["step"] == 3 and saved["sessions"][-1]["end_step"] == 3
    resumed = run_campaign(config, run, minutes=30.0, steps=5, log=lambda _: None)
    assert resumed["step"] == 5 and len(resumed["sessions"]) == 2


def test_a_campaign_goes_on_from_its_exported_model_folder(toy_file: Path, tmp_path: Path) -> None:
    """On a machine whose runs/ is new, the committed model folder starts the run again: the same generator and
    critic, the step count and sessions go on, the flow is not fitted again; a folder without a critic gets a new
    one trained alone first; a folder of other settings, or a run that exists, is refused."""
    from safetensors.torch import load_file

    from calogen.gan.factorised.export import CRITIC_FILE, checkpoint_from_model

    config = CampaignConfig(arch="factorised-conv2d", data=str(toy_file), batch_size=8, flow_epochs=1, holdout=32,
                            seed=7, shape=SMALL_SHAPE)
    first = run_campaign(config, tmp_path / "runs" / "a", minutes=30.0, steps=3, log=lambda _: None)
    folder = export_model(tmp_path / "runs" / "a", tmp_path / "models" / "m")
    critic = load_file(str(folder / CRITIC_FILE))
    assert json.loads((folder / "card.json").read_text())["training"]["critic"] == CRITIC_FILE

    run = tmp_path / "fresh" / "b"
    checkpoint_from_model(folder, run, config)
    saved = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert all(torch.equal(saved["critic"][k], v) for k, v in critic.items())
    lines: list[str] = []
    state = run_campaign(config, run, minutes=30.0, steps=5, log=lines.append)
    assert state["step"] == 5 and state["showers_seen"] == first["showers_seen"] + 2 * 8
    assert len(state["sessions"]) == 2 and state["cpu_seconds"] >= 3600.0 * round(first["cpu_seconds"] / 3600, 3)
    assert not any("energy flow epoch" in line for line in lines)  # the folder's flow goes on
    assert not any("training a new one" in line for line in lines)
    with pytest.raises(ValueError, match="exists already"):
        checkpoint_from_model(folder, run, config)
    assert torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)["state"]["step"] == 5

    (folder / CRITIC_FILE).unlink()  # a folder exported before critics were kept
    checkpoint_from_model(folder, tmp_path / "fresh" / "c", config)
    lines.clear()
    state = run_campaign(config, tmp_path / "fresh" / "c", minutes=30.0, steps=4, critic_warmup=3,
                         log=lines.append)
    assert any("training a new one alone for 3 steps" in line for line in lines) and state["step"] == 4
    assert state["sessions"][-1]["critic_warmup_steps"] == 3

    sheared = replace(config, shape={**SMALL_SHAPE, "axis_shear": True})  # the shear may be switched on
    checkpoint_from_model(folder, tmp_path / "fresh" / "e", sheared)
    state = run_campaign(sheared, tmp_path / "fresh" / "e", minutes=30.0, steps=4, critic_warmup=1,
                         log=lambda _: None)
    assert state["axis_shear_from_step"] == 3 and state["config"]["shape"]["axis_shear"] is True

    placed = replace(config, shape={**SMALL_SHAPE, "entry_offset": True,  # the entry offset too, 2 latent values more
                                    "latent_dim": int(SMALL_SHAPE["latent_dim"]) + OFFSET_DIM})
    checkpoint_from_model(folder, tmp_path / "fresh" / "f", placed)
    state = run_campaign(placed, tmp_path / "fresh" / "f", minutes=30.0, steps=4, critic_warmup=1,
                         log=lambda _: None)
    assert state["entry_offset_from_step"] == 3 and state["config"]["shape"]["entry_offset"] is True
    with pytest.raises(ValueError, match="shape settings"):  # the offset without its latent values is refused
        checkpoint_from_model(folder, tmp_path / "fresh" / "g", replace(config, shape={**SMALL_SHAPE,
                                                                                      "entry_offset": True}))

    bounded = replace(config, shape={**SMALL_SHAPE, "speckle_cap": 2.0})  # and a bound on the speckle field
    checkpoint_from_model(folder, tmp_path / "fresh" / "h", bounded)
    state = run_campaign(bounded, tmp_path / "fresh" / "h", minutes=30.0, steps=4, critic_warmup=1,
                         log=lambda _: None)
    assert state["speckle_cap_from_step"] == 3 and state["config"]["shape"]["speckle_cap"] == 2.0

    reordered = replace(config, shape={**SMALL_SHAPE, "axis_shear": True, "speckle_after_shear": True})
    checkpoint_from_model(folder, tmp_path / "fresh" / "i", reordered)  # the field after the shear, with the shear
    state = run_campaign(reordered, tmp_path / "fresh" / "i", minutes=30.0, steps=4, critic_warmup=1,
                         log=lambda _: None)
    assert state["speckle_after_shear_from_step"] == 3 and state["axis_shear_from_step"] == 3

    splined = replace(config, shape={**SMALL_SHAPE, "axis_shear": True, "speckle_after_shear": True,
                                     "spline_placement": True})
    checkpoint_from_model(folder, tmp_path / "fresh" / "j", splined)  # the B-spline placement with what it needs
    state = run_campaign(splined, tmp_path / "fresh" / "j", minutes=30.0, steps=4, critic_warmup=1,
                         log=lambda _: None)
    assert state["spline_placement_from_step"] == 3 and state["config"]["shape"]["spline_placement"] is True

    other = replace(config, shape={**SMALL_SHAPE, "speckle_dim": 0})
    with pytest.raises(ValueError, match="shape settings"):
        checkpoint_from_model(folder, tmp_path / "fresh" / "d", other)
    with pytest.raises(ValueError, match="not factorised-conv3d"):
        checkpoint_from_model(folder, tmp_path / "fresh" / "d", replace(config, arch="factorised-conv3d"))
    assert not (tmp_path / "fresh" / "d").exists()


def test_data_of_other_monte_carlo_physics_refits_the_energy_flow(toy_file: Path, tmp_path: Path) -> None:
    """The energy flow carries the sampling fraction, so a session on data of other Monte Carlo physics fits it
    anew; the shape generator goes on from its checkpoint."""
    config = CampaignConfig(arch="factorised-conv2d", data=str(toy_file), batch_size=8, flow_epochs=1, holdout=32,
                            seed=6, shape=SMALL_SHAPE)
    run = tmp_path / "run"
    lines: list[str] = []
    first = run_campaign(config, run, minutes=30.0, steps=2, log=lines.append)
    assert first["flow_data_physics"] is None and sum("energy flow epoch" in line for line in lines) == 1
    again = run_campaign(config, run, minutes=30.0, steps=3, log=lines.append)  # same data: the flow stays
    assert sum("energy flow epoch" in line for line in lines) == 1 and again["step"] == 3
    lines.clear()
    refit = run_campaign(config, run, minutes=30.0, steps=4, refit_flow=True, log=lines.append)  # asked for
    assert sum("energy flow epoch" in line for line in lines) == 1 and refit["step"] == 4

    newer = tmp_path / "newer.h5"
    toy = _toy_showers(160, seed=5)
    toy.attrs["mc_physics"] = "2099.01.01"
    write_showers(newer, toy)
    assert data_physics(newer) == "2099.01.01" and data_physics(toy_file) is None
    lines.clear()
    state = run_campaign(replace(config, data=str(newer)), run, minutes=30.0, steps=5, log=lines.append)
    assert any("fitting the energy flow again" in line for line in lines)
    assert sum("energy flow epoch" in line for line in lines) == 1
    assert state["flow_data_physics"] == "2099.01.01" and state["step"] == 5  # the shapes resumed at step 4
    assert state["sessions"][-1]["data_physics"] == "2099.01.01"


def test_batch_means_are_compared_within_angle_groups() -> None:
    """A generator whose cores are too narrow at 62 deg and as much too wide at 90 deg matches the Monte Carlo's
    batch mean; within the angle groups the gap shows."""
    theta = torch.tensor([math.radians(a) for a in (62.0, 65.0, 90.0, 92.0, 118.0)])
    groups = angle_groups(theta)
    assert [m.tolist() for m in groups] == [[True, True, False, False, False], [False, False, True, True, False],
                                            [False, False, False, False, True]]
    real = torch.tensor([[0.25], [0.25], [0.65], [0.65], [0.25]])
    fake = real + torch.tensor([[0.1], [0.1], [-0.1], [-0.1], [0.0]])
    assert float((fake.mean() - real.mean()).abs()) < 1e-6  # the whole batch: no gap
    assert float(grouped_gap(fake, real, groups)) == pytest.approx(0.2 / 3)
    assert len(angle_groups(torch.full((4,), math.pi / 2))) == 1  # empty groups are left out
    counts = torch.tensor([[9.0], [9.0]])
    assert float(grouped_gap(counts, counts * 0.0, [torch.tensor([True, True])], log1p=True)) == pytest.approx(
        math.log(10.0))


def test_energy_groups_split_the_angle_groups() -> None:
    """Widths too wide at 100 GeV and as much too narrow at 5 GeV, all at 90 deg: the angle group's mean hides it,
    the energy groups show it; the constraint needs the energies, and the campaign refuses edges out of order."""
    theta = torch.full((4,), math.pi / 2)
    energy = torch.tensor([5.0, 6.0, 100.0, 120.0])
    groups = condition_groups(theta, energy, energy_edges_gev=(12.6, 79.4))
    assert [m.tolist() for m in groups] == [[True, True, False, False], [False, False, True, True]]  # middle empty
    real = torch.tensor([[1.2], [1.2], [1.6], [1.6]])
    fake = real + torch.tensor([[-0.2], [-0.2], [0.2], [0.2]])
    assert float(grouped_gap(fake, real, condition_groups(theta))) == pytest.approx(0.0, abs=1e-6)
    assert float(grouped_gap(fake, real, groups)) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="need the showers' energies"):
        condition_groups(theta, energy_edges_gev=(10.0,))
    with pytest.raises(ValueError, match="increasing positive energies"):
        CampaignConfig(arch="factorised-conv2d", data="x", energy_group_edges_gev=(80.0, 12.0))


def test_layer_widths_of_known_showers() -> None:
    showers = torch.zeros(1, 51, 51, 25)
    showers[0, 25, 25, 0] = 1.0  # one cell: no spread
    showers[0, 24, 25, 1] = showers[0, 26, 25, 1] = 0.5  # two cells 2 apart: 1 cell from the barycentre
    widths = layer_widths(showers)
    assert float(widths[0, 0]) == pytest.approx(1e-3) and float(widths[0, 1]) == pytest.approx(1.0)
    per_axis = layer_widths(showers, per_axis=True)  # (B, Z, 2): the pair lies along x
    assert per_axis.shape == (1, 25, 2)
    assert float(per_axis[0, 1, 0]) == pytest.approx(1.0) and float(per_axis[0, 1, 1]) == pytest.approx(1e-3)


def test_the_per_axis_layer_widths_are_the_validation_features() -> None:
    rng = np.random.default_rng(5)
    cells = rng.exponential(1e-3, size=(3, 51, 51, 25)) * (rng.random((3, 51, 51, 25)) < 0.02)
    cells[:, 25, 25, :] += 0.01  # every layer has energy
    hlf, names = high_level_features(cells.astype(np.float32), np.full(3, 10.0))
    widths = layer_widths(torch.from_numpy(cells), per_axis=True).numpy()
    for k, axis in enumerate("xy"):
        columns = [names.index(f"{axis}_width_layer{z}") for z in range(25)]
        np.testing.assert_allclose(widths[:, :, k], hlf[:, columns], rtol=1e-5)
    radial = layer_widths(torch.from_numpy(cells)).numpy()
    np.testing.assert_allclose(radial, np.hypot(widths[..., 0], widths[..., 1]), rtol=1e-6)


def test_the_reference_sample_is_never_trained_on(tmp_path: Path) -> None:
    path = tmp_path / "reference.h5"
    write_showers(path, _toy_showers(4, seed=1))
    with pytest.raises(ValueError, match="never trained on"):
        load_training_data(path)


@pytest.mark.parametrize(("flags", "message"), [
    (["--speckle-dim", "70"], "speckle_dim=70 must be at least 0 and below latent_dim=64"),
    (["--channels", "0", "8", "4"], "every count must be at least 1"),
    (["--lr-critic", "0"], "learning rates must be positive"),
    (["--hit-width", "0"], "hit_width=0.0 must be positive"),
    (["--spread-weight", "-1"], "the adversarial and constraint weights must not be negative"),
    (["--adversarial-weight", "-1"], "the adversarial and constraint weights must not be negative"),
    (["--angle-bias-weight", "-1"], "the adversarial and constraint weights must not be negative"),
    (["--axis-spread-weight", "-1"], "the adversarial and constraint weights must not be negative"),
    (["--axis-weight", "-1"], "the adversarial and constraint weights must not be negative"),
    (["--angle-weight", "-0.5"], "the adversarial and constraint weights must not be negative"),
    (["--feature-critic-gain", "-2"], "feature_critic_gain=-2.0 must not be negative (0: raw features)"),
    (["--ema-decay", "1"], "ema_decay=1.0: give 0 (no average) or a decay per step below 1"),
    (["--speckle-cap", "0"], "--speckle-cap 0: give a positive bound"),
    (["--speckle-after-shear"], "--speckle-after-shear orders the speckle field and the axis shear: give --axis-shear"),
    (["--axis-shear", "--spline-placement"], ("--spline-placement moves the mean logits and the spread: give "
                                              "--speckle-after-shear too")),
    (["--angle-groups", "100", "80"], "angle_group_edges_deg=[100.0, 80.0]: give increasing angles"),
    (["--from-model", "nowhere"], "cannot start a run from nowhere: model 'nowhere' not found"),
    (["--export-best"], "--export-best says which weights --export writes: give --export MODEL_DIR too"),
    (["--from-model", str(Path(__file__).parents[1] / "models" / "conv2d"), "--speckle-dim", "0"],
     ("was trained with shape settings {'speckle_dim': 32, 'threshold_gev': 5e-05, 'axis_shear': True, "
      "'entry_offset': True, 'latent_dim': 66, 'speckle_cap': 2.0, 'speckle_after_shear': True}, not")),
])
def test_campaign_cli_refuses_bad_settings_before_training(flags: list[str], message: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from calogen.__main__ import main

    monkeypatch.chdir(tmp_path)
    argv = ["campaign", "--arch", "factorised-conv2d", "--data", str(tmp_path), "--run", "r", "--minutes", "1"]
    assert main(argv + flags) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs" / "r").exists()  # nothing was started or written


def test_the_spread_gap_compares_shower_to_shower_spreads_within_groups() -> None:
    """Features whose deviations from their group's mean are twice the Monte Carlo's give ln 2, whatever the groups'
    means (which differ between the groups and from fake to real); a group of one shower has no spread."""
    from calogen.gan.factorised.shower_figures import spread_gap

    generator = torch.Generator().manual_seed(2)
    real = torch.randn(60, 3, generator=generator)
    groups = [torch.arange(60) < 30, torch.arange(60) >= 30]
    shifted = real + torch.where(groups[0], 5.0, -2.0)[:, None]  # other group means
    fake = real.clone()
    for mask in groups:
        fake[mask] = shifted[mask].mean(0) + 2.0 * (real[mask] - real[mask].mean(0))
    assert float(spread_gap(fake, real, groups)) == pytest.approx(math.log(2.0), rel=1e-5)
    assert float(spread_gap(shifted, real, groups)) == pytest.approx(0.0, abs=1e-5)
    assert float(spread_gap(fake, real, [torch.arange(60) == 0])) == 0.0


def test_core_fraction_matches_the_validation_feature() -> None:
    rng = np.random.default_rng(3)
    showers = rng.exponential(1.0, (3, 51, 51, 25)).astype(np.float32) * (rng.random((3, 51, 51, 25)) < 0.02)
    showers[:, 20:23, 30:32, :] += 5.0  # a core off the window centre
    from calogen.validation.features import core_containment

    np.testing.assert_allclose(core_fraction(torch.from_numpy(showers)).numpy(), core_containment(showers, 5.1),
                               rtol=1e-5)


def test_axis_distance_sees_a_shower_that_does_not_tilt() -> None:
    tilted = torch.zeros(1, 51, 51, 25)
    straight = torch.zeros(1, 51, 51, 25)
    for layer in range(25):
        tilted[0, 25, 13 + layer, layer] = 1.0  # one cell per layer, one cell further in y per layer
        straight[0, 25, 25, layer] = 1.0
    assert float(axis_distance(tilted, tilted)[0]) == 0.0
    # |13 + l - 25| averaged over the 25 layers with equal weights
    assert float(axis_distance(straight, tilted)[0]) == pytest.approx(np.mean(np.abs(np.arange(25) - 12)))


def test_the_flow_base_is_truncated_and_keeps_its_values_within() -> None:
    """Values beyond +-3.5 are drawn again until none is; values within stay; a seed gives the same draw; the
    redrawn values are standard normal within the bound (their spread is the truncated normal's, 0.9977)."""
    base = torch.tensor([[0.3, -3.6, 5.0], [3.4, -0.1, 2.0]])
    out = redraw_beyond(base, torch.Generator().manual_seed(4))
    assert float(out.abs().max()) <= 3.5
    assert torch.equal(out[base.abs() <= 3.5], base[base.abs() <= 3.5])
    assert torch.equal(out, redraw_beyond(base, torch.Generator().manual_seed(4)))
    many = redraw_beyond(torch.full((200_000,), 9.0), torch.Generator().manual_seed(5))
    assert float(many.abs().max()) <= 3.5 and float(many.std()) == pytest.approx(0.9977, abs=0.005)
    with pytest.raises(ValueError, match="must be positive"):
        redraw_beyond(base, None, bound=0.0)
    model = build_factorised("factorised-conv2d")
    noise = torch.full((2, model.latent_dim), 4.0)
    kept = model.truncate_noise(noise, torch.Generator().manual_seed(1))
    assert float(kept[:, :25].abs().max()) <= 3.5 and torch.equal(kept[:, 25:], noise[:, 25:])  # shapes' latent kept


def test_the_unrolled_offset_stencil_equals_the_convolution() -> None:
    """What an ONNX export traces (nine shifted copies) gives the values of the per-shower convolution, in both
    layouts."""
    from calogen.gan.factorised.placement import stencil_sum

    torch.manual_seed(3)
    maps, offset = torch.rand(3, 51, 51, 25), torch.rand(3, 2) - 0.5
    stencil = torch.stack([offset.clamp(min=0.0), 1.0 - offset.abs(), (-offset).clamp(min=0.0)], 2)
    kernel = stencil[:, 0, :, None] * stencil[:, 1, None, :]
    torch.testing.assert_close(stencil_sum(maps, kernel), offset_within_cell(maps, offset))
    first = maps.permute(0, 3, 1, 2).contiguous()
    torch.testing.assert_close(stencil_sum(first, kernel, layers_first=True),
                               offset_within_cell(first, offset, layers_first=True))


def test_the_bf16_shape_network_keeps_the_layer_energies_and_moves_cells_little() -> None:
    """bfloat16 in the shape network only: every layer keeps the flow's float32 energy, the cells move by about a
    per cent of the energy, and switched off the generator is float32 again, bit for bit."""
    torch.manual_seed(1)
    for arch in ("factorised-conv2d", "factorised-conv3d"):
        model = build_factorised(arch, {"shape": SMALL_SHAPE | {"axis_shear": True}}).eval()
        energy, theta = torch.tensor([10.0, 100.0, 400.0]), torch.tensor([1.1, math.pi / 2, 2.0])
        noise = torch.randn(3, model.latent_dim)
        with torch.inference_mode():
            exact = model(energy, theta, noise)
            bf16 = model.use_bf16()(energy, theta, noise)
            again = model.use_bf16(False)(energy, theta, noise)
        assert bf16.dtype == torch.float32 and torch.equal(again, exact)
        torch.testing.assert_close(bf16.sum(dim=(1, 2)), exact.sum(dim=(1, 2)), rtol=1e-5, atol=1e-9)
        moved = float((bf16 - exact).abs().sum() / exact.sum())
        assert 0.0 < moved < 0.05, (arch, moved)


def test_the_axis_shear_moves_layers_first_logits_as_it_moves_cells_first_ones() -> None:
    """The Conv2D generator shears its logits where y is the contiguous axis (B, Z, X, Y): the same values, to the
    bit, as the shear of the (B, X, Y, Z) view."""
    from calogen.gan.factorised.placement import AxisShear

    torch.manual_seed(3)
    shear = AxisShear((51, 51, 25))
    logits = torch.randn(4, 25, 51, 51)
    shift = shear.shift_cells(torch.tensor([1.1, 1.4, math.pi / 2, 2.0]), torch.rand(4, 25))
    first = shear(logits, shift, layers_first=True)
    assert torch.equal(first.permute(0, 2, 3, 1), shear(logits.permute(0, 2, 3, 1), shift))
    assert not torch.equal(first, logits)  # at 1.1 rad the layers move by cells


def test_the_speckle_field_after_the_shear_keeps_its_strength_at_every_angle() -> None:
    """Sheared with the logits, the speckle field is interpolated between neighbouring cells and weakened except
    where a layer's shift is a whole number of cells (at 90 deg all are): its spread at 62 deg is ~0.8 of that at
    90 deg. Added after the shear (of the mean and the spread) it has unit variance at both."""
    from calogen.gan.factorised.placement import AxisShear, placed_logits

    shear = AxisShear((51, 51, 25))
    generator = torch.Generator().manual_seed(4)
    eps = torch.randn(64, 25, 51, 51, generator=generator)
    mean, spread = torch.zeros_like(eps), torch.ones_like(eps)
    layers = torch.ones(64, 25)

    def spread_at(theta_deg: float, after: bool) -> float:
        conditions = torch.zeros(64, 27)
        conditions[:, 1] = (math.radians(theta_deg) - math.pi / 2) / 0.5
        logits = placed_logits(shear, mean, spread, eps, None, conditions, layers, speckle_after_shear=after,
                               layers_first=True)
        return float(logits[:, :, :, 15:36].std())  # away from the window's edges, which the shift repeats

    assert spread_at(90.0, False) == pytest.approx(1.0, abs=0.01)
    assert spread_at(62.0, False) < 0.85  # interpolated: weaker off 90 deg
    assert spread_at(62.0, True) == pytest.approx(1.0, abs=0.01)
    assert spread_at(90.0, True) == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ValueError, match="needs axis_shear"):
        build_shape_generator(ShapeConfig(speckle_dim=8, speckle_after_shear=True))


def test_the_placement_after_the_shear_smooths_the_mean_logits_alike_at_every_angle() -> None:
    """Each interpolation smooths the mean logits. With the entry offset and the field after the shear, a layer is
    moved along y once, by its shear plus the offset's y part, whose fraction of a cell is uniform at every angle:
    a white map keeps the same variance at 90 and 62 deg (at 90 deg the placement is the offset's own stencil).
    The offset and the shear one after the other smooth twice off 90 deg."""
    from calogen.gan.factorised.placement import AxisShear, placed_logits

    shear = AxisShear((51, 51, 25))
    generator = torch.Generator().manual_seed(5)
    mean = torch.randn(256, 25, 51, 51, generator=generator)
    offset = torch.rand(256, 2, generator=generator) - 0.5
    layers = torch.ones(256, 25)

    def placed(theta_deg: float, after: bool) -> torch.Tensor:
        conditions = torch.zeros(256, 27)
        conditions[:, 1] = (math.radians(theta_deg) - math.pi / 2) / 0.5
        return placed_logits(shear, mean, None, None, offset, conditions, layers, speckle_after_shear=after,
                             layers_first=True)

    inner = (slice(None), slice(None), slice(15, 36), slice(15, 36))  # away from the edges the shift repeats
    torch.testing.assert_close(placed(90.0, True)[inner], offset_within_cell(mean, offset, layers_first=True)[inner],
                               rtol=0.0, atol=1e-4)  # cot(90 deg) is 4e-8 in float32
    at_90, at_62 = float(placed(90.0, True)[inner].var()), float(placed(62.0, True)[inner].var())
    assert at_62 == pytest.approx(at_90, rel=0.02)
    assert float(placed(62.0, False)[inner].var()) < 0.85 * float(placed(90.0, False)[inner].var())


def test_the_upsampling_convolution_on_the_coarse_grid_equals_the_upsampled_one() -> None:
    """Nearest x2 upsampling then a 3 x 3 convolution (padding 1) is, phase by phase, a 2 x 2 convolution of the
    coarse grid whose taps sum the 3 x 3 ones: the same values, the borders' zero padding included."""
    from calogen.gan.factorised.shape_nets import _upsampled_conv

    torch.manual_seed(5)
    conv = torch.nn.Conv2d(6, 5, 3, padding=1)
    h = torch.randn(3, 6, 13, 11)
    with torch.no_grad():
        upsampled = conv(torch.nn.functional.interpolate(h, scale_factor=2.0, mode="nearest"))
        torch.testing.assert_close(_upsampled_conv(h, conv), upsampled, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [(26, 22), (25, 21)])
def test_the_transposed_convolution_phase_by_phase_equals_the_cropped_one(size: tuple[int, int]) -> None:
    """A 4 x 4 transposed convolution of stride 2 computed as four 2 x 2 convolutions, one per output phase, written
    into the cropped grid: the same values as the transposed convolution cropped, for even and odd crops."""
    from calogen.gan.factorised.shape_nets import _phased_deconv

    torch.manual_seed(6)
    up = torch.nn.ConvTranspose2d(6, 5, 4, stride=2, padding=1)
    h = torch.randn(3, 6, 13, 11)
    with torch.no_grad():
        expected = up(h)[:, :, :size[0], :size[1]]
        got = _phased_deconv(h, up, size)
        assert got.is_contiguous() and got.shape == expected.shape
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_the_quadratic_b_spline_moves_by_the_fraction_and_smooths_alike_for_every_fraction() -> None:
    """The B-spline weights sum to one, move a map by exactly the fraction, spread it by 1/4 cell^2 about the new
    position for every fraction, and equal linear interpolation at half a cell. A white map keeps 0.50-0.59 of its
    variance along each axis for every offset (linear interpolation: all of it at the cell's centre, half at its
    edge), and the
    shear's B-spline (any shift, whole cells plus a fraction) agrees with the offset's where both apply."""
    from calogen.gan.factorised.placement import AxisShear, offset_within_cell, shift_weights

    fractions = torch.linspace(-0.5, 0.5, 21, dtype=torch.float64)
    weights = shift_weights(fractions, spline=True)  # over the neighbours i - 1, i, i + 1
    position = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(weights.sum(1), torch.ones(21, dtype=torch.float64))
    # cell i takes from i - 1 with the first weight: the map moves towards larger i by the fraction
    moved_by = -(weights * position).sum(1)
    torch.testing.assert_close(moved_by, fractions)
    spread = (weights * (position[None, :] + fractions[:, None]) ** 2).sum(1)
    torch.testing.assert_close(spread, torch.full((21,), 0.25, dtype=torch.float64))
    half = torch.tensor([0.5, -0.5], dtype=torch.float64)
    torch.testing.assert_close(shift_weights(half, spline=True), shift_weights(half))

    generator = torch.Generator().manual_seed(7)
    white = torch.randn(64, 25, 51, 51, generator=generator)
    inner = (slice(None), slice(None), slice(5, 46), slice(5, 46))

    def kept(offset: float, spline: bool) -> float:
        moved = offset_within_cell(white, torch.full((64, 2), offset), layers_first=True, spline=spline)
        return float(moved[inner].var() / white[inner].var())

    # moved in x and y: the product of the two axes' 1/2 ... 38/64 (B-spline) or 1/2 ... 1 (linear)
    spline_kept = [kept(f, True) for f in (0.0, 0.2, 0.45)]
    assert spline_kept[0] == pytest.approx((38 / 64) ** 2, rel=0.03)
    assert min(spline_kept) > 0.25 * 0.97
    assert kept(0.0, False) == pytest.approx(1.0) and kept(0.45, False) == pytest.approx(0.505 ** 2, rel=0.03)

    def along_y(maps: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:  # the offset's x move on transposed maps
        offset = torch.stack([shift, torch.zeros_like(shift)], 1)
        return offset_within_cell(maps.transpose(2, 3), offset, layers_first=True, spline=True,
                                  x_only=True).transpose(2, 3)

    shear = AxisShear((51, 51, 25))
    shift = torch.rand(64, generator=generator) - 0.5
    torch.testing.assert_close(shear(white, shift[:, None].expand(64, 25), layers_first=True, spline=True)[inner],
                               along_y(white, shift)[inner])
    three = shear(white, torch.full((64, 25), 3.3), layers_first=True, spline=True)
    torch.testing.assert_close(three[:, :, :, 8:46], along_y(white, torch.full((64,), 0.3))[:, :, :, 5:43])
    # x_only leaves y as it is (the B-spline at a zero offset would smooth it)
    x_moved = offset_within_cell(white, torch.tensor([[0.3, 0.4]]).expand(64, 2), layers_first=True, spline=True,
                                 x_only=True)
    torch.testing.assert_close(x_moved, along_y(white.transpose(2, 3), torch.full((64,), 0.3)).transpose(2, 3))
    with pytest.raises(ValueError, match="needs speckle_after_shear"):
        build_shape_generator(ShapeConfig(speckle_dim=8, axis_shear=True, spline_placement=True))


def test_the_weight_average_is_the_exponential_moving_average_and_is_swapped_in_only_within_its_block() -> None:
    from calogen.gan.factorised.averaging import averaged_weights, shape_average

    net = torch.nn.Linear(2, 1)
    average = shape_average(net, decay=0.9)
    for value in (1.0, 2.0, 3.0):  # the first update takes the weights as they are, each next one 10 % of them
        with torch.no_grad():
            net.weight.fill_(value)
        average.update_parameters(net)
    with averaged_weights(net, average):
        torch.testing.assert_close(net.weight, torch.full((1, 2), 0.9 * (0.9 * 1.0 + 0.1 * 2.0) + 0.1 * 3.0))
    assert torch.equal(net.weight, torch.full((1, 2), 3.0))  # its own weights again
    with pytest.raises(RuntimeError, match="inside"), averaged_weights(net, average):
        raise RuntimeError("inside")
    assert torch.equal(net.weight, torch.full((1, 2), 3.0))  # put back when the block fails too
    with averaged_weights(net, None):
        assert torch.equal(net.weight, torch.full((1, 2), 3.0))
    with pytest.raises(ValueError, match="0 < decay < 1"):
        shape_average(net, decay=1.0)


def test_a_campaign_monitors_keeps_and_exports_the_averaged_weights(toy_file: Path, tmp_path: Path) -> None:
    from calogen.gan.factorised.averaging import averaged_state
    from calogen.gan.factorised.monitor import monitor_figures
    from calogen.gan.factorised.shape_nets import cells_from_view

    torch.manual_seed(4)
    config = CampaignConfig(arch="factorised-conv2d", data=str(toy_file), batch_size=16, flow_epochs=2,
                            holdout=32, seed=4, shape=SMALL_SHAPE, lr_generator=1e-3, lr_critic=1e-3,
                            ema_decay=0.9)
    run = tmp_path / "run"
    run_campaign(config, run, minutes=30.0, steps=4, monitor_every=2, log=lambda _: None)
    state = run_campaign(config, run, minutes=30.0, steps=6, monitor_every=3, log=lambda _: None)
    saved = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert int(saved["shape_average"]["n_averaged"]) == 6  # the second session went on with the first's average
    averaged = averaged_state(saved["shape_average"])
    raw = {k.removeprefix("shape."): v for k, v in saved["model"].items() if k.startswith("shape.")}
    assert not torch.equal(averaged["dense.weight"], raw["dense.weight"])

    folder = export_model(run, tmp_path / "models" / "averaged")
    card = json.loads((folder / "card.json").read_text())
    assert card["training"]["weights"]["from"].startswith("the moving average of the shape generator's weights")
    assert "decay 0.9 per step, over the 6 steps" in card["training"]["weights"]["from"]
    generator = load_generator(folder)
    for name, value in averaged.items():  # the folder holds the average, not the last step's weights
        torch.testing.assert_close(generator.module.state_dict()["shape." + name], value, rtol=0, atol=0)
    # the last monitored figures (step 6) were the average's: the exported generator gives them again
    _, holdout = load_training_data(toy_file).split(32)
    figures = monitor_figures(generator.module, holdout, cells_from_view(holdout.critic_view).numpy(), config.seed)
    assert state["monitor"]["step"] == 6
    assert figures["kpd_x1e3"] == pytest.approx(state["monitor"]["kpd_x1e3"], rel=1e-6)
    assert figures["hits_rel_error"] == pytest.approx(state["monitor"]["hits_rel_error"], rel=1e-6)

"""Tests for calogen.gan.export: ONNX Runtime and TorchScript reproduce the PyTorch generator in GeV."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from calogen.__main__ import main
from calogen.gan.export import GevGenerator, export_model
from calogen.gan.generate import load_generator, save_model
from calogen.gan.nets import build_generator
from calogen.showers import TRAINING_RANGE, ConditionRange

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    folder = tmp_path_factory.mktemp("export") / "gan3d"
    card = {"name": "gan3d", "arch": "conv3d", "config": {}, "condition_range": TRAINING_RANGE.to_json()}
    return save_model(folder, build_generator("conv3d"), card)


def _inputs(batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "energy_gev": rng.uniform(2, 500, batch).astype(np.float32),
        "theta_rad": rng.uniform(np.deg2rad(60), np.deg2rad(120), batch).astype(np.float32),
        "noise": rng.standard_normal((batch, 254)).astype(np.float32),
    }


def _torch_gev(model_dir: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    model = load_generator(model_dir)
    with torch.inference_mode():
        inputs = (torch.from_numpy(feeds[k]) for k in ("energy_gev", "theta_rad", "noise"))
        out = GevGenerator(model.module, model.preprocessing)(*inputs)
    return out.numpy()


def test_onnx_equals_torch_with_dynamic_batch(model_dir: Path, tmp_path: Path) -> None:
    path = export_model(model_dir, "onnx", tmp_path / "gan3d.onnx")
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["energy_gev", "theta_rad", "noise"]
    assert [o.name for o in proto.graph.output] == ["showers"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["calogen_arch"] == "conv3d" and meta["latent_dim"] == "254"
    assert ConditionRange.from_json(json.loads(meta["condition_range"])) == TRAINING_RANGE  # GeV and radians
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # a batch size other than the traced one (2)
        feeds = _inputs(batch)
        got = session.run(None, feeds)[0]
        want = _torch_gev(model_dir, feeds)
        assert got.shape == (batch, 51, 51, 25)
        assert want.max() > 1e-3  # non-trivial showers, in GeV
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_onnx_export_of_the_fast_path(model_dir: Path, tmp_path: Path) -> None:
    # a model loaded with its speed-ups (pixel shuffle, channels-last) exports the same function
    from calogen.gan.export import export_onnx

    path = export_onnx(load_generator(model_dir, fast=True), tmp_path / "fast.onnx")
    feeds = _inputs(2)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(got, _torch_gev(model_dir, feeds), rtol=0, atol=1e-4)


def test_torchscript_equals_torch(model_dir: Path, tmp_path: Path) -> None:
    path = export_model(model_dir, "torchscript", tmp_path / "gan3d.pt")
    scripted = torch.jit.load(str(path))
    feeds = _inputs(3)
    with torch.inference_mode():
        got = scripted(*(torch.from_numpy(feeds[k]) for k in ("energy_gev", "theta_rad", "noise"))).numpy()
    np.testing.assert_allclose(got, _torch_gev(model_dir, feeds), rtol=0, atol=1e-5)


def test_cli_export(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.onnx"
    assert main(["export", "--model", str(model_dir), "--format", "onnx", "--out", str(out)]) == 0
    assert out.stat().st_size > 5e6  # 1.365 M float32 weights
    assert main(["export", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: model")


@pytest.mark.parametrize("spline", [False, True])
def test_a_factorised_generator_with_entry_offset_and_cell_map_exports_to_onnx(tmp_path: Path, spline: bool) -> None:
    """The factorised generator's entry offset (a stencil per shower), its shear with the speckle field after it
    (linear or quadratic B-spline) and its cell map (table look-ups) are in the graph: ONNX Runtime gives the
    showers PyTorch gives, a batch size other than the traced one included."""
    from calogen.gan.factorised.cell_map import CellMapConfig, fit_cell_map
    from calogen.gan.factorised.model import build_factorised

    torch.manual_seed(5)
    shape = {"channels": [8, 8, 4], "latent_dim": 14, "speckle_dim": 4, "threshold_gev": 5e-5,
             "entry_offset": True, "axis_shear": True, "speckle_after_shear": True, "spline_placement": spline}
    module = build_factorised("factorised-conv2d", {"shape": shape})
    energy = torch.exp(torch.empty(64).uniform_(np.log(2.0), np.log(500.0)))
    theta = torch.empty(64).uniform_(np.deg2rad(60), np.deg2rad(120))
    with torch.inference_mode():
        made = module(energy, theta, torch.randn(64, module.latent_dim))
        cells = made * torch.exp(torch.randn_like(made))  # a "Monte Carlo" of other cell energies
        cell_map = fit_cell_map([(cells, energy, theta)],
                                lambda e, t: module(e, t, torch.randn(len(e), module.latent_dim)),
                                CellMapConfig(energy_bins=2, min_cells=10))
    module.attach_cell_map(cell_map)
    assert bool(cell_map.active.any())
    card = {"name": "fact", "arch": "factorised-conv2d", "config": module.config_json(),
            "preprocessing": {"kind": "identity"}, "condition_range": TRAINING_RANGE.to_json()}
    folder = save_model(tmp_path / "fact", module, card)
    path = export_model(folder, "onnx", tmp_path / "fact.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        feeds = _inputs(batch)
        feeds["noise"] = feeds["noise"][:, :module.latent_dim].copy()
        got = session.run(None, feeds)[0]
        want = _torch_gev(folder, feeds)
        assert want.max() > 1e-4
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-6)  # float32 rounding through the flow

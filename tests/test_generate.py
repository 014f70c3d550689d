"""Tests for calogen.gan.generate and the generate/models commands: save/load, checks, sampling, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from calogen.__main__ import main
from calogen.gan.generate import ModelLoadError, card_condition_range, list_models, load_generator, save_model
from calogen.gan.nets import build_generator
from calogen.io import read_showers
from calogen.showers import TRAINING_RANGE, ConditionRange, Conditions, OutOfRangeError, Source

torch.set_num_threads(2)

RANGES = {"energy_gev": [2.0, 500.0], "theta_deg": [60.0, 120.0]}  # an older card's form: GeV and degrees


def _save(folder: Path, arch: str = "conv3d", config: dict | None = None, seed: int = 0, **extra) -> Path:
    torch.manual_seed(seed)
    config = config or {}
    gen = build_generator(arch, **config)
    card = {"name": folder.name, "arch": arch, "config": config, "condition_ranges": RANGES, **extra}
    return save_model(folder, gen, card)


@pytest.fixture(scope="module")
def conv3d_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save(tmp_path_factory.mktemp("models") / "gan3d", validation={"mre_sampling_fraction": 0.031})


def test_save_writes_safetensors_and_card(conv3d_dir: Path) -> None:
    assert sorted(p.name for p in conv3d_dir.iterdir()) == ["card.json", "generator.safetensors"]
    card = json.loads((conv3d_dir / "card.json").read_text())
    assert card["arch"] == "conv3d" and card["preprocessing"] == {"kind": "power", "power": 0.85, "scale": 50.0}
    assert "calogen_version" in card


def test_round_trip_gives_identical_showers_for_a_seed(conv3d_dir: Path) -> None:
    torch.manual_seed(0)
    original = build_generator("conv3d").eval()  # same seed as the fixture -> the saved weights
    model = load_generator(conv3d_dir)
    a = model.generate(100.0, math.pi / 2, 2, seed=7)
    b = load_generator(str(conv3d_dir)).generate(100.0, math.pi / 2, 2, seed=7)
    assert a.showers.shape == (2, 51, 51, 25) and a.showers.dtype == np.float32
    np.testing.assert_array_equal(a.showers, b.showers)  # reloaded model, same seed: bit-identical
    # another batch size draws the same noise; only the convolution's summation order may differ
    c = model.generate(100.0, math.pi / 2, 2, seed=7, batch_size=1)
    np.testing.assert_allclose(c.showers, a.showers, rtol=1e-4, atol=1e-7)
    assert a.attrs["source"] == "gan3d" and a.energy_gev.tolist() == [100.0] * 2
    # the same as the in-memory generator fed the same noise, converted to GeV
    noise = torch.randn((2, 254), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        net = original(torch.full((2,), 100.0), torch.full((2,), math.pi / 2), noise)
    np.testing.assert_allclose(a.showers, (net.clamp_min(0) ** (1 / 0.85) / 50.0).numpy(), rtol=1e-5, atol=1e-9)
    fast = load_generator(conv3d_dir, fast=True).generate(100.0, math.pi / 2, 2, seed=7)
    np.testing.assert_allclose(fast.showers, a.showers, rtol=1e-4, atol=1e-7)
    d = model.generate(100.0, math.pi / 2, 2, seed=8)
    assert not np.array_equal(a.showers, d.showers)


def test_out_of_range_condition_names_the_range(conv3d_dir: Path) -> None:
    model = load_generator(conv3d_dir)
    with pytest.raises(OutOfRangeError, match="^angle 135 deg is outside 60-120 deg, the range model gan3d accepts; "
                                              "pass allow_extrapolation=True to go beyond$"):
        model.generate(100.0, math.radians(135.0), 1)
    with pytest.raises(OutOfRangeError, match="energy 100-600 GeV is outside 2-500 GeV"):
        model.generate(np.array([100.0, 600.0]), np.full(2, math.pi / 2))
    with pytest.raises(OutOfRangeError, match="^angle 135 deg is outside 60-120 deg, the range model gan3d accepts$"):
        model.sample(Conditions.broadcast(100.0, math.radians(135.0)))
    out = model.generate(100.0, math.radians(135.0), 1, seed=0, allow_extrapolation=True)
    assert out.showers.shape == (1, 51, 51, 25) and out.attrs["extrapolated"] is True
    with pytest.raises(ValueError, match="theta_rad has 2 values but n=3"):
        model.generate(np.ones(3) * 50, np.ones(2))


def test_a_loaded_model_is_a_source(conv3d_dir: Path) -> None:
    model = load_generator(conv3d_dir)
    assert isinstance(model, Source) and model.name == "gan3d"
    assert model.condition_range == TRAINING_RANGE  # read from the older card's degrees
    calls: list[tuple[int, int]] = []
    model.batch_size = 2
    batch = model.sample(Conditions.broadcast([20.0, 50.0, 100.0], math.pi / 2), seed=3,
                         progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 3), (3, 3)] and batch.energy_gev.tolist() == [20.0, 50.0, 100.0]
    np.testing.assert_allclose(batch.showers, model.generate([20.0, 50.0, 100.0], math.pi / 2, seed=3).showers,
                               rtol=1e-4, atol=1e-7)  # the same noise; batches of 2 or 256 sum in another order


def test_cards_declare_their_range_in_radians_and_older_cards_still_read() -> None:
    declared = ConditionRange((10.0, 200.0), (1.2, 1.9))
    assert card_condition_range({"condition_range": declared.to_json()}) == declared
    older = card_condition_range({"condition_ranges": {"energy_gev": [5, 50], "theta_deg": [80, 100]}})
    assert older.energy_gev == (5.0, 50.0) and older.theta_rad == pytest.approx((math.radians(80), math.radians(100)))
    assert card_condition_range({"condition_ranges": {"energy_gev": [5, 50]}}).theta_rad == TRAINING_RANGE.theta_rad
    assert card_condition_range({}) == TRAINING_RANGE  # a card without a range: calogen's training domain
    with pytest.raises(ValueError, match="not a condition range"):
        card_condition_range({"condition_range": {"energy_gev": [10.0]}})


def test_a_card_with_a_malformed_range_is_refused_on_loading(conv3d_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad-range"
    bad.mkdir()
    (bad / "generator.safetensors").write_bytes((conv3d_dir / "generator.safetensors").read_bytes())
    card = json.loads((conv3d_dir / "card.json").read_text())
    (bad / "card.json").write_text(json.dumps({**card, "condition_range": {"energy_gev": [500.0, 2.0],
                                                                            "theta_rad": [1.0, 2.0]}}))
    with pytest.raises(ModelLoadError, match=r"card.json: not a valid range: energy \(500.0, 2.0\) GeV"):
        load_generator(bad)


def test_wrong_architecture_names_the_tensors(conv3d_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "generator.safetensors").write_bytes((conv3d_dir / "generator.safetensors").read_bytes())
    card = json.loads((conv3d_dir / "card.json").read_text())
    (bad / "card.json").write_text(json.dumps({**card, "arch": "conv2d"}))
    with pytest.raises(ModelLoadError) as err:
        load_generator(bad)
    text = str(err.value)
    assert "'conv2d'" in text and "missing tensors: mix.bias" in text and "unexpected tensors: bn_up.bias" in text


def test_wrong_shape_names_the_tensor(conv3d_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "shape"
    bad.mkdir()
    (bad / "generator.safetensors").write_bytes((conv3d_dir / "generator.safetensors").read_bytes())
    card = json.loads((conv3d_dir / "card.json").read_text())
    (bad / "card.json").write_text(json.dumps({**card, "config": {"latent_dim": 100}}))
    expected = r"mis-shaped tensors: dense.weight \(file \(5184, 256\), architecture \(5184, 102\)\)"
    with pytest.raises(ModelLoadError, match=expected):
        load_generator(bad)
    # saving checks too: a card whose config does not describe the generator is refused before writing
    with pytest.raises(ModelLoadError, match="dense.weight"):
        card = {"name": "x", "arch": "conv3d", "config": {"latent_dim": 10}}
        save_model(tmp_path / "never", build_generator("conv3d"), card)
    assert not (tmp_path / "never").exists()


def test_missing_model_and_pickles_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALOGEN_MODELS", str(tmp_path))
    with pytest.raises(ModelLoadError, match="not found.*no models are installed"):
        load_generator("nope")
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "card.json").write_text(json.dumps({"arch": "conv3d", "config": {}}))
    (folder / "generator.pt").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ModelLoadError, match="pickled checkpoints are never loaded"):
        load_generator("pickled")
    (folder / "card.json").write_text("{broken")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_generator("pickled")


def test_list_models_and_name_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _save(tmp_path / "small", arch="wgan-gp-atlas", config={"shape": [1, 1, 20]}, validation={"chi2": 1.5})
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "card.json").write_text("[]")
    models = list_models(tmp_path)
    assert [m["name"] for m in models] == ["broken", "small"]
    assert "error" in models[0]
    assert models[1]["arch"] == "wgan-gp-atlas" and models[1]["validation"] == {"chi2": 1.5}
    assert ConditionRange.from_json(models[1]["condition_range"]) == TRAINING_RANGE
    monkeypatch.setenv("CALOGEN_MODELS", str(tmp_path))
    model = load_generator("small")
    out = model.generate([10.0, 20.0], [1.5, 1.6], seed=1)
    assert out.showers.shape == (2, 1, 1, 20)
    np.testing.assert_allclose(out.showers.sum(axis=(1, 2, 3)), [10.0, 20.0], rtol=1e-5)  # softmax x energy


def test_cli_generate_and_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALOGEN_MODELS", str(tmp_path / "models"))
    _save(tmp_path / "models" / "tiny", arch="wgan-gp-atlas", config={"shape": [3, 3, 5]}, validation={"mre": 0.05})
    out = tmp_path / "g.h5"
    code = main(["generate", "--model", "tiny", "--energy", "100", "--theta", "90", "-n", "5", "--seed", "1",
                 "--out", str(out), "--device", "cpu"])
    assert code == 0
    sample = read_showers(out)
    assert len(sample) == 5 and sample.attrs["source"] == "tiny" and sample.showers.shape == (5, 3, 3, 5)
    np.testing.assert_allclose(sample.theta_rad, math.pi / 2, rtol=1e-6)
    capsys.readouterr()
    code = main(["generate", "--model", "tiny", "--theta", "135", "-n", "2", "--out", str(tmp_path / "x.h5")])
    err = capsys.readouterr().err
    assert err == ("error: angle 135 deg is outside 60-120 deg, the range model tiny accepts; pass "
                   "--allow-extrapolation to go beyond\n") and code == 2
    assert main(["generate", "--model", "ghost", "-n", "2", "--out", str(tmp_path / "y.h5")]) == 2
    assert "model 'ghost' not found" in capsys.readouterr().err
    assert main(["generate", "--model", "tiny", "-n", "2", "--bf16", "--out", str(tmp_path / "z.h5")]) == 2
    assert "has no bfloat16 path" in capsys.readouterr().err and not (tmp_path / "z.h5").exists()
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert "tiny" in table and "wgan-gp-atlas" in table and "2-500" in table and "mre=0.05" in table
    assert main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["name"] == "tiny" and listed[0]["arch"] == "wgan-gp-atlas"


def test_boxcox_model_needs_its_lambda_and_generates_in_gev(tmp_path: Path) -> None:
    from calogen.gan.preprocess import BoxCox

    gen = build_generator("wgan-gp-lhcb")
    card = {"name": "lhcb", "arch": "wgan-gp-lhcb", "config": {}, "condition_ranges": RANGES}
    with pytest.raises(ValueError, match="Box-Cox units"):
        save_model(tmp_path / "lhcb", gen, card)
    with pytest.raises(ValueError, match="does not match architecture"):
        save_model(tmp_path / "lhcb", gen, {**card, "preprocessing": {"kind": "power"}})
    save_model(tmp_path / "lhcb", gen, {**card, "preprocessing": BoxCox(lmbda=0.2).to_card()})
    out = load_generator(tmp_path / "lhcb").generate(50.0, math.pi / 2, 1, seed=0)
    assert out.showers.shape == (1, 51, 51, 25) and (out.showers >= 0).all() and np.isfinite(out.showers).all()

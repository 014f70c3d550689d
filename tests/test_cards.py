"""Model-card validation: figures measured against a held-out file and written into card.json by code."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from calogen.__main__ import main
from calogen.compare import validate_model
from calogen.gan.cards import write_validation
from calogen.gan.generate import save_model
from calogen.gan.nets import build_generator
from calogen.io import ShowerSet, write_showers
from calogen.validation.comparison import CARD_FIGURES, Comparison

RANGES = {"energy_gev": [2.0, 500.0], "theta_deg": [60.0, 120.0]}


@pytest.fixture()
def model_dir(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "models" / "tiny"
    save_model(folder, build_generator("conv2d"), {"name": "tiny", "arch": "conv2d", "config": {},
                                                     "condition_ranges": RANGES})
    return folder


@pytest.fixture()
def reference_file(tmp_path):
    rng = np.random.default_rng(3)
    energy = np.repeat([50.0, 100.0, 900.0], 12).astype(np.float32)  # 900 GeV lies outside the model's range
    showers = rng.gamma(0.5, 2e-4, size=(energy.size, 51, 51, 25)).astype(np.float32)
    showers[:, 25, 25, 5:15] += energy[:, None] * 0.001
    sample = ShowerSet(showers, energy, np.full(energy.size, np.pi / 2, np.float32), {"source": "mc", "seed": 11})
    return write_showers(tmp_path / "heldout.h5", sample)


def test_validate_model_measures_in_range_bins(model_dir, reference_file):
    validation = validate_model(model_dir, reference_file, classifier=False)
    assert validation["reference"] == {"file": "heldout.h5", "seed": 11, "source": "mc", "held_out": True,
                                       "showers": 24}
    assert {b["energy_bin_gev"][0] for b in validation["bins"]} == {45.0, 95.0}  # 900 GeV lies outside
    assert all(b["theta_bin_deg"][0] <= 90.0 <= b["theta_bin_deg"][1] for b in validation["bins"])
    assert set(CARD_FIGURES) - {"classifier_auc_low", "classifier_auc_high"} <= set(validation)
    comparison = Comparison.from_json(validation)
    sf_errors = [row.sf_relative_error for row in comparison.bins]
    assert comparison.sf_mre == pytest.approx(np.mean(sf_errors), rel=1e-6)
    assert comparison.metrics["sf_relative_error_max_bin"] == pytest.approx(max(sf_errors))
    # an untrained generator is far off the Monte Carlo: its card says so
    assert comparison.sf_mre > 0.05 and "SF error" in comparison.failed
    rows = comparison.bins
    assert all(row.n_reference == row.n_candidate == 12 for row in rows)
    assert all(row.sf_relative_error == pytest.approx(abs(row.sf_candidate - row.sf_reference) / row.sf_reference)
               for row in rows)


def test_validate_model_refuses_a_reference_outside_its_range(model_dir, tmp_path):
    outside = ShowerSet(np.zeros((3, 51, 51, 25), np.float32), np.full(3, 900.0, np.float32),
                        np.full(3, np.pi / 2, np.float32))
    path = write_showers(tmp_path / "far.h5", outside)
    with pytest.raises(ValueError, match="no reference shower lies inside the model's range 2-500 GeV"):
        validate_model(model_dir, path, classifier=False)


def test_command_writes_the_card(model_dir, reference_file, tmp_path):
    out = tmp_path / "v.json"
    assert main(["validate", "--model", str(model_dir), "--reference", str(reference_file), "--no-classifier",
                 "--update-card", "--out", str(out), "--quiet", "--draws", "2"]) == 0
    card = json.loads((model_dir / "card.json").read_text())
    assert card["validation"] == json.loads(out.read_text())
    assert card["validation"]["command"].startswith("python -m calogen")
    assert card["validation"]["draws_per_reference_shower"] == 2
    assert all(b["n_candidate"] == 2 * b["n_reference"] for b in card["validation"]["bins"])
    assert "draws_per_reference_shower" not in Comparison.from_json(card["validation"]).metrics
    assert card["arch"] == "conv2d"  # the rest of the card is kept


def test_update_card_needs_a_model(reference_file, tmp_path, capsys):
    assert main(["validate", "--candidate", str(reference_file), "--reference", str(reference_file),
                 "--update-card"]) == 2
    assert "--update-card needs --model" in capsys.readouterr().err
    assert main(["validate", "--candidate", str(reference_file), "--reference", str(reference_file),
                 "--out", str(tmp_path / "v.json"), "--draws", "3"]) == 2
    assert "--draws needs --model" in capsys.readouterr().err
    assert main(["validate", "--model", "tiny", "--reference", str(reference_file), "--draws", "0"]) == 2
    assert "at least one shower per reference shower" in capsys.readouterr().err
    assert not (tmp_path / "v.json").exists()
    with pytest.raises(FileNotFoundError, match="no model card"):
        write_validation(tmp_path, {})


def test_the_bf16_path_is_validated_apart_and_only_where_a_model_has_one(model_dir, reference_file, tmp_path,
                                                                        capsys):
    from calogen.gan.factorised.model import build_factorised
    from calogen.showers import TRAINING_RANGE

    before = (model_dir / "card.json").read_text()
    assert main(["validate", "--candidate", str(reference_file), "--reference", str(reference_file),
                 "--out", str(tmp_path / "v.json"), "--bf16"]) == 2
    assert "--bf16 needs --model" in capsys.readouterr().err
    assert main(["validate", "--model", str(model_dir), "--reference", str(reference_file), "--bf16",
                 "--update-card", "--out", str(tmp_path / "v.json")]) == 2  # an as-published conv2d has none
    assert "no bfloat16 path" in capsys.readouterr().err
    assert (model_dir / "card.json").read_text() == before and not (tmp_path / "v.json").exists()

    factorised = build_factorised("factorised-conv2d", {"shape": {"channels": [8, 8, 4], "latent_dim": 12,
                                                                  "speckle_dim": 4}})
    folder = save_model(tmp_path / "models" / "f2d", factorised,
                        {"name": "f2d", "arch": "factorised-conv2d", "config": factorised.config_json(),
                         "condition_range": TRAINING_RANGE.to_json(), "preprocessing": {"kind": "identity"},
                         "validation": {"sf_mre": 0.5, "bins": []}})
    assert main(["validate", "--model", str(folder), "--reference", str(reference_file), "--bf16", "--no-classifier",
                 "--update-card", "--quiet"]) == 0
    card = json.loads((folder / "card.json").read_text())
    assert card["validation"] == {"sf_mre": 0.5, "bins": []}  # the float32 figures stay
    assert card["validation_bf16"]["precision"] == "bfloat16 shape network"
    assert len(card["validation_bf16"]["bins"]) == 2  # 50 and 100 GeV; 900 GeV lies outside the range


def test_training_figures_move_to_training_selection(model_dir):
    card_path = model_dir / "card.json"
    card = json.loads(card_path.read_text())
    card["validation"] = {"sf_mre": 0.2, "sf_mre_by_epoch": [{"epoch": 0, "sf_error": 0.2}]}
    card_path.write_text(json.dumps(card))
    write_validation(model_dir, {"sf_mre": 0.1, "bins": []})
    card = json.loads(card_path.read_text())
    assert card["validation"] == {"sf_mre": 0.1, "bins": []}
    assert card["training"]["selection"]["sf_mre_by_epoch"][0]["sf_error"] == 0.2

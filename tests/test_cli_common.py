"""Shared command-line helpers: condition parsing with clear range errors, device choice, exit codes."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from calogen.__main__ import main
from calogen.cli._common import (
    CliError,
    add_condition_args,
    conditions_from_args,
    deg_to_rad,
    rad_to_deg,
    resolve_device,
)
from calogen.simulation.mc import CONDITION_RANGE as MC_RANGE


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_condition_args(parser)
    return parser.parse_args(argv)


def test_fixed_conditions_are_repeated_in_radians():
    conditions = conditions_from_args(parse("--energy", "50", "--theta", "62", "-n", "3"), MC_RANGE)
    assert conditions.energy_gev.tolist() == [50.0, 50.0, 50.0]
    np.testing.assert_allclose(conditions.theta_rad, np.deg2rad(62.0), rtol=1e-6)
    # float32 values, as a shower file stores them: the file's conditions give its showers again
    assert conditions.theta_rad[0] == float(np.float32(np.deg2rad(62.0)))


def test_degrees_and_radians_are_converted_in_one_place():
    assert deg_to_rad(90.0) == pytest.approx(np.pi / 2) and rad_to_deg(np.pi / 3) == pytest.approx(60.0)
    np.testing.assert_allclose(rad_to_deg(deg_to_rad([30.0, 150.0])), [30.0, 150.0])


def test_ranges_are_sampled_uniformly_and_reproducibly():
    args = parse("--energy-range", "2", "500", "--theta-range", "60", "120", "-n", "2000", "--seed", "4")
    conditions = conditions_from_args(args, MC_RANGE)
    energy, theta = conditions.energy_gev, conditions.theta_rad
    assert 2.0 <= energy.min() and energy.max() <= 500.0 and abs(energy.mean() - 251) < 15
    assert np.deg2rad(60) - 1e-6 <= theta.min() and theta.max() <= np.deg2rad(120) + 1e-6
    np.testing.assert_array_equal(energy, conditions_from_args(args, MC_RANGE).energy_gev)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--energy", "9999"), "^energy 9999 GeV is outside 1-500 GeV, the range the Monte Carlo accepts; widen$"),
        (("--theta", "135"), "^angle 135 deg is outside 60-120 deg, the range the Monte Carlo accepts; widen$"),
        (("--energy-range", "300", "20"), "energy range 300-20 GeV is reversed"),
        (("--energy", "nan"), "--energy nan GeV: give a finite number"),
        (("--energy", "-5"), "give a positive energy"),
        (("--theta", "200"), "give angles between 0 and 180 deg"),
        (("-n", "0"), "positive integer"),
    ],
)
def test_bad_conditions_name_the_range_of_the_source(argv, message):
    with pytest.raises(CliError, match=message):
        conditions_from_args(parse(*argv), MC_RANGE, who="the Monte Carlo", hint="; widen")


def test_without_a_range_any_physical_condition_passes():
    conditions = conditions_from_args(parse("--energy", "9999", "--theta", "135", "-n", "1"), None)
    assert conditions.energy_gev.tolist() == [9999.0] and rad_to_deg(conditions.theta_rad)[0] == pytest.approx(135.0)


def test_cuda_asked_without_cuda_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(CliError, match="no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_main_turns_user_errors_into_one_line_and_status_2(capsys, tmp_path, monkeypatch):
    import calogen.__main__ as entry
    from calogen.io import read_showers

    bad = tmp_path / "bad.h5"
    bad.write_text("nope")

    class _Parser:
        def parse_args(self, argv):
            return argparse.Namespace(_run=lambda args: read_showers(bad))

    monkeypatch.setattr(entry, "build_parser", lambda: _Parser())
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "bad.h5" in err[0]


def test_every_installed_command_is_registered():
    import calogen.__main__ as entry

    parser = entry.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(entry.COMMANDS)


def test_figures_are_described_with_unit_target_verdict_and_meaning():
    from calogen.cli._common import describe_figure

    assert describe_figure("sf_mre", 2.127).startswith(
        "sf_mre=2.127: SF error 212.7 %, target <= 5 %: FAIL (mean relative error of the mean sampling fraction")
    assert describe_figure("classifier_auc_high", 0.52).startswith(
        "classifier_auc_high=0.52: classifier AUC (features) 0.52, target 0.3-0.7: pass (")
    assert ": FAIL (" in describe_figure("classifier_auc_low", 0.2)  # far below 0.5 separates as well as far above
    assert "n/a" in describe_figure("nn_ratio", float("nan")) and "no value" in describe_figure("nn_ratio", None)
    assert describe_figure("not_a_known_figure", 1.5) == "not_a_known_figure=1.5"


def test_models_lists_headline_figures_in_words(tmp_path, capsys):
    from calogen.cli.models import format_table
    from calogen.showers import TRAINING_RANGE

    models = [{"name": "m", "arch": "conv2d", "path": "models/m", "condition_range": TRAINING_RANGE.to_json(),
               "validation": {"sf_mre": 2.127, "classifier_auc_high": 1.0, "shape_mse": 0.0177}},
              {"name": "new", "arch": "conv3d", "path": "models/new", "condition_range": TRAINING_RANGE.to_json(),
               "validation": {}}]
    lines = format_table(models).splitlines()
    assert lines[0].split() == ["name", "arch", "energy", "GeV", "theta", "deg", "path"]
    assert lines[1].split()[:4] == ["m", "conv2d", "2-500", "60-120"]
    text = "\n".join(lines)
    assert "sf_mre=2.127: SF error 212.7 %, target <= 5 %: FAIL" in text
    assert "classifier AUC (features) 1.00, target 0.3-0.7: FAIL (AUC of a classifier" in text
    assert "shape_mse" not in text  # headline figures only
    assert "not validated yet: python -m calogen validate --model new" in text
    assert main(["models", "--models-dir", str(tmp_path)]) == 0
    assert "no models installed" in capsys.readouterr().out

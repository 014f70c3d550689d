"""Shared command-line helpers: condition parsing with clear range errors, device choice, exit codes."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from calogen.__main__ import main
from calogen.cli._common import CliError, add_condition_args, conditions_from_args, resolve_device


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_condition_args(parser)
    return parser.parse_args(argv)


def test_fixed_conditions_are_repeated_in_radians():
    energy, theta = conditions_from_args(parse("--energy", "50", "--theta", "62", "-n", "3"))
    assert energy.tolist() == [50.0, 50.0, 50.0]
    np.testing.assert_allclose(theta, np.deg2rad(62.0), rtol=1e-6)


def test_ranges_are_sampled_uniformly_and_reproducibly():
    args = parse("--energy-range", "2", "500", "--theta-range", "60", "120", "-n", "2000", "--seed", "4")
    energy, theta = conditions_from_args(args)
    assert 2.0 <= energy.min() and energy.max() <= 500.0 and abs(energy.mean() - 251) < 15
    assert np.deg2rad(60) - 1e-6 <= theta.min() and theta.max() <= np.deg2rad(120) + 1e-6
    again, _ = conditions_from_args(args)
    np.testing.assert_array_equal(energy, again)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--energy", "9999"), "energy=9999 GeV is outside the allowed range 1-500 GeV"),
        (("--theta", "135"), "theta=135 deg is outside the allowed range 60-120 deg"),
        (("--energy-range", "300", "20"), "reversed"),
        (("--energy", "nan"), "outside the allowed range"),
        (("-n", "0"), "positive integer"),
    ],
)
def test_bad_conditions_name_the_allowed_range(argv, message):
    with pytest.raises(CliError, match=message):
        conditions_from_args(parse(*argv))


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
        "classifier_auc_high=0.52: classifier AUC (features) 0.52, target <= 0.7: pass (")
    assert "n/a" in describe_figure("nn_ratio", float("nan")) and "no value" in describe_figure("nn_ratio", None)
    assert describe_figure("not_a_known_figure", 1.5) == "not_a_known_figure=1.5"


def test_models_lists_headline_figures_in_words(tmp_path, capsys):
    from calogen.cli.models import format_table

    models = [{"name": "m", "arch": "conv2d", "path": "models/m",
               "condition_ranges": {"energy_gev": [2.0, 500.0], "theta_deg": [60.0, 120.0]},
               "validation": {"sf_mre": 2.127, "classifier_auc_high": 1.0, "shape_mse": 0.0177}},
              {"name": "new", "arch": "conv3d", "path": "models/new", "condition_ranges": {}, "validation": {}}]
    lines = format_table(models).splitlines()
    assert lines[0].split() == ["name", "arch", "energy", "GeV", "theta", "deg", "path"]
    assert lines[1].split()[:4] == ["m", "conv2d", "2-500", "60-120"]
    text = "\n".join(lines)
    assert "sf_mre=2.127: SF error 212.7 %, target <= 5 %: FAIL" in text
    assert "classifier AUC (features) 1.00, target <= 0.7: FAIL (AUC of a classifier" in text
    assert "shape_mse" not in text  # headline figures only
    assert "not validated yet: python -m calogen validate --model new" in text
    assert main(["models", "--models-dir", str(tmp_path)]) == 0
    assert "no models installed" in capsys.readouterr().out

"""``python -m calogen validate`` end to end on small synthetic files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from calogen.__main__ import main
from calogen.io import ShowerSet, write_showers
from calogen.validation.comparison import Comparison


def toy_set(n: int, seed: int, *, shape=(9, 9, 25), scale: float = 1.0) -> ShowerSet:
    """Showers with an exponential longitudinal profile and a narrow core, 2% sampling fraction."""
    rng = np.random.default_rng(seed)
    energy = rng.uniform(20.0, 80.0, n)
    nx, ny, nz = shape
    longitudinal = np.exp(-np.arange(nz) / 5.0)
    longitudinal /= longitudinal.sum()
    lateral = np.zeros((nx, ny))
    lateral[nx // 2, ny // 2] = 0.6
    lateral[nx // 2 - 1 : nx // 2 + 2, ny // 2 - 1 : ny // 2 + 2] += 0.05
    lateral /= lateral.sum()
    mean = 0.02 * energy[:, None, None, None] * lateral[None, :, :, None] * longitudinal[None, None, None, :]
    cells = rng.gamma(np.maximum(mean / 1e-4, 1e-9), 1e-4) * scale
    return ShowerSet(cells.astype(np.float32), energy.astype(np.float32), np.full(n, np.pi / 2, np.float32),
                     {"source": f"toy{seed}", "detector": "toy"})


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("validate")
    return {
        "ref": write_showers(root / "ref.h5", toy_set(150, 1)),
        "cand": write_showers(root / "cand.h5", toy_set(150, 2, scale=1.1)),
        "wide": write_showers(root / "wide.h5", toy_set(10, 3, shape=(11, 11, 25))),
        "root": root,
    }


def test_validate_writes_json_and_html(files: dict, capsys) -> None:
    out = files["root"] / "report.json"
    html = files["root"] / "report.html"
    code = main(["validate", "--reference", str(files["ref"]), "--candidate", str(files["cand"]), "--out", str(out),
                 "--html", str(html), "--no-classifier", "--energy-bins", "20", "50", "80"])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["metrics"]["sf_mre"] == pytest.approx(0.10, abs=0.01)
    assert [r["energy_gev"] for r in result["bins"]] == [[20.0, 50.0], [50.0, 80.0]]
    comparison = Comparison.from_json(result)  # the file reads back as the typed result it was written from
    assert all(row.sf_candidate / row.sf_reference == pytest.approx(1.1, abs=0.02) for row in comparison.bins)
    assert comparison.info.candidate_path == str(files["cand"]) and comparison.profiles["z"].reference.size == 25
    printed = capsys.readouterr().out
    assert f"SF error {100 * comparison.sf_mre:.1f} %, target <= 5 %: FAIL" in printed
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "miss their target: SF error" in page


def test_geometry_mismatch_is_one_line_exit_2(files: dict) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "calogen", "validate", "--reference", str(files["ref"]), "--candidate",
         str(files["wide"]), "--out", str(files["root"] / "x.json"), "--no-classifier"],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "ref.h5" in lines[0] and "wide.h5" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--energy-bins", "50", "20"], "strictly increasing"),
        (["--theta-bins", "90"], "at least two"),
        (["--max-showers", "1"], "at least 2"),
    ],
)
def test_bad_arguments_exit_2(files: dict, capsys, extra: list, message: str) -> None:
    code = main(["validate", "--reference", str(files["ref"]), "--candidate", str(files["cand"]), "--out",
                 str(files["root"] / "y.json"), "--no-classifier", "--quiet", *extra])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_missing_file_exit_2(files: dict, capsys) -> None:
    code = main(["validate", "--reference", str(files["root"] / "nope.h5"), "--candidate", str(files["cand"]),
                 "--out", str(files["root"] / "z.json"), "--no-classifier", "--quiet"])
    assert code == 2
    assert "nope.h5" in capsys.readouterr().err


def grid_set(energies: list[float], n_each: int, seed: int) -> ShowerSet:
    """toy_set showers at fixed energies (a reference grid), ``n_each`` per energy, 90 deg."""
    parts = [toy_set(n_each, seed + i) for i in range(len(energies))]
    showers = []
    for part, energy in zip(parts, energies):
        showers.append(part.showers / part.energy_gev[:, None, None, None] * energy)  # same SF, new energy
    n = n_each * len(energies)
    return ShowerSet(np.concatenate(showers).astype(np.float32), np.repeat(energies, n_each).astype(np.float32),
                     np.full(n, np.pi / 2, np.float32), {"source": f"grid{seed}", "detector": "toy"})


def test_candidate_at_one_point_is_compared_with_the_reference_bins_it_covers(tmp_path, capsys) -> None:
    reference = write_showers(tmp_path / "grid.h5", grid_set([10.0, 50.0, 100.0], 100, 1))
    candidate = write_showers(tmp_path / "at100.h5", grid_set([100.0], 100, 7))  # same physics, one point
    out = tmp_path / "r.json"
    code = main(["validate", "--reference", str(reference), "--candidate", str(candidate), "--out", str(out),
                 "--no-classifier"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "compared 100 of 300 reference showers" in printed and "100 of 100 candidate showers" in printed
    assert "95-105 GeV, 87.1-92.9 deg: 100 reference, 100 candidate showers" in printed
    assert "left out: 200 reference and 0 candidate showers" in printed
    assert "sf_mre=" in printed and "SF error" in printed and "target <= 5 %" in printed
    assert "separation power" in printed and "0 = identical" in printed
    assert "FPD and KPD compare 127 shower features; with 100 showers" in printed
    matched = json.loads(out.read_text())
    assert matched["info"]["coverage"]["n_reference"] == 100 and matched["info"]["n_reference"] == 100
    assert main(["validate", "--reference", str(reference), "--candidate", str(candidate), "--out", str(out),
                 "--no-classifier", "--all-reference"]) == 0
    assert "compared all 300 reference showers" in capsys.readouterr().out
    whole = json.loads(out.read_text())
    # the same physics at the same point agrees; against the whole grid it looks like a different sample
    assert matched["metrics"]["separation_deposited_energy_gev"] < 0.25 < whole["metrics"][
        "separation_deposited_energy_gev"]
    assert matched["metrics"]["kpd_x1e3"] < 10 < whole["metrics"]["kpd_x1e3"]


def test_candidate_outside_every_reference_bin_is_an_error(tmp_path, capsys) -> None:
    reference = write_showers(tmp_path / "grid.h5", grid_set([10.0, 50.0], 20, 1))
    candidate = write_showers(tmp_path / "at300.h5", grid_set([300.0], 20, 7))
    code = main(["validate", "--reference", str(reference), "--candidate", str(candidate), "--out",
                 str(tmp_path / "r.json"), "--no-classifier"])
    err = capsys.readouterr().err
    assert code == 2 and "energies 300-300 GeV" in err and "5-15, 45-55 GeV" in err
    assert not (tmp_path / "r.json").exists()

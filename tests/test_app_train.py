"""AppTest tests of the Train page: run names stay inside the runs folder, settings are checked before a
run starts, a running job shows its progress."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240


@pytest.fixture()
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path/runs as the app's runs folder (models and data folders empty)."""
    for name in ("models", "runs", "data"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("CALOGEN_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("CALOGEN_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CALOGEN_DATA", str(tmp_path / "data"))
    return tmp_path / "runs"


def _train_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT_S)
    at.run()
    at.switch_page("pages/3_Train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


def _start(at: AppTest) -> None:
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize("name", ["../x", "a/b", "/tmp/x", "ABSOLUTE"])
def test_run_name_that_leaves_the_runs_folder_is_refused(runs: Path, name: str) -> None:
    tmp_path = runs.parent
    if name == "ABSOLUTE":  # an absolute path this test owns, so that "not created" is a sharp check
        name = str(tmp_path / "abs" / "x")
    tmp_before = Path("/tmp/x").exists()
    at = _train_page()
    at.text_input[0].set_value(name)
    _start(at)
    errors = " ".join(e.value for e in at.error)
    assert "not allowed" in errors and repr(name) in errors, errors
    assert not at.success
    assert _files(tmp_path) == [tmp_path / "data", tmp_path / "models", runs]  # nothing inside or outside
    assert Path("/tmp/x").exists() == tmp_before


def _widget(widgets, label: str):
    return next(w for w in widgets if w.label == label)


def test_settings_that_cannot_train_are_refused_before_launch(runs: Path) -> None:
    at = _train_page()
    assert _widget(at.number_input, "Batch size").min == 2
    _widget(at.slider, "Energy range (GeV)").set_value((2.0, 5.0))  # Monte Carlo showers below the loader cut
    at.text_input[0].set_value("low-energy")
    _start(at)
    errors = " ".join(e.value for e in at.error)
    assert "Starting the run failed" in errors and "raise the upper energy above 11 GeV" in errors, errors
    assert not at.success and _files(runs) == []


def test_running_run_shows_step_total_percent_and_eta(runs: Path) -> None:
    import json
    import os
    import time

    run_dir = runs / "going"
    run_dir.mkdir()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {"state": "running", "pid": os.getpid(), "pgid": os.getpgid(0), "step": 2, "total_steps": 10,
              "percent": 20.0, "eta_s": 1200.0, "epoch": 0, "total_epochs": 5, "updated": now, "queued": now}
    (run_dir / "status.json").write_text(json.dumps(status))
    at = _train_page()
    row = at.dataframe[0].value.iloc[0]
    assert (row["name"], row["state"], row["step"], row["total_steps"], row["percent"]) == (
        "going", "running", 2, 10, 20.0)
    assert row["eta"] in ("20 min", "19 min")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["State"] == "running" and metrics["Step"] == "2 / 10" and metrics["ETA"] in ("20 min", "19 min")
    # the run moves on: the page reads the status file again (the fragments rerun every 2 s in a browser)
    (run_dir / "status.json").write_text(json.dumps({**status, "step": 5, "percent": 50.0, "eta_s": 60.0}))
    at.run()
    assert at.dataframe[0].value.iloc[0]["step"] == 5
    assert {m.label: m.value for m in at.metric}["Step"] == "5 / 10"


def test_a_run_simulating_its_held_out_showers_says_so(runs: Path) -> None:
    import json
    import os
    import time

    run_dir = runs / "warming"
    run_dir.mkdir()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    phase = "simulating 100 held-out Monte Carlo showers (minutes on a CPU)"
    (run_dir / "status.json").write_text(json.dumps({"state": "preparing", "pid": os.getpid(),
                                                     "pgid": os.getpgid(0), "phase": phase, "updated": now,
                                                     "queued": now}))
    at = _train_page()
    assert at.dataframe[0].value.iloc[0]["state"] == f"preparing: {phase}"  # not "queued"
    assert {m.label: m.value for m in at.metric}["State"] == "preparing"
    assert any(f"Before the first step: {phase}." == c.value for c in at.caption)
    assert not _widget(at.button, "Cancel run").disabled  # it can be cancelled while it prepares

"""AppTest tests of the Train page: run names stay inside the runs folder, settings are checked before a
run starts, a running job shows its progress."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from calogen import sources

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240
HAS_JOBS = sources.backend_error("jobs") is None

pytestmark = pytest.mark.skipif(not HAS_JOBS, reason=f"{sources.backend_error('jobs')}")


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

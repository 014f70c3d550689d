"""Background runs: queued -> running, metrics appear, cancel, list, no double start, resume; run names stay
inside the runs folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from calogen.gan import jobs
from calogen.gan.train import load_checkpoint


@pytest.fixture(autouse=True)
def _runs_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's runs folder is tmp_path/runs (the default root of calogen.gan.jobs)."""
    monkeypatch.setenv("CALOGEN_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture
def run_config(tmp_path: Path, shower_file, small_nets):
    """``run_config(name)``: settings of a long background run of the small networks on 48 synthetic showers."""
    def make(name: str) -> dict:
        data = shower_file(tmp_path / "small.h5", 48)
        return dict(arch="wgan-gp-atlas", data=str(data), epochs=100000, steps_per_epoch=3, batch=4, heldout_mc=8,
                    device="cpu", threads=1, run_dir=name, **small_nets)
    return make


def test_background_run_lifecycle(tmp_path: Path, run_config, wait_for) -> None:
    root = tmp_path / "runs"
    run_dir = jobs.start_run(run_config("bg"), root=root)
    assert run_dir == root / "bg"
    assert jobs.read_status(run_dir)["state"] in jobs.ACTIVE_STATES  # queued is written before launch
    with pytest.raises(jobs.RunError, match="already exists"):
        jobs.start_run(run_config("bg"), root=root)  # a second tab cannot start the same run
    with pytest.raises(jobs.RunError, match="cancel it before resuming"):
        jobs.resume_run(run_dir)

    wait_for(lambda: jobs.read_status(run_dir)["state"] == "running" and len(jobs.read_metrics(run_dir)) >= 2,
             what="the background run to write metrics")
    status = jobs.read_status(run_dir)
    assert status["pgid"] == status["pid"]  # its own process group
    assert jobs.tail_log(run_dir, 5)

    final = jobs.cancel_run(run_dir)
    assert final["state"] == "cancelled" and "SIGTERM" in final["exit_reason"]
    step = load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]
    assert step == int(jobs.read_metrics(run_dir)["step"].max())
    listed = {r["name"]: r for r in jobs.list_runs(root)}
    assert listed["bg"]["state"] == "cancelled" and listed["bg"]["arch"] == "wgan-gp-atlas"

    # resume in the background: continues after the saved step
    jobs.resume_run(run_dir)
    wait_for(lambda: int(jobs.read_metrics(run_dir)["step"].max()) > step + 1,
             what="the resumed run to make progress")
    assert jobs.cancel_run(run_dir)["state"] == "cancelled"
    steps = jobs.read_metrics(run_dir)["step"]
    assert steps.is_monotonic_increasing  # no step repeated after the resume


def test_process_that_disappeared_is_marked_failed(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "ghost"
    run_dir.mkdir(parents=True)
    # the pid of a process that has exited
    pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True, check=True).stdout)
    (run_dir / "status.json").write_text(json.dumps({"state": "running", "pid": pid, "pgid": pid,
                                                     "started": "2026-01-01T00:00:00Z"}))
    status = jobs.cancel_run(run_dir)
    assert status["state"] == "failed" and "process disappeared" in status["exit_reason"]
    assert [r["name"] for r in jobs.list_runs(tmp_path / "runs")] == ["ghost"]


def test_list_runs_newest_first_and_empty_metrics(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for name, queued in (("old", "2026-01-01T00:00:00Z"), ("new", "2026-02-01T00:00:00Z")):
        (root / name).mkdir(parents=True)
        (root / name / "status.json").write_text(json.dumps({"state": "finished", "queued": queued}))
    assert [r["name"] for r in jobs.list_runs(root)] == ["new", "old"]
    assert jobs.read_metrics(root / "new").empty
    assert jobs.list_runs(tmp_path / "nothing") == []


@pytest.mark.parametrize(
    ("name", "problem"),
    [("../x", "path separator"), ("a/b", "path separator"), ("..", "starts with '.'"), (".hidden", "starts with"),
     ("", "empty"), ("x" * 65, "65 characters"), ("a b", "' '"), ("run;rm", "';'"), ("a\\b", "path separator")],
)
def test_run_name_outside_the_rules_is_refused(tmp_path: Path, name: str, problem: str) -> None:
    with pytest.raises(jobs.RunError, match=problem):
        jobs.run_path(name)


def test_run_path_accepts_a_name_or_root_slash_name(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    assert jobs.run_path("conv3d-3dgan_1.2") == root / "conv3d-3dgan_1.2"
    assert jobs.run_path(root / "a", root) == root / "a"
    assert jobs.run_path("x" * jobs.RUN_NAME_MAX_CHARS, root).name == "x" * 64
    for path in (str(root / ".." / "x"), "/tmp/x", str(tmp_path / "elsewhere" / "a")):
        with pytest.raises(jobs.RunError, match="not allowed"):
            jobs.run_path(path, root)


def test_symbolic_link_out_of_the_runs_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "status.json").write_text(json.dumps({"state": "finished"}))
    (root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(jobs.RunError, match="symbolic link"):
        jobs.read_status("link")
    assert jobs.list_runs() == []  # not listed either


@pytest.mark.parametrize("name", ["../x", "a/b", "/tmp/calogen-escape-test", "sub/../../x", ".x"])
def test_start_run_with_a_bad_name_creates_nothing(tmp_path: Path, run_config, name: str) -> None:
    config = run_config(name)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(jobs.RunError, match="not allowed"):
        jobs.start_run(config)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not Path("/tmp/calogen-escape-test").exists()


@pytest.mark.parametrize("call", [jobs.read_status, jobs.read_metrics, jobs.tail_log, jobs.cancel_run,
                                  jobs.resume_run])
def test_every_run_function_refuses_a_path_outside_the_runs_folder(tmp_path: Path, call) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "status.json").write_text(json.dumps({"state": "cancelled"}))
    with pytest.raises(jobs.RunError, match="not allowed"):
        call(outside)
    with pytest.raises(jobs.RunError, match="not allowed"):
        call("../outside")
    assert sorted(p.name for p in outside.iterdir()) == ["status.json"]


def test_cancel_does_not_wait_for_a_slow_step(wait_for) -> None:
    # each step simulates 2 showers at 400-500 GeV (about 7 s on one CPU thread); cancel arrives inside step 1
    config = {"arch": "wgan-gp-atlas", "data": "mc", "energy_range_gev": [400.0, 500.0], "epochs": 10,
              "steps_per_epoch": 100, "batch": 2, "heldout_mc": 2, "device": "cpu", "threads": 1, "run_dir": "slow"}
    run_dir = jobs.start_run(config)
    try:
        wait_for(lambda: jobs.read_status(run_dir)["state"] == "running", timeout_s=300,
                 what="the run to finish its set-up")
        time.sleep(1.0)
        start = time.monotonic()
        final = jobs.cancel_run(run_dir)
        elapsed = time.monotonic() - start
    finally:
        jobs.cancel_run(run_dir, timeout_s=1.0)
    assert final["state"] == "cancelled" and "SIGTERM" in final["exit_reason"], final
    assert "cut short" in final["exit_reason"] and elapsed < 5.0, (elapsed, final)
    assert (run_dir / "checkpoints" / "last.pt").exists() and not (run_dir / "lock").exists()


def test_start_run_with_settings_that_cannot_train_creates_nothing(tmp_path: Path, run_config) -> None:
    for bad in ({"batch": 1}, {"data": "mc", "energy_range_gev": [2.0, 2.0]}, {"device": "gpu"},
                {"theta_range_rad": [60.0, 120.0]}):  # degrees where radians belong
        with pytest.raises(ValueError, match="batch=1|raise the upper energy|not a training device|< pi radians"):
            jobs.start_run({**run_config("never"), **bad})
    assert not (tmp_path / "runs").exists()


def test_runs_table_reads_progress_from_the_status_file(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "going"
    run_dir.mkdir(parents=True)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (run_dir / "status.json").write_text(json.dumps({
        "state": "running", "pid": os.getpid(), "step": 2, "total_steps": 10, "percent": 20.0, "eta_s": 600.0,
        "updated": now, "queued": now}))
    (row,) = jobs.runs_table()
    assert (row["name"], row["state"], row["step"], row["total_steps"], row["percent"]) == (
        "going", "running", 2, 10, 20.0)
    assert row["eta"] in ("10 min", "9 min")


def test_a_preparing_run_says_what_it_does_and_is_checked_for_its_process(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    (root / "prep").mkdir(parents=True)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    phase = "simulating 100 held-out Monte Carlo showers (minutes on a CPU)"
    (root / "prep" / "status.json").write_text(json.dumps({
        "state": "preparing", "pid": os.getpid(), "phase": phase, "updated": now, "queued": now}))
    (row,) = jobs.runs_table(root)
    assert row["state"] == f"preparing: {phase}" and row["eta"] == "-"  # no ETA before the first step
    assert jobs.read_status(root / "prep")["state"] == "preparing"  # its process (this one) is alive
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (root / "prep" / "status.json").write_text(json.dumps({
        "state": "preparing", "pid": dead.pid, "phase": phase, "updated": now, "queued": now}))
    status = jobs.read_status(root / "prep")
    assert status["state"] == "failed" and "process disappeared" in status["exit_reason"]

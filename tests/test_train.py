"""Training: the loop runs and stays finite, checkpoints and the run directory, resume, SIGTERM, schedule, CLI.

Most runs use the dense ``wgan-gp-atlas`` networks on a small (8, 8, 6) geometry so that a step costs
milliseconds; one run trains the published conv3d networks on the full 51 x 51 x 25 grid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from calogen.io import ShowerSet, write_showers
from calogen.gan.train import TrainConfig, load_checkpoint, sampling_fraction_mre, stages, train

REPO = Path(__file__).resolve().parent.parent
SMALL = (8, 8, 6)
SMALL_NETS = {"generator_config": {"shape": list(SMALL), "energy_fraction": 0.02},
              "discriminator_config": {"shape": list(SMALL)}}


def shower_file(path: Path, n: int, shape: tuple[int, int, int] = SMALL, seed: int = 1) -> Path:
    """Synthetic electron-like showers: Gaussian transverse spot drifting in y with cot(theta), SF = 2 %."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    energy = rng.uniform(50.0, 250.0, n).astype(np.float32)
    theta = np.deg2rad(rng.uniform(60.0, 120.0, n)).astype(np.float32)
    x, y, z = (np.arange(k) + 0.5 for k in shape)
    longitudinal = z**2 * np.exp(-z / (nz / 4))
    y_centre = ny / 2 + (z[None, :] - nz / 3) / np.tan(theta[:, None])  # (N, Z)
    gx = np.exp(-0.5 * ((x - nx / 2) / 1.2) ** 2)
    gy = np.exp(-0.5 * ((y[None, :, None] - y_centre[:, None, :]) / 1.2) ** 2)  # (N, Y, Z)
    cells = gx[None, :, None, None] * gy[:, None, :, :] * longitudinal[None, None, None, :]
    cells = cells / cells.sum(axis=(1, 2, 3), keepdims=True) * (0.02 * energy)[:, None, None, None]
    cells *= rng.uniform(0.9, 1.1, cells.shape)
    write_showers(path, ShowerSet(cells.astype(np.float32), energy, theta, {"particle": "e-", "source": "test"}))
    return path


def small_config(tmp_path: Path, name: str, **overrides: object) -> TrainConfig:
    data = tmp_path / "small.h5"
    if not data.exists():
        shower_file(data, 48)
    values: dict[str, object] = dict(arch="wgan-gp-atlas", data=str(data), epochs=2, steps_per_epoch=3, batch=4,
                                     heldout_mc=16, device="cpu", seed=3, run_dir=str(tmp_path / name),
                                     **SMALL_NETS)
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def wait_for(predicate, timeout_s: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def test_conv3d_training_step_is_finite_and_exports_a_model(tmp_path: Path) -> None:
    data = shower_file(tmp_path / "full.h5", 8, shape=(51, 51, 25))
    config = TrainConfig(arch="conv3d", data=str(data), epochs=1, steps_per_epoch=1, batch=2, heldout_mc=2,
                         device="cpu", threads=2, run_dir=str(tmp_path / "conv3d"))
    run_dir = train(config)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    steps = metrics[metrics["sf_error"].isna()]
    assert list(steps["step"]) == [1]
    for column in ("loss_d", "loss_g", "bce", "energy_mape", "angle_mae", "sum_mape"):
        assert np.isfinite(steps[column]).all(), column
    assert np.isfinite(metrics["sf_error"].dropna()).all()
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert {"step", "epoch", "stage", "generator", "discriminator", "optimizer_g", "optimizer_d", "config",
            "version"} <= set(ckpt)
    assert ckpt["step"] == 1 and ckpt["config"]["arch"] == "conv3d"
    assert isinstance(ckpt["optimizer_d"]["state"], dict)
    status = _status(run_dir)
    assert status["state"] == "finished" and status["exit_reason"] == "completed"
    card = json.loads((run_dir / "model" / "card.json").read_text())
    assert card["arch"] == "conv3d" and card["training"]["selected_epoch"] == 0
    assert card["preprocessing"]["power"] == 0.85 and card["condition_ranges"]["energy_gev"] == [2.0, 500.0]
    assert "sf_mre" in card["validation"]
    assert card["training"]["data"] == str(data) and card["training"]["data_provenance"]["showers"] == 8
    assert not (run_dir / "lock").exists()


def test_resume_continues_at_the_saved_step_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    # reference: 2 epochs x 3 steps in one go
    reference = train(small_config(tmp_path, "whole"))
    # the same run stopped after 4 steps (mid-epoch 1), then resumed
    sliced = small_config(tmp_path, "sliced")
    train(sliced, max_steps=4)
    status = _status(Path(sliced.run_dir))
    assert status["state"] == "cancelled" and "max_steps=4" in status["exit_reason"]
    ckpt = load_checkpoint(Path(sliced.run_dir) / "checkpoints" / "last.pt")
    assert (ckpt["step"], ckpt["epoch"], ckpt["step_in_epoch"]) == (4, 1, 1)
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        train(small_config(tmp_path, "sliced"))
    train(TrainConfig.from_dict(json.loads((Path(sliced.run_dir) / "config.json").read_text())), resume=True)
    metrics = pd.read_csv(Path(sliced.run_dir) / "metrics.csv")
    assert list(metrics[metrics["sf_error"].isna()]["step"]) == [1, 2, 3, 4, 5, 6]
    assert _status(Path(sliced.run_dir))["state"] == "finished"
    a = load_checkpoint(reference / "checkpoints" / "last.pt")
    b = load_checkpoint(Path(sliced.run_dir) / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 6
    for key, value in a["generator"].items():
        torch.testing.assert_close(b["generator"][key], value)  # same data, noise and flips after resume
    kept = sorted(p.name for p in (reference / "checkpoints").glob("generator_epoch_*.pt"))
    assert kept == ["generator_epoch_0000.pt", "generator_epoch_0001.pt"]


def test_selection_keeps_last_k_and_picks_smallest_sf_error(tmp_path: Path) -> None:
    run_dir = train(small_config(tmp_path, "select", epochs=4, steps_per_epoch=1, select_last_k=2))
    kept = sorted(p.name for p in (run_dir / "checkpoints").glob("generator_epoch_*.pt"))
    assert kept == ["generator_epoch_0002.pt", "generator_epoch_0003.pt"]
    history = load_checkpoint(run_dir / "checkpoints" / "last.pt")["history"]
    best = min(history[-2:], key=lambda h: h["sf_error"])
    card = json.loads((run_dir / "model" / "card.json").read_text())
    assert card["training"]["selected_epoch"] == best["epoch"]
    assert card["validation"]["sf_mre"] == pytest.approx(best["sf_error"])


def test_two_step_schedule_warm_starts_the_full_range(tmp_path: Path) -> None:
    config = small_config(tmp_path, "two", two_step=True, stage1_epochs=1, epochs=1, steps_per_epoch=2)
    assert [(s.energy_range_gev, s.first_epoch, s.epochs) for s in stages(config)] == [
        ((100.0, 200.0), 0, 1), ((2.0, 500.0), 1, 1)]
    run_dir = train(config)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert sorted(set(metrics["stage"])) == [0, 1]
    assert "stage 1: warm start" in (run_dir / "log.txt").read_text()
    assert json.loads((run_dir / "model" / "card.json").read_text())["training"]["selected_epoch"] == 1


def test_wgan_gp_recipe_runs(tmp_path: Path) -> None:
    run_dir = train(small_config(tmp_path, "wgan", recipe="wgan-gp", epochs=1, steps_per_epoch=5))
    metrics = pd.read_csv(run_dir / "metrics.csv")
    steps = metrics[metrics["sf_error"].isna()]
    assert steps["loss_g"].notna().sum() == 1  # one generator update per five critic updates
    assert np.isfinite(steps["gradient_penalty"]).all()


def test_failing_run_writes_status_failed_with_the_message(tmp_path: Path) -> None:
    from calogen.gan.train import TrainingFailed

    config = small_config(tmp_path, "bad", generator_config={"shape": list(SMALL), "no_such_option": 1})
    with pytest.raises(TrainingFailed):
        train(config)
    status = _status(Path(config.run_dir))
    assert status["state"] == "failed" and "no_such_option" in status["exit_reason"]


def test_sampling_fraction_error_known_answer() -> None:
    energy = np.full(20, 100.0)
    reference = np.full((20, 2, 2, 1), 0.5)  # 2 GeV per shower: SF 0.02
    candidate = np.full((20, 2, 2, 1), 0.55)  # SF 0.022: 10 % off in every bin
    assert sampling_fraction_mre(reference, candidate, energy) == pytest.approx(0.1)


def test_cli_rejects_bad_input_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from calogen.__main__ import main

    assert main(["train", "--arch", "nope", "--data", "mc", "--run-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "nope" in err[0]
    assert main(["train", "--data", str(tmp_path / "missing.h5"), "--run-dir", str(tmp_path / "y")]) == 2
    assert "missing.h5" in capsys.readouterr().err


def test_sigterm_saves_checkpoint_and_reports_cancelled(tmp_path: Path) -> None:
    data = shower_file(tmp_path / "small.h5", 48)
    run_dir = tmp_path / "term"
    cmd = [sys.executable, "-m", "calogen", "train", "--arch", "wgan-gp-atlas", "--data", str(data),
           "--epochs", "100000", "--steps-per-epoch", "3", "--batch", "4", "--heldout-size", "8",
           "--device", "cpu", "--threads", "1", "--run-dir", str(run_dir),
           "--generator-config", json.dumps({"shape": list(SMALL)}),
           "--discriminator-config", json.dumps({"shape": list(SMALL)})]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _status(run_dir).get("state") == "running" and (run_dir / "metrics.csv").exists(),
                 what="the run to report running and write metrics")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out.decode()
    status = _status(run_dir)
    assert status["state"] == "cancelled"
    assert "SIGTERM" in status["exit_reason"] and "--resume" in status["exit_reason"]
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert ckpt["step"] == int(metrics["step"].max()) >= 1
    assert not (run_dir / "lock").exists()


def test_showers_simulated_on_the_fly(tmp_path: Path) -> None:
    # --data mc: calogen.simulation.mc.simulate feeds the loop (low energies keep the cascade cheap on CPU)
    config = TrainConfig(arch="wgan-gp-atlas", data="mc", energy_range_gev=(1.0, 2.0), epochs=1,
                         steps_per_epoch=1, batch=2, heldout_mc=2, min_sum=0.0, device="cpu",
                         run_dir=str(tmp_path / "mc"))
    run_dir = train(config)
    assert (run_dir / "heldout.h5").exists()
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert np.isfinite(metrics["loss_d"].dropna()).all() and len(metrics["loss_d"].dropna()) == 1


def test_empty_energy_window_is_an_error(tmp_path: Path) -> None:
    from calogen.gan.train import TrainingFailed

    config = small_config(tmp_path, "empty", energy_range_gev=(400.0, 500.0))  # the file holds 50-250 GeV
    with pytest.raises(TrainingFailed, match="no batch"):
        train(config)


def test_sigterm_cuts_a_slow_step_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from calogen.gan import train as train_module

    original = train_module.ShowerFileSource._to_batch
    batches: list[int] = []

    def slow_third_batch(self, *args):  # the third batch takes a minute to read; SIGTERM arrives meanwhile
        batches.append(1)
        if len(batches) == 3:
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
            time.sleep(60)
        return original(self, *args)

    monkeypatch.setattr(train_module.ShowerFileSource, "_to_batch", slow_third_batch)
    config = small_config(tmp_path, "cut", epochs=100)
    start = time.monotonic()
    train(config)
    assert time.monotonic() - start < 30  # not the 60 s of the slow batch
    status = _status(Path(config.run_dir))
    assert status["state"] == "cancelled"
    assert "SIGTERM" in status["exit_reason"] and "step 3 was cut short" in status["exit_reason"]
    assert load_checkpoint(Path(config.run_dir) / "checkpoints" / "last.pt")["step"] == 2
    monkeypatch.setattr(train_module.ShowerFileSource, "_to_batch", original)
    train(TrainConfig.from_dict(json.loads((Path(config.run_dir) / "config.json").read_text())), resume=True,
          max_steps=2)
    steps = pd.read_csv(Path(config.run_dir) / "metrics.csv").dropna(subset=["loss_d"])["step"].tolist()
    assert steps == [1, 2, 3, 4]  # the cut step is done again, once


def test_status_and_log_show_progress_and_eta(tmp_path: Path) -> None:
    run_dir = train(small_config(tmp_path, "eta", epochs=2, steps_per_epoch=3))
    status = _status(run_dir)
    assert (status["total_steps"], status["percent"], status["eta_s"]) == (6, 100.0, 0.0)
    log = (run_dir / "log.txt").read_text()
    assert "step 1/6 (16.7 %), epoch 1/2, loss_d" in log and "s/step, ETA" in log


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch": 1}, "batch=1: a step needs at least 2 showers"),
        ({"data": "mc", "energy_range_gev": (2.0, 10.0)}, "raise the upper energy above 11 GeV"),
        ({"data": "mc", "steps_per_epoch": None}, "give steps_per_epoch"),
    ],
)
def test_settings_that_cannot_train_are_refused_by_the_config(tmp_path: Path, overrides: dict,
                                                               message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from calogen.gan.train import check_config

        check_config(small_config(tmp_path, "bad", **overrides))
    assert not (tmp_path / "bad").exists()


def test_check_config_needs_the_machine_and_the_data(tmp_path: Path) -> None:
    from calogen.gan.train import check_config, planned_steps

    with pytest.raises(ValueError, match="arch='nope' is unknown"):
        check_config(small_config(tmp_path, "a", arch="nope"))
    with pytest.raises(ValueError, match="'gpu' is not a training device"):
        check_config(small_config(tmp_path, "a", device="gpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            check_config(small_config(tmp_path, "a", device="cuda"))
    tiny = shower_file(tmp_path / "tiny.h5", 6)
    with pytest.raises(ValueError, match="leaves 3 showers for training .* fewer than one batch of 4"):
        check_config(small_config(tmp_path, "a", data=str(tiny), heldout_mc=16))
    check_config(small_config(tmp_path, "a", data="mc", energy_range_gev=(2.0, 500.0), batch=2))  # 98 % pass
    check_config(small_config(tmp_path, "a", data="mc", energy_range_gev=(2.0, 5.0), min_sum=0.0))
    assert planned_steps(small_config(tmp_path, "a", epochs=2, steps_per_epoch=None)) == 2 * (32 // 4)
    assert planned_steps(small_config(tmp_path, "a", data="mc", epochs=3, steps_per_epoch=7,
                                      two_step=True, stage1_epochs=2)) == 35


def test_format_duration() -> None:
    from calogen.gan.train import format_duration

    assert [format_duration(s) for s in (None, 4.2, 89, 600, 3 * 3600 + 5 * 60)] == [
        "-", "4 s", "89 s", "10 min", "3 h 05 min"]


def test_cli_train_auto_device_prints_progress(tmp_path: Path) -> None:
    run_dir = tmp_path / "auto"
    cmd = [sys.executable, "-m", "calogen", "train", "--arch", "wgan-gp-atlas", "--data", "mc", "--energy-range",
           "20", "30", "--theta-range", "60", "120", "--epochs", "1", "--steps-per-epoch", "2", "--batch", "2",
           "--heldout-size", "2", "--threads", "1", "--run-dir", str(run_dir)]  # --device auto by default
    proc = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "step 1/2 (50.0 %), epoch 1/1" in proc.stderr and "ETA" in proc.stderr
    assert _status(run_dir)["state"] == "finished"
    assert json.loads((run_dir / "config.json").read_text())["device"] == "auto"


def test_cli_train_with_batch_1_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    from calogen.__main__ import main

    assert main(["train", "--data", "mc", "--batch", "1", "--run-dir", str(tmp_path / "one")]) == 2
    assert not (tmp_path / "one").exists()

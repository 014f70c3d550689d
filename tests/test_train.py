"""Training: the loop runs and stays finite, checkpoints and the run directory, resume, SIGTERM, schedule, CLI,
the configuration in radians (and old configs in degrees), the held-out SF error, the condition regressor of the
wgan-gp recipe, and a short training that makes generated showers follow the requested angle.

Most runs use the dense ``wgan-gp-atlas`` networks on a small (8, 8, 6) geometry (the fixtures of conftest.py) so
that a step costs milliseconds; one run trains the published conv3d networks on the full 51 x 51 x 25 grid.
"""

from __future__ import annotations

import json
import math
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

from calogen.gan.train import TrainConfig, load_checkpoint, stages, train
from calogen.paths import repo_root


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(repo_root()))


def _status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def test_conv3d_training_step_is_finite_and_exports_a_model(tmp_path: Path, shower_file) -> None:
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
    assert card["preprocessing"]["power"] == 0.85 and card["condition_range"]["energy_gev"] == [2.0, 500.0]
    assert "sf_mre" in card["validation"]
    assert card["training"]["data"] == str(data) and card["training"]["data_provenance"]["showers"] == 8
    assert not (run_dir / "lock").exists()


def test_resume_continues_at_the_saved_step_and_matches_an_uninterrupted_run(small_config) -> None:
    # reference: 2 epochs x 3 steps in one go
    reference = train(small_config("whole"))
    # the same run stopped after 4 steps (mid-epoch 1), then resumed
    sliced = small_config("sliced")
    train(sliced, max_steps=4)
    status = _status(Path(sliced.run_dir))
    assert status["state"] == "cancelled" and "max_steps=4" in status["exit_reason"]
    ckpt = load_checkpoint(Path(sliced.run_dir) / "checkpoints" / "last.pt")
    assert (ckpt["step"], ckpt["epoch"], ckpt["step_in_epoch"]) == (4, 1, 1)
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        train(small_config("sliced"))
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


def test_selection_keeps_last_k_and_picks_smallest_sf_error(small_config) -> None:
    run_dir = train(small_config("select", epochs=4, steps_per_epoch=1, select_last_k=2))
    kept = sorted(p.name for p in (run_dir / "checkpoints").glob("generator_epoch_*.pt"))
    assert kept == ["generator_epoch_0002.pt", "generator_epoch_0003.pt"]
    history = load_checkpoint(run_dir / "checkpoints" / "last.pt")["history"]
    best = min(history[-2:], key=lambda h: h["sf_error"])
    card = json.loads((run_dir / "model" / "card.json").read_text())
    assert card["training"]["selected_epoch"] == best["epoch"]
    assert card["validation"]["sf_mre"] == pytest.approx(best["sf_error"])


def test_two_step_schedule_warm_starts_the_full_range(small_config) -> None:
    config = small_config("two", two_step=True, stage1_epochs=1, epochs=1, steps_per_epoch=2)
    assert [(s.energy_range_gev, s.first_epoch, s.epochs) for s in stages(config)] == [
        ((100.0, 200.0), 0, 1), ((2.0, 500.0), 1, 1)]
    run_dir = train(config)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert sorted(set(metrics["stage"])) == [0, 1]
    assert "stage 1: warm start" in (run_dir / "log.txt").read_text()
    assert json.loads((run_dir / "model" / "card.json").read_text())["training"]["selected_epoch"] == 1


def test_wgan_gp_recipe_pretrains_the_regressor_and_uses_it(small_config) -> None:
    run_dir = train(small_config("wgan", recipe="wgan-gp", epochs=1, steps_per_epoch=5, regressor_steps=100,
                                 threads=1))
    metrics = pd.read_csv(run_dir / "metrics.csv")
    steps = metrics.dropna(subset=["loss_d"])
    assert list(steps["step"]) == [1, 2, 3, 4, 5]
    assert steps["loss_g"].notna().sum() == 1  # one generator update per five critic updates
    assert np.isfinite(steps["gradient_penalty"]).all()
    assert np.isfinite(steps["regressor_error"].dropna()).all() and steps["regressor_error"].notna().sum() == 1
    (held,) = metrics["regressor_heldout_error"].dropna()  # one row, written before the first step
    card = json.loads((run_dir / "model" / "card.json").read_text())
    fit = card["validation"]["regressor"]
    assert fit["heldout_error"] == pytest.approx(held) and fit["showers"] == 16 and fit["training_showers"] == 32
    assert fit["heldout_error"] < 0.3 * fit["mean_prediction_error"]  # it learned the conditions
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert ckpt["regressor_kwargs"]["shape"] == [8, 8, 6] and ckpt["regressor_fit"] == fit
    assert "pre-training the condition regressor" in (run_dir / "log.txt").read_text()


def test_failing_run_writes_status_failed_with_the_message(small_config) -> None:
    from calogen.gan.train import TrainingFailed

    config = small_config("bad", generator_config={"shape": [8, 8, 6], "no_such_option": 1})
    with pytest.raises(TrainingFailed):
        train(config)
    status = _status(Path(config.run_dir))
    assert status["state"] == "failed" and "no_such_option" in status["exit_reason"]


def test_heldout_sf_error_known_answer() -> None:
    from calogen.gan.train.loop import heldout_sf_error
    from calogen.showers import ShowerSet

    energy = np.linspace(50.0, 150.0, 40, dtype=np.float32)
    reference = np.full((40, 2, 2, 1), 0.5, np.float32) * (energy / 100.0)[:, None, None, None]  # SF 0.02
    held = ShowerSet(reference, energy, np.full(40, math.pi / 2, np.float32))
    assert heldout_sf_error(held, reference * 1.1) == pytest.approx(0.1, rel=1e-5)  # 10 % off in every bin
    assert heldout_sf_error(held, reference) == pytest.approx(0.0, abs=1e-7)


def test_cli_rejects_bad_input_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from calogen.__main__ import main

    assert main(["train", "--arch", "nope", "--data", "mc", "--run-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "nope" in err[0]
    assert main(["train", "--data", str(tmp_path / "missing.h5"), "--run-dir", str(tmp_path / "y")]) == 2
    assert "missing.h5" in capsys.readouterr().err


def test_sigterm_saves_checkpoint_and_reports_cancelled(tmp_path: Path, shower_file, small_nets, wait_for) -> None:
    data = shower_file(tmp_path / "small.h5", 48)
    run_dir = tmp_path / "term"
    cmd = [sys.executable, "-m", "calogen", "train", "--arch", "wgan-gp-atlas", "--data", str(data),
           "--epochs", "100000", "--steps-per-epoch", "3", "--batch", "4", "--heldout-size", "8",
           "--device", "cpu", "--threads", "1", "--run-dir", str(run_dir),
           "--generator-config", json.dumps(small_nets["generator_config"]),
           "--discriminator-config", json.dumps(small_nets["discriminator_config"])]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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


def test_empty_energy_window_is_an_error(small_config) -> None:
    from calogen.gan.train import TrainingFailed

    config = small_config("empty", energy_range_gev=(400.0, 500.0))  # the file holds 50-250 GeV
    with pytest.raises(TrainingFailed, match="no batch"):
        train(config)


def test_sigterm_cuts_a_slow_step_short(small_config, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from calogen.gan.train.data import ShowerFileSource

    original = ShowerFileSource._to_batch
    batches: list[int] = []

    def slow_third_batch(self, *args):  # the third batch takes a minute to read; SIGTERM arrives meanwhile
        batches.append(1)
        if len(batches) == 3:
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
            time.sleep(60)
        return original(self, *args)

    monkeypatch.setattr(ShowerFileSource, "_to_batch", slow_third_batch)
    config = small_config("cut", epochs=100)
    start = time.monotonic()
    train(config)
    assert time.monotonic() - start < 30  # not the 60 s of the slow batch
    status = _status(Path(config.run_dir))
    assert status["state"] == "cancelled"
    assert "SIGTERM" in status["exit_reason"] and "step 3 was cut short" in status["exit_reason"]
    assert load_checkpoint(Path(config.run_dir) / "checkpoints" / "last.pt")["step"] == 2
    monkeypatch.setattr(ShowerFileSource, "_to_batch", original)
    train(TrainConfig.from_dict(json.loads((Path(config.run_dir) / "config.json").read_text())), resume=True,
          max_steps=2)
    steps = pd.read_csv(Path(config.run_dir) / "metrics.csv").dropna(subset=["loss_d"])["step"].tolist()
    assert steps == [1, 2, 3, 4]  # the cut step is done again, once


def test_status_and_log_show_progress_and_eta(small_config) -> None:
    run_dir = train(small_config("eta", epochs=2, steps_per_epoch=3))
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
def test_settings_that_cannot_train_are_refused_by_the_config(tmp_path: Path, small_config, overrides: dict,
                                                               message: str) -> None:
    from calogen.gan.train import check_config

    with pytest.raises(ValueError, match=message):
        check_config(small_config("bad", **overrides))
    assert not (tmp_path / "bad").exists()


def test_check_config_needs_the_machine_and_the_data(tmp_path: Path, small_config, shower_file) -> None:
    from calogen.gan.train import check_config, planned_steps

    with pytest.raises(ValueError, match="arch='nope' is unknown"):
        check_config(small_config("a", arch="nope"))
    with pytest.raises(ValueError, match="'gpu' is not a training device"):
        check_config(small_config("a", device="gpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            check_config(small_config("a", device="cuda"))
    tiny = shower_file(tmp_path / "tiny.h5", 6)
    with pytest.raises(ValueError, match="leaves 3 showers for training .* fewer than one batch of 4"):
        check_config(small_config("a", data=str(tiny), heldout_mc=16))
    # log-uniform energies at 2-500 GeV: about 70 % lie above the 11 GeV the cut needs, so 92 % of the batches
    # of 4 keep two showers, but only 49 % of the batches of 2
    check_config(small_config("a", data="mc", energy_range_gev=(2.0, 500.0), batch=4))
    with pytest.raises(ValueError, match="only 4[0-9]% of the simulated batches"):
        check_config(small_config("a", data="mc", energy_range_gev=(2.0, 500.0), batch=2))
    check_config(small_config("a", data="mc", energy_range_gev=(2.0, 5.0), min_sum=0.0))
    assert planned_steps(small_config("a", epochs=2, steps_per_epoch=None)) == 2 * (32 // 4)
    assert planned_steps(small_config("a", data="mc", epochs=3, steps_per_epoch=7,
                                      two_step=True, stage1_epochs=2)) == 35


def test_format_duration() -> None:
    from calogen.gan.runs import format_duration

    assert [format_duration(s) for s in (None, 4.2, 89, 600, 3 * 3600 + 5 * 60)] == [
        "-", "4 s", "89 s", "10 min", "3 h 05 min"]


def test_cli_train_auto_device_prints_progress_and_holds_radians(tmp_path: Path, shower_file, small_nets) -> None:
    run_dir = tmp_path / "auto"
    data = shower_file(tmp_path / "small.h5", 48)
    cmd = [sys.executable, "-m", "calogen", "train", "--arch", "wgan-gp-atlas", "--data", str(data),
           "--theta-range", "70", "110", "--epochs", "1", "--steps-per-epoch", "2", "--batch", "2",
           "--heldout-size", "8", "--threads", "1", "--run-dir", str(run_dir),
           "--generator-config", json.dumps(small_nets["generator_config"]),
           "--discriminator-config", json.dumps(small_nets["discriminator_config"])]  # --device auto by default
    proc = subprocess.run(cmd, check=False, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "step 1/2 (50.0 %), epoch 1/1" in proc.stderr and "ETA" in proc.stderr
    assert _status(run_dir)["state"] == "finished"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["device"] == "auto"
    assert config["theta_range_rad"] == pytest.approx([math.radians(70.0), math.radians(110.0)])
    card = json.loads((run_dir / "model" / "card.json").read_text())
    assert card["condition_range"]["theta_rad"] == pytest.approx([math.radians(70.0), math.radians(110.0)])


def test_cli_train_with_batch_1_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    from calogen.__main__ import main

    assert main(["train", "--data", "mc", "--batch", "1", "--run-dir", str(tmp_path / "one")]) == 2
    assert not (tmp_path / "one").exists()


def test_config_holds_radians_and_reads_old_configs_in_degrees(small_config) -> None:
    config = small_config("a")
    assert config.theta_range_rad == pytest.approx((math.pi / 3, 2 * math.pi / 3))  # 60-120 deg by default
    assert config.condition_range.theta_deg == pytest.approx((60.0, 120.0))
    old = {k: v for k, v in config.to_dict().items() if k != "theta_range_rad"}
    old["theta_range_deg"] = [70.0, 110.0]  # config.json of a run made when the config held degrees
    converted = TrainConfig.from_dict(old)
    assert converted.theta_range_rad == pytest.approx((math.radians(70.0), math.radians(110.0)))
    assert "theta_range_deg" not in converted.to_dict()
    with pytest.raises(ValueError, match="not both"):
        TrainConfig.from_dict({**old, "theta_range_rad": [1.2, 1.9]})
    with pytest.raises(ValueError, match=r"theta_range_rad=\(60, 120\) must satisfy 0 < lo <= hi < pi radians"):
        small_config("b", theta_range_rad=(60.0, 120.0))  # degrees given where radians belong


def test_resume_of_a_run_whose_config_json_holds_degrees(small_config) -> None:
    config = small_config("old")
    train(config, max_steps=2)
    path = Path(config.run_dir) / "config.json"
    values = json.loads(path.read_text())
    values["theta_range_deg"] = [math.degrees(t) for t in values.pop("theta_range_rad")]
    path.write_text(json.dumps(values))
    train(TrainConfig.from_dict(json.loads(path.read_text())), resume=True)
    assert _status(Path(config.run_dir))["state"] == "finished"
    saved = json.loads(path.read_text())  # rewritten by the resumed run, in radians
    assert "theta_range_deg" not in saved and saved["theta_range_rad"] == pytest.approx(list(config.theta_range_rad))


def test_condition_regressor_learns_the_conditions(tmp_path: Path, shower_file, one_thread) -> None:
    from calogen.gan.train import regressor
    from calogen.io import read_showers

    showers = read_showers(shower_file(tmp_path / "r.h5", 96))
    train_set, held = showers.select(slice(0, 64)), showers.select(slice(64, None))
    config = TrainConfig(arch="wgan-gp-atlas", data=str(tmp_path / "r.h5"), preprocessing={"kind": "identity"},
                         min_sum=0.0, seed=5)
    net, kwargs = regressor.build(config, (8, 8, 6), torch.device("cpu"))
    assert kwargs == {"shape": [8, 8, 6]}
    x, e, t = (torch.from_numpy(a) for a in (train_set.showers, train_set.energy_gev, train_set.theta_rad))
    losses = regressor.pretrain(net, x, e, t, steps=150, seed=1)
    assert not any(p.requires_grad for p in net.parameters())  # frozen after pre-training
    fit = regressor.evaluate(net, held, config, device=torch.device("cpu"), mean_energy_gev=float(e.mean()),
                             mean_theta_rad=float(t.mean()))
    assert fit["showers"] == 32
    assert fit["heldout_error"] < 0.1 * fit["mean_prediction_error"]  # far better than predicting the mean
    assert fit["energy_relative_error"] < 0.05 and fit["angle_error_rad"] < 0.05  # 5 %, 50 mrad
    assert losses[-1] < 0.2 * losses[0]


def test_a_short_training_makes_showers_follow_the_requested_angle(tmp_path: Path, shower_file) -> None:
    # 3DGAN recipe on the dense networks given the angle: ~170 steps make the measured angle (the 3DGAN
    # barycentre observable) of generated showers correlate with the requested angle, which it does not at start
    from calogen.gan.nets import build_generator, measured_angle
    from calogen.io import read_showers

    data = shower_file(tmp_path / "angles.h5", 464)
    nets = {"generator_config": {"shape": [8, 8, 6], "energy_fraction": 0.02, "use_theta": True},
            "discriminator_config": {"shape": [8, 8, 6], "use_theta": True}}
    config = TrainConfig(arch="wgan-gp-atlas", data=str(data), epochs=4, steps_per_epoch=None, batch=8,
                         heldout_mc=64, select_last_k=1, device="cpu", seed=0, threads=1,
                         run_dir=str(tmp_path / "angles"), **nets)
    held = read_showers(data, start=400)
    energy, theta = torch.from_numpy(held.energy_gev), torch.from_numpy(held.theta_rad)

    def angle_correlation(generator: torch.nn.Module) -> float:
        with torch.no_grad():
            fake = generator.eval()(energy, theta, torch.randn(len(energy), 100, generator=torch.Generator()))
        return float(np.corrcoef(measured_angle(fake).numpy(), held.theta_rad)[0, 1])

    torch.manual_seed(config.seed)  # the trainer's initial weights
    before = angle_correlation(build_generator(config.arch, **config.generator_config))
    run_dir = train(config)
    trained = build_generator(config.arch, **config.generator_config)
    trained.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "last.pt")["generator"])
    after = angle_correlation(trained)
    assert before < 0.2 and after > before + 0.3, (before, after)

"""Data-parallel training with torchrun (2 CPU processes, gloo) gives the same checkpoint layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from calogen.gan.train import load_checkpoint, train
from test_train import REPO, SMALL, shower_file, small_config


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_torchrun_two_processes_matches_single_process_layout(tmp_path: Path) -> None:
    data = shower_file(tmp_path / "small.h5", 48)
    run_dir = tmp_path / "ddp"
    nets = ["--generator-config", json.dumps({"shape": list(SMALL), "energy_fraction": 0.02}),
            "--discriminator-config", json.dumps({"shape": list(SMALL)})]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "calogen.gan.train", "--arch", "wgan-gp-atlas", "--data", str(data), "--epochs", "1",
           "--steps-per-epoch", "2", "--batch", "4", "--heldout-size", "16", "--seed", "3", "--device", "cpu",
           "--threads", "1", "--run-dir", str(run_dir), *nets]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    single = train(small_config(tmp_path, "single", epochs=1, steps_per_epoch=2))
    a = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    b = load_checkpoint(single / "checkpoints" / "last.pt")
    assert set(a) == set(b)
    for net in ("generator", "discriminator"):
        assert {k: tuple(v.shape) for k, v in a[net].items()} == {k: tuple(v.shape) for k, v in b[net].items()}
    assert a["step"] == b["step"] == 2
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished" and status["world_size"] == 2
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics[metrics["sf_error"].isna()]["step"]) == [1, 2]  # only rank 0 writes
    assert (run_dir / "model" / "card.json").exists()

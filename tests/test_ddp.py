"""Data-parallel training: one step on two half-batches with averaged gradients equals one single-process step on
the whole batch (and does not without the averaging); torchrun with 2 CPU processes (gloo) trains a run with the
single-process checkpoint layout, rank 0 alone writing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist

from calogen.gan.nets import build_discriminator
from calogen.gan.objectives import ThreeDGANObjective
from calogen.gan.train import load_checkpoint, train
from calogen.gan.train.distributed import average_gradients
from calogen.paths import repo_root

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="this torch build has no torch.distributed")

_SHAPE = (8, 8, 6)
_BATCH = 8


def _one_step(shard: slice, average: bool, world: int) -> dict[str, torch.Tensor]:
    """One SGD update of a seeded discriminator on the showers ``shard`` of a fixed batch, with the 3DGAN loss
    (batch means; no label flips), the gradients averaged over ranks if ``average``. SGD is linear in the
    gradient, so rounding in the all-reduce stays at rounding level (RMSprop's first step is about lr x sign(g),
    which a rounding error can flip for a gradient near zero)."""
    torch.manual_seed(0)
    discriminator = build_discriminator("wgan-gp-atlas", shape=_SHAPE)
    data = torch.Generator().manual_seed(1)
    showers = torch.rand(_BATCH, *_SHAPE, generator=data)  # GeV
    energy = 50.0 + 200.0 * torch.rand(_BATCH, generator=data)
    theta = 1.1 + 0.9 * torch.rand(_BATCH, generator=data)
    objective = ThreeDGANObjective(preprocessing={"kind": "identity"}, label_flip=0.0)
    loss, _ = objective.batch_loss(discriminator, showers[shard], real=True,
                                   real_sum=showers[shard].sum(dim=(1, 2, 3)), energy_gev=energy[shard],
                                   theta_rad=theta[shard])
    optimiser = torch.optim.SGD(discriminator.parameters(), lr=0.1)
    loss.backward()
    if average:
        average_gradients(discriminator, world)
    optimiser.step()
    return {k: v.detach().clone() for k, v in discriminator.state_dict().items()}


def _rank(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """A spawned rank: its half of the batch, once with and once without gradient averaging."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        half = slice(rank * _BATCH // world, (rank + 1) * _BATCH // world)
        torch.save({"averaged": _one_step(half, True, world), "local": _one_step(half, False, world)},
                   Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_averaged_half_batches_take_the_whole_batch_step(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    whole = _one_step(slice(0, _BATCH), False, 1)
    torch.manual_seed(0)
    assert not _close(whole, build_discriminator("wgan-gp-atlas", shape=_SHAPE).state_dict())  # the step moved it
    for result in ranks:
        assert _close(result["averaged"], whole)  # both ranks took the single-process step
    # without the averaging each rank steps on its own half: neither matches, and the ranks drift apart
    assert not _close(ranks[0]["local"], whole) and not _close(ranks[1]["local"], whole)
    assert _max_difference(ranks[0]["local"], ranks[1]["local"]) > 1e3 * _max_difference(ranks[0]["averaged"], whole)


def test_torchrun_two_processes_matches_single_process_layout(tmp_path: Path, shower_file, small_nets,
                                                              small_config) -> None:
    data = shower_file(tmp_path / "small.h5", 48)
    run_dir = tmp_path / "ddp"
    nets = ["--generator-config", json.dumps(small_nets["generator_config"]),
            "--discriminator-config", json.dumps(small_nets["discriminator_config"])]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "calogen", "train", "--arch", "wgan-gp-atlas", "--data", str(data), "--epochs", "1",
           "--steps-per-epoch", "2", "--batch", "4", "--heldout-size", "16", "--seed", "3", "--device", "cpu",
           "--threads", "1", "--run-dir", str(run_dir), *nets]
    env = dict(os.environ, PYTHONPATH=str(repo_root()), OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    single = train(small_config("single", epochs=1, steps_per_epoch=2))
    a = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    b = load_checkpoint(single / "checkpoints" / "last.pt")
    assert set(a) == set(b)
    for net in ("generator", "discriminator"):
        assert {k: tuple(v.shape) for k, v in a[net].items()} == {k: tuple(v.shape) for k, v in b[net].items()}
    assert a["step"] == b["step"] == 2
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished" and status["world_size"] == 2
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics.dropna(subset=["loss_d"])["step"]) == [1, 2]  # only rank 0 writes
    assert (run_dir / "model" / "card.json").exists()

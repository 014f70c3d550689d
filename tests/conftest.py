"""Fixtures shared by the test modules: one torch thread, and for the training tests a small synthetic shower
file, a small training configuration and a polling helper."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch

if TYPE_CHECKING:
    from calogen.gan.train import TrainConfig

SMALL = (8, 8, 6)  # (x, y, layer) cells of the synthetic showers: a training step costs milliseconds
SMALL_NETS: dict[str, Any] = {"generator_config": {"shape": list(SMALL), "energy_fraction": 0.02},
                              "discriminator_config": {"shape": list(SMALL)}}


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run the test with one torch CPU thread (the Monte Carlo's timing- and order-independent default), then
    restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def write_small_showers(path: Path, n: int, shape: tuple[int, int, int] = SMALL, seed: int = 1) -> Path:
    """Synthetic electron-like showers at 50-250 GeV and 60-120 deg: a Gaussian transverse spot (1.2 cells) that
    drifts in y with cot(theta) from layer to layer, a z^2 exp(-z / (nz / 4)) longitudinal profile, SF = 2 %,
    10 % cell noise. Written with calogen.io; returns ``path``."""
    from calogen.io import write_showers
    from calogen.showers import ShowerSet

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


@pytest.fixture
def shower_file() -> Callable[..., Path]:
    """``shower_file(path, n, shape=(8, 8, 6), seed=1)``: see :func:`write_small_showers`."""
    return write_small_showers


@pytest.fixture
def small_nets() -> dict[str, Any]:
    """Options of the small ``wgan-gp-atlas`` networks: generator_config (shape (8, 8, 6), energy fraction 0.02,
    the SF of the synthetic showers) and discriminator_config (same shape)."""
    return {key: dict(value) for key, value in SMALL_NETS.items()}


@pytest.fixture
def small_config(tmp_path: Path) -> Callable[..., TrainConfig]:
    """``small_config(name, **overrides)``: a TrainConfig of the dense ``wgan-gp-atlas`` networks on 48 synthetic
    (8, 8, 6) showers in tmp_path/small.h5 (16 held out), 2 epochs x 3 steps of batch 4, run_dir tmp_path/name."""
    from calogen.gan.train import TrainConfig

    def make(name: str, **overrides: Any) -> TrainConfig:
        data = tmp_path / "small.h5"
        if not data.exists():
            write_small_showers(data, 48)
        values: dict[str, Any] = dict(arch="wgan-gp-atlas", data=str(data), epochs=2, steps_per_epoch=3, batch=4,
                                      heldout_mc=16, device="cpu", seed=3, run_dir=str(tmp_path / name), **SMALL_NETS)
        values.update(overrides)
        return TrainConfig(**values)

    return make


def poll(predicate: Callable[[], bool], timeout_s: float = 120.0, what: str = "condition") -> None:
    """Wait until ``predicate()`` is true, checking every 0.2 s; AssertionError naming ``what`` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """``wait_for(predicate, timeout_s=120, what="...")``: see :func:`poll`."""
    return poll

"""Sharded production on Dask: shard plan, manifest, worker-count independence, resume, refusal, atomicity."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import distributed
import h5py
import numpy as np
import pytest
import torch

from calogen.__main__ import main
from calogen.io import read_calochallenge, read_showers
from calogen.produce import (
    MANIFEST_NAME,
    ProductionConfig,
    ProductionMismatch,
    ShardsFailed,
    file_sha256,
    plan_shards,
    produce,
)
from calogen.showers import OutOfRangeError
from calogen.simulation import mc

THETA = (math.radians(80.0), math.radians(100.0))
REPO = Path(__file__).resolve().parent.parent

# Writes one shard whose file write stalls half-way, so the test can kill the process mid-write.
_STALLED_WRITER = """
import sys, time
import numpy as np
import calogen.io
from calogen.produce import make_shard, plan_shards
from calogen.sources import find_source

def stall(h5, *args, **kwargs):
    h5.create_dataset("ECAL", data=np.zeros((3, 51, 51, 25), np.float32))
    h5.flush()
    print("writing", flush=True)
    time.sleep(120)

calogen.io._fill_native = stall
plan = plan_shards(3, 3, 11, (2.0, 5.0), (1.3962634, 1.7453293))[0]
make_shard(plan, find_source("gflash"), sys.argv[1])
"""


def _cluster(n_workers: int) -> Iterator[Any]:
    threads = torch.get_num_threads()
    cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=False,
                                       dashboard_address=":0")
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()
    torch.set_num_threads(threads)  # the in-process workers set torch threads to 1 for this whole process


@pytest.fixture(scope="module")
def one_worker() -> Iterator[Any]:
    yield from _cluster(1)


@pytest.fixture(scope="module")
def two_workers() -> Iterator[Any]:
    yield from _cluster(2)


def _config(out: Path, **changes: Any) -> ProductionConfig:
    values: dict[str, Any] = {"source": "gflash", "n": 7, "shard_size": 3, "out_dir": str(out),
                              "energy_range_gev": (2.0, 5.0), "theta_range_rad": THETA, "seed": 11}
    values.update(changes)
    return ProductionConfig(**values)


def _manifest(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / MANIFEST_NAME).read_text()))


def _assert_same_content(a: Path, b: Path) -> None:
    """Same showers, conditions and attributes (HDF5 may place the same datasets at other file offsets)."""
    first, second = read_showers(a), read_showers(b)
    np.testing.assert_array_equal(first.showers, second.showers)
    np.testing.assert_array_equal(first.energy_gev, second.energy_gev)
    np.testing.assert_array_equal(first.theta_rad, second.theta_rad)
    assert first.attrs == second.attrs


def test_plan_has_full_shards_then_the_remainder_and_seeds_per_index() -> None:
    plans = plan_shards(10, 4, 5, (2.0, 50.0), THETA)
    assert [p.size for p in plans] == [4, 4, 2]
    energies = np.concatenate([p.energy_gev for p in plans])
    assert energies.min() >= 2.0 and energies.max() <= 50.0
    assert all(THETA[0] <= t <= THETA[1] for p in plans for t in p.theta_rad)
    alone = plan_shards(10, 4, 5, (2.0, 50.0), THETA, indices=[2])[0]  # a shard does not depend on the others
    assert alone.seed == plans[2].seed and np.array_equal(alone.energy_gev, plans[2].energy_gev)
    assert len({p.seed for p in plans}) == 3
    assert plan_shards(10, 4, 6, (2.0, 50.0), THETA)[0].seed != plans[0].seed


def test_produce_writes_shards_and_a_manifest(tmp_path: Path, two_workers: Any) -> None:
    result = produce(_config(tmp_path), client=two_workers, command="test")
    assert [r.showers for r in result.shards] == [3, 3, 1]
    assert result.showers_made == 7 and result.reused == 0
    manifest = _manifest(tmp_path)
    assert manifest["complete"] and manifest["n_shards"] == 3 and manifest["command"] == "test"
    assert manifest["parameters"]["source"] == "GFlash" and manifest["parameters"]["card_sha256"] is None
    plans = plan_shards(7, 3, 11, (2.0, 5.0), THETA)
    for entry, plan in zip(manifest["shards"], plans):
        path = tmp_path / entry["file"]
        assert entry["sha256"] == file_sha256(path) and entry["seed"] == plan.seed
        assert entry["seed_sequence"] == [11, plan.index] and entry["worker"] and entry["device"] == "cpu"
        showers = read_showers(path)
        assert len(showers) == entry["showers"] == plan.size
        np.testing.assert_array_equal(showers.energy_gev, plan.energy_gev)
        assert showers.attrs["shard"] == plan.index and showers.attrs["source"] == "GFlash"
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME, *(f"shard-0000{i}.h5" for i in range(3))]


def test_content_does_not_depend_on_the_number_of_workers(tmp_path: Path, one_worker: Any, two_workers: Any) -> None:
    a = produce(_config(tmp_path / "a", source="mc", n=3, shard_size=1), client=one_worker)
    b = produce(_config(tmp_path / "b", source="mc", n=3, shard_size=1), client=two_workers)
    assert [(r.index, r.seed) for r in a.shards] == [(r.index, r.seed) for r in b.shards]
    assert len(a.shards) == 3
    for ra, rb in zip(a.shards, b.shards):
        _assert_same_content(tmp_path / "a" / ra.file, tmp_path / "b" / rb.file)


def test_rerun_makes_only_missing_or_damaged_shards_with_the_same_content(tmp_path: Path, two_workers: Any) -> None:
    produce(_config(tmp_path), client=two_workers)
    (tmp_path / "copy").mkdir()
    for name in ("shard-00001.h5", "shard-00002.h5"):
        (tmp_path / "copy" / name).write_bytes((tmp_path / name).read_bytes())
    (tmp_path / "shard-00001.h5").unlink()
    with open(tmp_path / "shard-00002.h5", "ab") as fh:
        fh.write(b"x")  # no longer matches its checksum
    again = produce(_config(tmp_path), client=two_workers)
    assert sorted(r.index for r in again.made) == [1, 2] and again.reused == 1
    assert all(r.sha256 == file_sha256(tmp_path / r.file) for r in again.shards)
    for name in ("shard-00001.h5", "shard-00002.h5"):
        _assert_same_content(tmp_path / "copy" / name, tmp_path / name)
    assert produce(_config(tmp_path), client=two_workers).made == []


def test_rerun_without_seed_resumes_with_the_folders_seed(tmp_path: Path, two_workers: Any) -> None:
    first = produce(_config(tmp_path, seed=None), client=two_workers)
    (tmp_path / "shard-00000.h5").unlink()
    again = produce(_config(tmp_path, seed=None), client=two_workers)
    assert [r.index for r in again.made] == [0] and again.shards == [*again.made, *first.shards[1:]]


def test_other_parameters_into_the_same_folder_are_refused(tmp_path: Path, two_workers: Any,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    produce(_config(tmp_path), client=two_workers)
    with pytest.raises(ProductionMismatch, match="seed 11 there, 12 now"):
        produce(_config(tmp_path, seed=12), client=two_workers)
    code = main(["produce", "--source", "gflash", "--energy-range", "2", "6", "--theta-range", "80", "100",
                 "-n", "7", "--shard-size", "3", "--seed", "11", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert "energy_range_gev [2.0, 5.0] there, [2.0, 6.0] now" in err[0] and "another output folder" in err[0]


def test_monte_carlo_of_other_physics_is_not_mixed_in(tmp_path: Path, one_worker: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    first = produce(_config(tmp_path, source="mc", n=2, shard_size=1), client=one_worker)
    version = mc.PHYSICS_VERSION
    assert _manifest(tmp_path)["parameters"]["mc_physics"] == version
    assert read_showers(tmp_path / first.shards[0].file).attrs["mc_physics"] == version
    (tmp_path / "shard-00001.h5").unlink()
    monkeypatch.setattr(mc, "PHYSICS_VERSION", "2099.01.01")  # the Monte Carlo's physics changed since
    with pytest.raises(ProductionMismatch, match=f"mc_physics '{version}' there, '2099.01.01' now"):
        produce(_config(tmp_path, source="mc", n=2, shard_size=1), client=one_worker)
    assert not (tmp_path / "shard-00001.h5").exists()  # nothing made


def test_a_failed_write_leaves_no_file_and_the_rerun_completes(
    tmp_path: Path, two_workers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import calogen.io

    fill = calogen.io._fill_native

    def half_then_fail(h5: h5py.File, *args: Any, **kwargs: Any) -> None:
        h5.create_dataset("ECAL", data=np.zeros((1, 51, 51, 25), np.float32))
        raise OSError("disk full")

    monkeypatch.setattr(calogen.io, "_fill_native", half_then_fail)  # the workers are threads of this process
    with pytest.raises(ShardsFailed, match="3 of 3 shards failed .*disk full"):
        produce(_config(tmp_path), client=two_workers)
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_NAME]  # no shard file, no temporary file
    assert _manifest(tmp_path)["shards"] == [] and not _manifest(tmp_path)["complete"]
    monkeypatch.setattr(calogen.io, "_fill_native", fill)
    assert len(produce(_config(tmp_path), client=two_workers).made) == 3


def test_a_killed_run_leaves_no_shard_file_and_the_rerun_cleans_up(tmp_path: Path, two_workers: Any) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", _STALLED_WRITER, str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".shard-*.tmp")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.stdout is not None and proc.stdout.readline() == b"writing\n", proc.stderr
    finally:
        proc.kill()
        proc.communicate()
    assert not list(tmp_path.glob("shard-*.h5")) and len(list(tmp_path.glob(".shard-*.tmp"))) == 1
    result = produce(_config(tmp_path, n=3, shard_size=3), client=two_workers)
    assert len(result.made) == 1 and sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME, "shard-00000.h5"]


def test_model_source_records_its_card_checksum_and_other_formats(tmp_path: Path, two_workers: Any) -> None:
    card = Path(__file__).resolve().parent.parent / "models" / "conv2d" / "card.json"
    if not card.is_file():
        pytest.skip("the conv2d model is not installed")
    result = produce(_config(tmp_path / "m", source="conv2d", n=2, shard_size=2, energy_range_gev=(20.0, 50.0)),
                     client=two_workers)
    assert result.shards[0].card_sha256 == file_sha256(card) == _manifest(tmp_path / "m")["parameters"]["card_sha256"]
    result = produce(_config(tmp_path / "c", n=3, shard_size=2, file_format="calochallenge"), client=two_workers)
    showers = read_calochallenge(tmp_path / "c" / result.shards[1].file)
    assert len(showers) == 1 and showers.geometry == (51, 51, 25)


def test_bad_inputs_say_what_to_change(tmp_path: Path, two_workers: Any) -> None:
    with pytest.raises(OutOfRangeError, match="^energy 0.5-5 GeV is outside 1-500 GeV, the range the Monte Carlo "
                                              "accepts; choose condition ranges inside it$"):
        produce(_config(tmp_path, source="mc", energy_range_gev=(0.5, 5.0)), client=two_workers)
    with pytest.raises(OutOfRangeError, match="angle 20-100 deg is outside 30-150 deg, the range GFlash accepts"):
        produce(_config(tmp_path, theta_range_rad=(math.radians(20.0), math.radians(100.0))), client=two_workers)
    with pytest.raises(ValueError, match="give 0 < LO <= HI for both"):
        _config(tmp_path, energy_range_gev=(5.0, 2.0))
    assert not list(tmp_path.iterdir())  # nothing written for a refused production
    with pytest.raises(ValueError, match="choose one of: mc, gflash"):
        produce(_config(tmp_path, source="no-such-model"), client=two_workers)
    with pytest.raises(ValueError, match="shard_size=0"):
        _config(tmp_path, shard_size=0)
    with pytest.raises(ValueError, match="--resources GPU=1"):
        produce(_config(tmp_path, device="cuda"), client=two_workers)


def test_cli_on_a_local_cluster_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["produce", "--source", "gflash", "--energy-range", "2", "5", "--theta-range", "80", "100", "-n", "3",
                 "--shard-size", "2", "--seed", "1", "--workers", "1", "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0 and "3 showers in 2 shards made" in err and "showers/s overall" in err
    assert _manifest(tmp_path)["command"] == (
        f"python -m calogen produce --source gflash --particle e- --energy-range 2.0 5.0 --theta-range 80.0 100.0 "
        f"-n 3 --shard-size 2 --out {tmp_path} --seed 1 --workers 1 --device cpu --format native --torch-threads 1")

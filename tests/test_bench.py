"""Benchmark plumbing: every fast path gives the as-published showers; ratios are filled in. No timings asserted."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch

from calogen.bench import BenchResult, auto_batch_size, conv3d_paths, run_benchmark, time_call
from calogen.cli import bench as bench_cli
from calogen.showers import OutOfRangeError


def test_fast_paths_equal_the_published_forward_pass():
    outputs = {label: fn() for label, fn in conv3d_paths(torch.device("cpu"), 2)}
    labels = list(outputs)
    assert labels[0] == "eager fp32 (as published)"
    assert "rewrite + onnxruntime" in labels and "pixel-shuffle rewrite + inference_mode" in labels
    reference = np.asarray(outputs[labels[0]])
    assert reference.shape == (2, 51, 51, 25)
    for label in labels[1:]:
        out = outputs[label]
        out = out.numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
        np.testing.assert_allclose(out, reference, atol=1e-4, err_msg=label)


def test_run_benchmark_fills_ratios_and_checks(monkeypatch):
    rows = run_benchmark(batch_size=2, repeats=1, warmup=0, include_mc=False, include_gflash=False,
                         include_models=False, include_onnx=False)
    assert [r.kind for r in rows] == ["arch"] * len(rows) and rows[-1].name.startswith("conv2d")
    assert rows[0].speedup_vs_published == pytest.approx(1.0)
    for row in rows[1:-1]:
        assert row.max_abs_diff is not None and row.max_abs_diff < 1e-4
        assert row.sum_rel_diff is not None and row.sum_rel_diff < 1e-5
        assert row.speedup_vs_published == pytest.approx(rows[0].ms_per_shower / row.ms_per_shower)
        assert row.showers_per_s == pytest.approx(1e3 / row.ms_per_shower)


def test_time_call_reports_per_shower_median():
    calls = []
    sec, reps = time_call(lambda: calls.append(1), n_showers=10, device=torch.device("cpu"), warmup=2, repeats=3)
    assert len(calls) == 5 and reps == 3 and sec >= 0
    with pytest.raises(ValueError, match="repeats=0"):
        time_call(lambda: None, n_showers=1, device=torch.device("cpu"), repeats=0)


def test_cpu_batch_default():
    assert auto_batch_size(torch.device("cpu")) == 64


def test_table_and_json_shape(tmp_path):
    row = BenchResult("Monte Carlo", "mc", "analog cascade", "cpu", 2, 1500.0, 1 / 1.5, 3).to_dict()
    gan = BenchResult("conv3d", "model", "generate()", "cpu", 64, 15.0, 66.7, 5, speedup_vs_mc=100.0).to_dict()
    table = bench_cli.format_table([gan, row])
    assert "100x" in table and "Monte Carlo" in table
    json.dumps([gan, row])


def test_engines_are_timed_through_sources_at_conditions_they_accept():
    rows = run_benchmark(batch_size=2, repeats=1, warmup=0, include_mc=False, include_published=False,
                         include_models=False, energy_gev=20.0, theta_rad=math.radians(40.0))
    assert [(r.name, r.kind, r.batch_size) for r in rows] == [("GFlash", "gflash", 2)] and rows[0].ms_per_shower > 0
    with pytest.raises(OutOfRangeError, match="energy 600 GeV is outside 1-500 GeV, the range the Monte Carlo accepts"):
        run_benchmark(energy_gev=600.0, include_published=False, include_models=False, include_gflash=False)


def test_cli_rejects_bad_arguments():
    from calogen.cli._common import CliError

    args = argparse.Namespace(device="cpu", batch=0, energy=100.0, theta=90.0, mc_showers=1, repeats=1,
                              no_mc=True, no_onnx=True, compile=False, json=None, architectures=None, bf16=False)
    with pytest.raises(CliError, match="--batch 0"):
        bench_cli.run(args)
    args.batch, args.bf16 = 2, True
    with pytest.raises(CliError, match="--bf16 needs --architectures"):
        bench_cli.run(args)
    args.bf16 = False
    args.batch, args.theta = 2, 200.0
    with pytest.raises(CliError, match="give an angle between 0 and 180 deg"):
        bench_cli.run(args)
    args.theta = 170.0  # GFlash takes 30-150 deg: refused before anything is timed
    with pytest.raises(OutOfRangeError, match="angle 170 deg is outside 30-150 deg, the range GFlash accepts"):
        bench_cli.run(args)


def _factorised_model(folder, arch: str, reference_seed: int, shape_mse: float, validated: bool = True):
    from calogen.gan.factorised.model import build_factorised
    from calogen.gan.generate import save_model
    from calogen.showers import TRAINING_RANGE

    model = build_factorised(arch, {"shape": {"channels": [8, 8, 4], "latent_dim": 12, "speckle_dim": 4}})
    card = {"name": folder.name, "arch": arch, "config": model.config_json(),
            "condition_range": TRAINING_RANGE.to_json(), "preprocessing": {"kind": "identity"},
            "training": {"cpu_hours": 0.5, "showers_seen": 90_000}}
    if validated:
        card["validation"] = {"shape_mse": shape_mse, "sf_mre": 0.01, "classifier_auc_low": 0.9,
                              "classifier_auc_high": 0.8,
                              "reference": {"file": "reference.h5", "seed": reference_seed, "showers": 10}}
    return save_model(folder, model, card)


def test_architecture_table_times_both_and_reads_their_figures(tmp_path, capsys):
    from calogen.bench import architecture_table

    two = _factorised_model(tmp_path / "c2", "factorised-conv2d", 7, 0.03)
    three = _factorised_model(tmp_path / "c3", "factorised-conv3d", 7, 0.02)
    rows = architecture_table([two, three], batch_size=2, repeats=1, warmup=0, bf16=True)
    assert [r.arch for r in rows] == ["factorised-conv2d", "factorised-conv3d"]
    assert all(r.bf16_generation_ms_per_shower > 0 for r in rows)
    assert rows[0].train_cpu_ms_per_shower == pytest.approx(0.5 * 3.6e6 / 90_000)  # 20 ms
    assert rows[1].shape_mse == 0.02 and rows[0].parameters > 0 and rows[1].generation_ms_per_shower > 0
    args = argparse.Namespace(device="cpu", batch=2, energy=100.0, theta=90.0, mc_showers=1, repeats=1,
                              no_mc=True, no_onnx=True, compile=False, json=None,
                              architectures=[str(two), str(three)], bf16=True)
    assert bench_cli.run(args) == 0
    out = capsys.readouterr().out
    assert "factorised-conv3d" in out and "0.0200" in out and "1.00x" in out
    assert "c2: " in out and "with the shape network in bfloat16" in out


def test_architecture_table_refuses_figures_from_different_references(tmp_path):
    from calogen.bench import architecture_table

    two = _factorised_model(tmp_path / "c2", "factorised-conv2d", 7, 0.03)
    other = _factorised_model(tmp_path / "c3", "factorised-conv3d", 8, 0.02)
    with pytest.raises(ValueError, match="different reference samples"):
        architecture_table([two, other], batch_size=2, repeats=1, warmup=0)
    bare = _factorised_model(tmp_path / "c4", "factorised-conv3d", 7, 0.02, validated=False)
    with pytest.raises(ValueError, match="has no validation"):
        architecture_table([two, bare], batch_size=2, repeats=1, warmup=0)

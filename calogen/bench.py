"""Speed, measured side by side in one process: generators, their fast inference paths, GFlash and the Monte Carlo.

Installed models, GFlash and the Monte Carlo are timed through :func:`calogen.sources.sample`, the call the app
and the command line make; the random-weight networks through their forward pass. Every number is the median
over ``repeats`` timed calls after ``warmup`` untimed ones, on one device, with the device synchronised around
each call. Each fast path of the published ``conv3d`` generator is checked against
the as-published forward pass on the same inputs (largest cell difference and relative difference of the
summed energy), so a gain is never bought with different showers.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from calogen.memory import keep_freed_memory
from calogen.showers import Conditions

__all__ = [
    "ArchitectureRow",
    "BenchResult",
    "architecture_table",
    "auto_batch_size",
    "conv3d_paths",
    "run_benchmark",
    "time_call",
]

_ACTIVATION_BYTES_PER_SHOWER = 40e6  # conv3d fp32 activations peak at ~30 MB per shower, plus slack


@dataclass
class BenchResult:
    """One timed source: ms per shower and showers per second (median), with its speed-ups and physics check."""

    name: str  # what ran, e.g. "conv3d (published arch)", "Monte Carlo"
    kind: str  # "arch" (random weights), "model" (installed generator), "mc", "gflash"
    path: str  # the inference path, e.g. "eager fp32", "pixel-shuffle rewrite", "onnxruntime"
    device: str
    batch_size: int
    ms_per_shower: float
    showers_per_s: float
    repeats: int
    speedup_vs_mc: float | None = None
    speedup_vs_published: float | None = None
    max_abs_diff: float | None = None  # largest |cell difference| vs the as-published pass, network units
    sum_rel_diff: float | None = None  # relative difference of the mean summed energy vs the as-published pass

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(
    fn: Callable[[], Any], *, n_showers: int, device: torch.device, warmup: int = 1, repeats: int = 5
) -> tuple[float, int]:
    """Median seconds per shower of ``fn()`` (which makes ``n_showers``), and the number of timed repeats."""
    if repeats <= 0:
        raise ValueError(f"repeats={repeats} must be positive")
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / n_showers, repeats


def auto_batch_size(device: torch.device, *, cpu_default: int = 64, cap: int = 8192) -> int:
    """A batch that fits the device: on CUDA from the free memory and ~40 MB of conv3d activations per shower."""
    if device.type != "cuda":
        return cpu_default
    free, _total = torch.cuda.mem_get_info(device)
    fits = int(0.5 * free / _ACTIVATION_BYTES_PER_SHOWER)
    return max(1, min(cap, 2 ** int(math.log2(max(fits, 1)))))


def _network_inputs(batch: int, energy_gev: float, theta_rad: float, generator: torch.nn.Module,
                    device: torch.device, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(energy_gev (B,), theta_rad (B,), noise (B, latent_dim)) for a generator's forward pass, on ``device``."""
    latent_dim = int(cast(int, generator.latent_dim))  # every calogen generator has one (calogen.gan.nets)
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(batch, latent_dim, generator=gen)
    energy = torch.full((batch,), energy_gev)
    theta = torch.full((batch,), theta_rad)
    return energy.to(device), theta.to(device), noise.to(device)


def _export(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    torch.onnx.export(
        model.cpu(), inputs, str(path), input_names=["energy_gev", "theta_rad", "noise"],
        output_names=["showers"], dynamic_axes={k: {0: "batch"} for k in ("energy_gev", "theta_rad", "noise")},
        dynamo=False,
    )


def _onnx_runner(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> Callable[[], Any]:
    import onnxruntime as ort

    cpu_inputs = tuple(t.cpu() for t in inputs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="calogen-bench-") as workdir:
        path = Path(workdir) / "conv3d.onnx"
        with warnings.catch_warnings():  # the exporter's notes on constant folding are not problems
            warnings.simplefilter("ignore", UserWarning)
            _export(model, cpu_inputs, path)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"energy_gev": cpu_inputs[0].numpy(), "theta_rad": cpu_inputs[1].numpy(), "noise": cpu_inputs[2].numpy()}
    return lambda: session.run(None, feed)[0]


def conv3d_paths(
    device: torch.device, batch_size: int, *, energy_gev: float = 100.0, theta_rad: float = math.pi / 2,
    include_onnx: bool = True, include_compile: bool = False, seed: int = 0,
) -> Iterator[tuple[str, Callable[[], Any]]]:
    """The as-published conv3d forward pass first, then each fast path, on the same weights and inputs.

    Yields (path label, callable returning (B, 51, 51, 25) network units as a tensor or array).
    """
    from calogen.gan.nets import build_generator
    from calogen.gan.nets.conv3d import Conv3dGenerator

    torch.manual_seed(seed)
    published = build_generator("conv3d").to(device).eval()
    inputs = _network_inputs(batch_size, energy_gev, theta_rad, published, device, seed)

    def eager() -> torch.Tensor:
        with torch.no_grad():
            return published(*inputs)

    yield "eager fp32 (as published)", eager

    fast = build_generator("conv3d", fast_upsample=True).to(device).eval()
    fast.load_state_dict(published.state_dict())

    def rewrite() -> torch.Tensor:
        with torch.inference_mode():
            return fast(*inputs)

    yield "pixel-shuffle rewrite + inference_mode", rewrite

    fast_cl = cast(Conv3dGenerator, build_generator("conv3d")).to(device).eval()
    fast_cl.load_state_dict(published.state_dict())
    fast_cl.use_fast_path(True)  # pixel-shuffle rewrite + channels-last activations

    def channels_last() -> torch.Tensor:
        with torch.inference_mode():
            return fast_cl(*inputs)

    yield "rewrite + channels_last_3d", channels_last

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

        def bf16() -> torch.Tensor:
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                return fast(*inputs).float()

        yield "rewrite + bf16 autocast + cudnn.benchmark", bf16

        def bf16_cl() -> torch.Tensor:
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                return fast_cl(*inputs).float()

        yield "rewrite + channels_last_3d + bf16 autocast", bf16_cl

    if include_compile:
        compiled = torch.compile(fast, mode="max-autotune-no-cudagraphs" if device.type == "cpu" else "reduce-overhead")

        def compiled_call() -> torch.Tensor:
            with torch.inference_mode():
                return compiled(*inputs)

        yield "rewrite + torch.compile", compiled_call

    if include_onnx and device.type == "cpu":
        yield "rewrite + onnxruntime", _onnx_runner(fast, inputs)


def _conv2d_call(device: torch.device, batch: int, energy_gev: float, theta_rad: float) -> Callable[[], Any]:
    from calogen.gan.nets import build_generator

    torch.manual_seed(0)
    model = build_generator("conv2d").to(device).eval()
    inputs = _network_inputs(batch, energy_gev, theta_rad, model, device, 0)

    def call() -> torch.Tensor:
        with torch.inference_mode():
            return model(*inputs)

    return call


def _as_numpy(out: Any) -> np.ndarray:
    if isinstance(out, torch.Tensor):
        return out.detach().float().cpu().numpy()
    return np.asarray(out, dtype=np.float32)


def run_benchmark(
    *,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    energy_gev: float = 100.0,
    theta_rad: float = math.pi / 2,
    mc_showers: int = 2,
    repeats: int = 5,
    warmup: int = 1,
    include_mc: bool = True,
    include_gflash: bool = True,
    include_published: bool = True,
    include_models: bool = True,
    include_onnx: bool = True,
    include_compile: bool = False,
    models_dir: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[BenchResult]:
    """Time every source on one device in this process and fill in the speed-up ratios.

    energy_gev (GeV) and theta_rad (radians, pi/2 = normal incidence): the conditions of every call; they must
    lie in the range of each included engine (installed models are timed beyond their card's range too).
    batch_size: showers per generator call (None: chosen from the device's memory); mc_showers: showers per
    Monte Carlo call (it is slow: keep this small on a CPU). Returns the results, as-published conv3d first.
    Raises :class:`calogen.showers.OutOfRangeError` before timing anything when an included engine does not
    accept the conditions.
    """
    from calogen import sources
    from calogen.gan.generate import list_models, load_generator

    dev = torch.device(device)
    if dev.type == "cpu":
        keep_freed_memory()  # every row timed with the same allocator (the generators' fast path sets it)
    batch = batch_size or auto_batch_size(dev)
    say = progress or (lambda _msg: None)
    engines = [entry for entry, wanted in ((sources.find_source("mc"), include_mc),
                                           (sources.find_source("gflash"), include_gflash)) if wanted]
    for entry in engines:
        entry.check(Conditions.broadcast(energy_gev, theta_rad))
    results: list[BenchResult] = []

    if include_published:
        reference: np.ndarray | None = None
        for label, fn in conv3d_paths(dev, batch, energy_gev=energy_gev, theta_rad=theta_rad,
                                      include_onnx=include_onnx, include_compile=include_compile):
            say(f"conv3d: {label}")
            out = _as_numpy(fn())
            sec, reps = time_call(fn, n_showers=batch, device=dev, warmup=warmup, repeats=repeats)
            row = BenchResult("conv3d (published arch, random weights)", "arch", label, str(dev), batch,
                              1e3 * sec, 1.0 / sec, reps)
            if reference is None:
                reference = out
            else:
                row.max_abs_diff = float(np.abs(out - reference).max())
                ref_sum = float(reference.sum(axis=(1, 2, 3)).mean())
                row.sum_rel_diff = float(abs(out.sum(axis=(1, 2, 3)).mean() - ref_sum) / max(ref_sum, 1e-12))
            results.append(row)

        say("conv2d: eager fp32")
        fn = _conv2d_call(dev, batch, energy_gev, theta_rad)
        sec, reps = time_call(fn, n_showers=batch, device=dev, warmup=warmup, repeats=repeats)
        results.append(BenchResult("conv2d (arch, random weights)", "arch", "inference_mode fp32", str(dev), batch,
                                   1e3 * sec, 1.0 / sec, reps))

    if include_models:
        conditions = Conditions.broadcast(energy_gev, theta_rad, batch)
        for card in list_models(models_dir):
            if "error" in card:
                continue
            say(f"model {card['name']}")
            loaded = load_generator(card["path"], device=dev, fast=True)
            loaded.batch_size = batch  # one forward pass per call
            fn = partial(sources.sample, loaded, conditions, seed=0, allow_extrapolation=True)
            sec, reps = time_call(fn, n_showers=batch, device=dev, warmup=warmup, repeats=repeats)
            arch = card.get("arch", "?")
            results.append(BenchResult(card["name"], "model", f"generate() {arch}, GeV out", str(dev), batch,
                                       1e3 * sec, 1.0 / sec, reps))

    for entry in engines:
        say(entry.name)
        engine = sources.load_source(entry, str(dev))
        n = max(1, min(batch, 64)) if entry.kind == "gflash" else mc_showers
        fn = partial(sources.sample, engine, Conditions.broadcast(energy_gev, theta_rad, n), seed=0)
        timed = max(1, repeats // 2) if entry.kind == "gflash" else max(1, min(repeats, 3))
        sec, reps = time_call(fn, n_showers=n, device=dev, warmup=warmup if entry.kind == "gflash" else 0,
                              repeats=timed)
        path = "parametrised" if entry.kind == "gflash" else "analog cascade"
        results.append(BenchResult(entry.name, entry.kind, path, str(dev), n, 1e3 * sec, 1 / sec, reps))

    mc_ms = next((r.ms_per_shower for r in results if r.kind == "mc"), None)
    published_ms = results[0].ms_per_shower if include_published and results else None
    for row in results:
        if mc_ms is not None and row.kind != "mc":
            row.speedup_vs_mc = mc_ms / row.ms_per_shower
        if published_ms is not None and row.kind == "arch":
            row.speedup_vs_published = published_ms / row.ms_per_shower
    return results


@dataclass
class ArchitectureRow:
    """One trained generator in the Conv2D-versus-Conv3D comparison (Rehm et al., arXiv:2103.10142, Table 3):
    its cost to train and to run, and its physics figures measured against the same held-out reference."""

    name: str
    arch: str
    parameters: int  # trainable parameters of the whole generator
    train_cpu_ms_per_shower: float  # CPU time of the campaign per shower seen (card: cpu_hours / showers_seen)
    generation_ms_per_shower: float  # timed now, in this process, through calogen.sources.sample
    shape_mse: float | None  # from the card's validation
    sf_mre: float | None
    classifier_auc_low: float | None
    classifier_auc_high: float | None
    reference: str  # the reference file and seed the card's figures were measured on
    bf16_generation_ms_per_shower: float | None = None  # the same, the shape network in bfloat16 (not exact)


def _switched(switch: Callable[[bool], Any], on: bool, fn: Callable[[], Any]) -> Any:
    """``switch(on)``, then ``fn()``: a call on one of a generator's two inference paths."""
    switch(on)
    return fn()


def architecture_table(model_dirs: list[str | Path], *, device: str | torch.device = "cpu", batch_size: int = 64,
                       energy_gev: float = 100.0, theta_rad: float = math.pi / 2, repeats: int = 5,
                       warmup: int = 3, bf16: bool = False) -> list[ArchitectureRow]:
    """The Rehm et al. table for trained generators (campaign cards): parameters, training CPU time per shower,
    generation time per shower (timed here, one process, same conditions and batch, after ``warmup`` untimed
    batches: the first calls of a network build oneDNN's kernels and cost ~40 % more) and the validation figures of
    each card; with ``bf16``, also the generation time with the shape network in bfloat16
    (:meth:`calogen.gan.factorised.model.FactorisedGenerator.use_bf16`: not exact, validated apart with
    ``validate --bf16``). Raises ValueError when a card has no validation or the cards were validated on
    different reference samples (the figures would not be comparable)."""
    from calogen import sources
    from calogen.gan.generate import load_generator

    dev = torch.device(device)
    if dev.type == "cpu":
        keep_freed_memory()
    rows: list[ArchitectureRow] = []
    conditions = Conditions.broadcast(energy_gev, theta_rad, batch_size)
    for folder in model_dirs:
        loaded = load_generator(folder, device=dev, fast=True)
        card = loaded.card
        validation, training = card.get("validation") or {}, card.get("training") or {}
        if not validation:
            raise ValueError(f"{folder}: the card has no validation; run python -m calogen validate --model "
                             f"{folder} --reference data/reference.h5 --update-card first")
        reference = validation.get("reference") or {}
        loaded.batch_size = batch_size
        fn = partial(sources.sample, loaded, conditions, seed=0, allow_extrapolation=True)
        use_bf16 = getattr(loaded.module, "use_bf16", None)
        if bf16 and callable(use_bf16):
            # float32 and bfloat16 batches alternate, so that a machine's drift (a shared host) hits both alike
            exact, fast = partial(_switched, use_bf16, False, fn), partial(_switched, use_bf16, True, fn)
            time_call(fast, n_showers=batch_size, device=dev, warmup=warmup, repeats=1)
            pairs = [(time_call(exact, n_showers=batch_size, device=dev, warmup=1, repeats=1)[0],
                      time_call(fast, n_showers=batch_size, device=dev, warmup=1, repeats=1)[0])
                     for _ in range(repeats)]
            use_bf16(False)
            sec, bf16_ms = statistics.median(p[0] for p in pairs), 1e3 * statistics.median(p[1] for p in pairs)
        else:
            sec, _ = time_call(fn, n_showers=batch_size, device=dev, warmup=warmup, repeats=repeats)
            bf16_ms = None
        seen = float(training.get("showers_seen") or 0.0)
        cpu_ms = 3.6e6 * float(training.get("cpu_hours") or math.nan) / seen if seen else math.nan
        rows.append(ArchitectureRow(
            name=loaded.name, arch=str(card.get("arch")),
            parameters=sum(p.numel() for p in loaded.module.parameters()),
            train_cpu_ms_per_shower=cpu_ms, generation_ms_per_shower=1e3 * sec,
            shape_mse=validation.get("shape_mse"), sf_mre=validation.get("sf_mre"),
            classifier_auc_low=validation.get("classifier_auc_low"),
            classifier_auc_high=validation.get("classifier_auc_high"),
            reference=f"{reference.get('file')} (seed {reference.get('seed')}, {reference.get('showers')} showers)",
            bf16_generation_ms_per_shower=bf16_ms,
        ))
    if len({row.reference for row in rows}) > 1:
        raise ValueError("the cards were validated on different reference samples: "
                         + "; ".join(f"{row.name}: {row.reference}" for row in rows))
    return rows

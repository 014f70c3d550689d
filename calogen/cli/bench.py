"""``python -m calogen bench``: showers/s of every generator, its fast paths, GFlash and the Monte Carlo."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from calogen.cli._common import CliError, add_device_arg, deg_to_rad, resolve_device

__all__ = ["format_architecture_table", "format_table", "register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="measure speed side by side (generators, fast paths, GFlash, MC)")
    add_device_arg(p)
    p.add_argument("--batch", type=int, default=None, help="showers per generator call (default: by device memory)")
    p.add_argument("--energy", type=float, default=100.0, help="primary energy, GeV (default 100)")
    p.add_argument("--theta", type=float, default=90.0, help="angle, degrees (default 90 = normal incidence)")
    p.add_argument("--mc-showers", type=int, default=2, help="showers per Monte Carlo call (default 2)")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions; the median is reported")
    p.add_argument("--no-mc", action="store_true", help="skip the Monte Carlo")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime path")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile on a CPU)")
    p.add_argument("--bf16", action="store_true",
                   help="with --architectures: also time the factorised generators' bfloat16 shape network (not "
                   "exact; faster on CPUs with AVX512-BF16 or AMX)")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    p.add_argument("--architectures", nargs="+", metavar="MODEL_DIR", default=None,
                   help="instead: the Conv2D-versus-Conv3D table (Rehm et al.) of these trained, validated models: "
                   "parameters, training CPU ms per shower, generation ms per shower timed here, shape MSE, SF "
                   "error and classifier AUCs, with each one's ratio to the first")


def format_table(rows: list[dict]) -> str:
    """A plain-text table of benchmark rows."""
    head = (f"{'source':42s} {'path':42s} {'batch':>5s} {'ms/shower':>10s} {'showers/s':>11s} {'vs MC':>9s} "
            f"{'vs publ.':>8s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        vs_mc = f"{r['speedup_vs_mc']:.3g}x" if r.get("speedup_vs_mc") else ""
        vs_pub = f"{r['speedup_vs_published']:.2f}x" if r.get("speedup_vs_published") else ""
        lines.append(f"{r['name'][:42]:42s} {r['path'][:42]:42s} {r['batch_size']:5d} {r['ms_per_shower']:10.3f} "
                     f"{r['showers_per_s']:11.1f} {vs_mc:>9s} {vs_pub:>8s}")
    return "\n".join(lines)


def format_architecture_table(rows: list) -> str:
    """The Rehm et al. comparison as text; ratios are to the first row."""
    def num(value: float | None, fmt: str) -> str:
        return "n/a" if value is None or not math.isfinite(value) else format(value, fmt)

    first = rows[0]
    head = (f"{'model':12s} {'arch':20s} {'params':>9s} {'train ms/shower':>15s} {'gen ms/shower':>13s} "
            f"{'gen ratio':>9s} {'shape MSE':>9s} {'SF error':>8s} {'AUC low':>7s} {'AUC high':>8s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.name[:12]:12s} {r.arch[:20]:20s} {r.parameters:9d} "
                     f"{num(r.train_cpu_ms_per_shower, '.1f'):>15s} "
                     f"{num(r.generation_ms_per_shower, '.2f'):>13s} "
                     f"{num(r.generation_ms_per_shower / first.generation_ms_per_shower, '.2f'):>8s}x "
                     f"{num(r.shape_mse, '.4f'):>9s} {num(r.sf_mre, '.3f'):>8s} {num(r.classifier_auc_low, '.2f'):>7s} "
                     f"{num(r.classifier_auc_high, '.2f'):>8s}")
    lines.append(f"figures from each card's validation against {first.reference}; generation timed here, one "
                 "process, same batch and conditions")
    for r in rows:
        if r.bf16_generation_ms_per_shower is not None:
            lines.append(f"{r.name}: {r.bf16_generation_ms_per_shower:.2f} ms/shower with the shape network in "
                         f"bfloat16, {r.bf16_generation_ms_per_shower / r.generation_ms_per_shower:.2f} of the "
                         "float32 time in alternating batches (not exact: validate --model ... --bf16)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from calogen.bench import architecture_table, run_benchmark

    device = resolve_device(args.device)
    if args.batch is not None and args.batch <= 0:
        raise CliError(f"--batch {args.batch}: must be a positive integer")
    if not (math.isfinite(args.energy) and args.energy > 0.0):
        raise CliError(f"--energy {args.energy:g} GeV: give a positive energy")
    if not 0.0 < args.theta < 180.0:
        raise CliError(f"--theta {args.theta:g} deg: give an angle between 0 and 180 deg (90 = normal incidence)")
    if args.mc_showers <= 0 or args.repeats <= 0:
        raise CliError("--mc-showers and --repeats must be positive integers")
    if args.bf16 and not args.architectures:
        raise CliError("--bf16 needs --architectures (it times the factorised generators' bfloat16 path)")
    if args.architectures:
        from calogen.gan.generate import ModelLoadError

        try:
            table = architecture_table(args.architectures, device=device, batch_size=args.batch or 64,
                                       energy_gev=args.energy, theta_rad=float(deg_to_rad(args.theta)),
                                       repeats=args.repeats, bf16=args.bf16)
        except (ValueError, ModelLoadError) as exc:
            raise CliError(str(exc)) from None
        print(format_architecture_table(table))
        return 0
    results = run_benchmark(  # the Monte Carlo and GFlash check the conditions against their own ranges
        device=device, batch_size=args.batch, energy_gev=args.energy, theta_rad=float(deg_to_rad(args.theta)),
        mc_showers=args.mc_showers, repeats=args.repeats, include_mc=not args.no_mc,
        include_onnx=not args.no_onnx, include_compile=args.compile,
        progress=lambda msg: print(f"timing {msg} ...", file=sys.stderr),
    )
    rows = [r.to_dict() for r in results]
    print(format_table(rows))
    if args.json is not None:
        import torch

        meta = {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
                "energy_gev": args.energy, "theta_deg": args.theta,
                "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
        args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    return 0

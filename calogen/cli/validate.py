"""``python -m calogen validate``: compare a candidate shower file with a reference file.

    python -m calogen validate --reference mc.h5 --candidate gan.h5 --out report.json --html report.html
    python -m calogen validate --reference mc.h5 --candidate gan.h5 --out r.json --no-classifier \\
        --energy-points 50 100 200 --theta-bins 60 80 100 120

Compares only the (energy, angle) bins of the reference that the candidate covers (``--all-reference`` for
the whole files) with :func:`calogen.compare.compare_files`, writes the comparison as JSON
(:meth:`calogen.validation.comparison.Comparison.to_json`; optionally a self-contained HTML report) and prints
what was compared and the key figures with their meaning. ``--model`` measures an installed generator
(:func:`calogen.compare.validate_model`) and writes the card's validation entry.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from calogen.cli._common import CliError, describe_figure

if TYPE_CHECKING:
    from calogen.validation.comparison import ComparisonInfo

__all__ = ["coverage_lines", "register", "run"]

_SHOWN_BINS = 12  # covered bins listed one per line; the rest are counted
_SHOWERS_PER_FEATURE = 10  # below this many showers per high-level feature FPD and KPD mostly measure noise
_MODEL_SUMMARY = ("sf_mre", "sf_relative_error_max_bin", "bmre_profile_z", "classifier_auc_low",
                  "classifier_auc_high", "fpd_x1e3", "kpd_x1e3")
_SUMMARY = ("sf_mre", "separation_mean", "shape_mse", "ssim_L0.0001", "mscn_jsd", "fpd_x1e3", "kpd_x1e3",
            "classifier_auc_low", "classifier_auc_high", "cell_variance_ratio", "nn_ratio")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` sub-command."""
    parser = subparsers.add_parser(
        "validate",
        help="compare a candidate shower file with a reference (MC) file",
        description="Compute the validation metrics of a candidate sample against a reference sample, per "
        "energy and angle bin, and write them as JSON (and optionally an HTML report).",
    )
    parser.add_argument("--reference", required=True, help="reference shower file (native, 3DGAN or CaloChallenge)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--candidate", help="candidate shower file (same geometry and units)")
    source.add_argument("--model", help="an installed generator (name or folder): it generates one shower per "
                        "reference shower, at the same energy and angle")
    parser.add_argument("--out", default=None, help="output JSON file (required with --candidate)")
    parser.add_argument("--draws", type=int, default=1, metavar="K",
                        help="with --model: generated showers per reference shower (default 1); more draws shrink "
                        "the generator's share of the sampling noise in every bin")
    parser.add_argument("--bf16", action="store_true",
                        help="with --model: validate the generator's bfloat16 path (factorised generators; faster on "
                        "CPUs with AVX512-BF16 or AMX, not exact); --update-card writes its figures as the card's "
                        "validation_bf16, beside the float32 ones")
    parser.add_argument("--update-card", action="store_true",
                        help="with --model: write the measured figures into the model's card.json")
    parser.add_argument("--html", default=None, help="also write a self-contained HTML report here")
    parser.add_argument("--no-classifier", action="store_true",
                        help="skip the classifier test (saves a minute or two of CPU)")
    bins = parser.add_mutually_exclusive_group()
    bins.add_argument("--energy-bins", type=float, nargs="+", metavar="EDGE",
                      help="energy bin edges in GeV, e.g. 10 50 100 200 (at least two, increasing)")
    bins.add_argument("--energy-points", type=float, nargs="+", metavar="GEV",
                      help="compare within +-5 GeV of each of these energies (3DGAN style)")
    parser.add_argument("--theta-bins", type=float, nargs="+", metavar="DEG",
                        help="angle bin edges in degrees, e.g. 60 80 100 120 (at least two, increasing)")
    parser.add_argument("--max-showers", type=int, default=None, help="use at most this many showers of each file")
    parser.add_argument("--all-reference", action="store_true",
                        help="compare the whole files, also reference bins the candidate does not cover (by default "
                        "only the energy and angle bins that both files fill are compared)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random sub-samples and the classifier")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _edges_to_bins(values: list[float], name: str, unit: str) -> list[tuple[float, float]]:
    if len(values) < 2:
        raise CliError(f"--{name} needs at least two edges ({unit}); got {values}")
    if any(not math.isfinite(v) for v in values) or any(b <= a for a, b in itertools.pairwise(values)):
        raise CliError(f"--{name} edges must be finite and strictly increasing; got {values}")
    return list(itertools.pairwise(values))


def _run_model(args: argparse.Namespace) -> int:
    """Validate an installed generator against the held-out reference; optionally update its card."""
    from calogen.compare import validate_model
    from calogen.gan.cards import write_validation
    from calogen.gan.generate import resolve_model_dir
    from calogen.validation.bin_table import bin_table_lines
    from calogen.validation.comparison import Comparison

    if args.draws < 1:
        raise CliError(f"--draws {args.draws}: draw at least one shower per reference shower")
    command = "python -m calogen " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    validation = validate_model(
        args.model, args.reference, seed=args.seed if args.seed else 97531, classifier=not args.no_classifier,
        draws=args.draws, command=command, bf16=args.bf16,
        progress=None if args.quiet else (lambda m: print(f"[validate] {m}", file=sys.stderr)),
    )
    if args.out:
        Path(args.out).write_text(json.dumps(validation, indent=2) + "\n")
    if args.update_card:
        key = "validation_bf16" if args.bf16 else "validation"
        print(f"updated {write_validation(resolve_model_dir(args.model), validation, key=key)} ({key})",
              file=sys.stderr)
    if not args.quiet:
        comparison = Comparison.from_json(validation)
        print(f"compared {args.model} with {comparison.info.n_reference} reference showers of "
              f"{args.reference} inside the model's trained range, {args.draws} generated shower(s) per reference "
              "shower")
        for key in _MODEL_SUMMARY:
            print("  " + describe_figure(key, comparison.metrics.get(key)))
        print("per bin (SF err = |relative error|; hits err, angle d and core d = generated minus reference):")
        print("\n".join("  " + line for line in bin_table_lines(comparison.bins)))
    return 0


def _statistics_notes(info: ComparisonInfo) -> list[str]:
    """Warnings about figures that the sample sizes cannot support."""
    n = min(info.n_reference, info.n_candidate)
    dim = info.n_high_level_features or 0
    notes = [(f"note: every figure carries sampling noise from {n} showers per sample; to see its floor, validate a "
             "second Monte Carlo sample of the same size and conditions against the reference")]
    if dim and n < _SHOWERS_PER_FEATURE * dim:
        notes.append(f"note: FPD and KPD compare {dim} shower features; with {n} showers (fewer than "
                     f"{_SHOWERS_PER_FEATURE} per feature) their values are dominated by that noise")
    return notes


def coverage_lines(info: ComparisonInfo) -> list[str]:
    """What was compared, in words, from the ``info`` of a :func:`calogen.compare.compare_files` comparison."""
    ref, cand = info.reference_path, info.candidate_path
    coverage = info.coverage
    if coverage is None:
        return [(f"compared all {info.n_reference} reference showers ({ref}) with all {info.n_candidate} "
                f"candidate showers ({cand}), whatever their energies and angles (--all-reference)")]
    lines = [(f"compared {coverage.n_reference} of {coverage.n_reference_given} reference showers ({ref}) "
             f"with {coverage.n_candidate} of {coverage.n_candidate_given} candidate showers ({cand}), in "
             f"the {len(coverage.bins)} energy and angle bin(s) that both files fill:")]
    for covered in coverage.bins[:_SHOWN_BINS]:
        (e_lo, e_hi), (t_lo, t_hi) = covered.energy_gev, covered.theta_rad
        lines.append(f"  {e_lo:g}-{e_hi:g} GeV, {math.degrees(t_lo):.1f}-{math.degrees(t_hi):.1f} deg: "
                     f"{covered.n_reference} reference, {covered.n_candidate} candidate showers")
    if len(coverage.bins) > _SHOWN_BINS:
        lines.append(f"  ... and {len(coverage.bins) - _SHOWN_BINS} more bins (all in the JSON, info.coverage)")
    left_ref = coverage.n_reference_given - coverage.n_reference
    left_cand = coverage.n_candidate_given - coverage.n_candidate
    if left_ref or left_cand:
        lines.append(f"left out: {left_ref} reference and {left_cand} candidate showers outside those bins "
                     "(--all-reference compares the whole files)")
    return lines


def run(args: argparse.Namespace) -> int:
    """Validate and write the outputs; returns the exit code."""
    from calogen.compare import compare_files
    from calogen.plots.report import write_html_report
    from calogen.validation.binning import ENERGY_BIN_HALF_WIDTH_GEV

    if args.model:
        return _run_model(args)
    if args.update_card:
        raise CliError("--update-card needs --model (a card belongs to a model, not to a shower file)")
    if args.draws != 1:
        raise CliError("--draws needs --model (a candidate file holds the showers it holds)")
    if args.bf16:
        raise CliError("--bf16 needs --model (a candidate file holds the showers it holds)")
    if not args.out:
        raise CliError("--out is required with --candidate: the JSON file to write the metrics to")

    energy_bins = None
    if args.energy_bins:
        energy_bins = _edges_to_bins(args.energy_bins, "energy-bins", "GeV")
    elif args.energy_points:
        if any(not math.isfinite(e) or e <= 0 for e in args.energy_points):
            raise CliError(f"--energy-points must be positive GeV; got {args.energy_points}")
        energy_bins = [(e - ENERGY_BIN_HALF_WIDTH_GEV, e + ENERGY_BIN_HALF_WIDTH_GEV) for e in args.energy_points]
    theta_bins = None
    if args.theta_bins:
        theta_bins = [(math.radians(a), math.radians(b)) for a, b in _edges_to_bins(args.theta_bins, "theta-bins",
                                                                                   "deg")]
    if args.max_showers is not None and args.max_showers < 2:
        raise CliError(f"--max-showers {args.max_showers}: use at least 2")

    def say(stage: str) -> None:
        if not args.quiet:
            print(f"[validate] {stage}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    comparison = compare_files(
        args.reference, args.candidate, energy_bins_gev=energy_bins, theta_bins_rad=theta_bins,
        classifier=not args.no_classifier, max_showers=args.max_showers, seed=args.seed,
        match_conditions=not args.all_reference, progress=say,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(comparison.to_json(), indent=1))
    if args.html:
        write_html_report(comparison, args.html)
    if not comparison.bins:
        say("warning: no condition bin holds enough showers of both samples; per-bin metrics are empty")
    if not args.quiet:
        print("\n".join(coverage_lines(comparison.info)))
        print("figures (JSON name=value: figure, value, target: verdict (meaning)):")
        for key in _SUMMARY:
            if key in comparison.metrics:
                print("  " + describe_figure(key, comparison.metrics[key]))
        print("\n".join(_statistics_notes(comparison.info)))
        print(f"wrote {args.out}" + (f" and {args.html}" if args.html else "")
              + f" in {time.perf_counter() - start:.1f} s")
    return 0

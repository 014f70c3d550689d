"""Compare showers of any source with a reference sample: the one path to a :class:`Comparison`.

- :func:`compare_samples`: two samples in hand (reference, usually the Monte Carlo, and a candidate).
- :func:`compare_source`: a :class:`calogen.showers.Source` draws one shower at each reference shower's
  conditions, then :func:`compare_samples`.
- :func:`compare_files`: two shower files, cut by default to the condition bins the candidate covers.
- :func:`validate_model`: a model folder against a held-out reference file, for its card.

Each runs the distances of :mod:`calogen.validation` per condition bin where the papers do (3DGAN, Khattak et
al., IEEE Access 2021: sampling fraction, SSIM of mean showers) and on the whole samples otherwise
(CaloChallenge 2022, arXiv:2410.21611: separation power, FPD, KPD, the classifier test).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from calogen.showers import ShowerSet, Source
from calogen.validation import features as F
from calogen.validation.binning import ConditionBins, covered_conditions, sf_mre, sf_relative_error
from calogen.validation.classifier import ClassifierResult, Level, classifier_test
from calogen.validation.comparison import (
    BinRow,
    Comparison,
    ComparisonInfo,
    Correlations,
    Occupancy,
    Profile,
    SfPoint,
)
from calogen.validation.distances import (
    bmre,
    fpd,
    histogram_pair,
    kpd,
    nearest_neighbour_ratio,
    paired_subsets,
    separation_power,
    shape_mse,
    wasserstein,
)
from calogen.validation.images import (
    SSIM_DATA_RANGES,
    cell_variance_ratio,
    correlation_difference,
    correlation_matrix,
    mscn_jsd,
    ssim,
)

__all__ = ["Comparison", "compare_files", "compare_samples", "compare_source", "validate_model"]

Array = npt.NDArray[np.float64]
Say = Callable[[str], None]


def _mean_sem(values: Array) -> tuple[float, float]:
    if values.size == 0:
        return math.nan, math.nan
    sem = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.nan
    return float(values.mean()), sem


def _profile(ref_profiles: Array, cand_profiles: Array) -> Profile:
    """Mean profiles (N, n) -> their means and standard errors."""
    return Profile(ref_profiles.mean(axis=0), cand_profiles.mean(axis=0),
                   ref_profiles.std(axis=0) / math.sqrt(max(len(ref_profiles), 1)),
                   cand_profiles.std(axis=0) / math.sqrt(max(len(cand_profiles), 1)))


def _bin_row(reference: ShowerSet, candidate: ShowerSet, ref_sum: dict[str, Any], cand_sum: dict[str, Any],
             bin_edges: tuple[tuple[float, float], tuple[float, float]],
             mr: npt.NDArray[np.bool_], mc: npt.NDArray[np.bool_]) -> BinRow:
    """Figures of one (energy, angle) bin; mr, mc: the showers of each sample in it."""
    sf_r = ref_sum["scalars"]["sampling_fraction"][mr]
    sf_c = cand_sum["scalars"]["sampling_fraction"][mc]
    (sf_ref, sf_ref_err), (sf_cand, sf_cand_err) = _mean_sem(sf_r), _mean_sem(sf_c)
    hists = histogram_pair(sf_r, sf_c, bins=20)
    shapes: dict[str, float] = {}
    for axis in ("x", "y", "z"):
        pr = ref_sum[f"profile_{axis}"][mr].mean(axis=0)
        pc = cand_sum[f"profile_{axis}"][mc].mean(axis=0)
        shapes[f"shape_mse_{axis}"] = shape_mse(pr, pc)
        shapes[f"bmre_profile_{axis}"] = bmre(pr, pc)
    means = {f"{name}_{which}": float(np.mean(summary["scalars"][name][mask]))
             for name in ("measured_angle_rad", "barycentre_z_layer", "n_hits")
             for which, summary, mask in (("reference", ref_sum, mr), ("candidate", cand_sum, mc))}
    cells_r, cells_c = reference.showers[mr], candidate.showers[mc]  # each bin's cells, selected once
    for which, summary, mask, cells in (("reference", ref_sum, mr, cells_r), ("candidate", cand_sum, mc, cells_c)):
        means[f"core_5mm_{which}"] = float(np.mean(F.core_containment(cells, 5.1)))
        offset = summary["scalars"]["barycentre_x_mm"][mask]  # within a cell of the centre: uniform, 1.47 mm rms
        means[f"barycentre_x_rms_mm_{which}"] = float(np.sqrt(np.mean(offset**2))) if offset.size else math.nan
        means[f"layer_width_cells_{which}"] = float(np.mean(F.layer_width(cells))) if len(cells) else math.nan
        means[f"far_hits_{which}"] = float(np.mean(F.hits_beyond(cells, 6.0))) if len(cells) else math.nan
    mean_r = cells_r.mean(axis=0, dtype=np.float64)
    mean_c = cells_c.mean(axis=0, dtype=np.float64)
    l1, l1e4 = (ssim(mean_r, mean_c, data_range=d) for d in SSIM_DATA_RANGES)
    return BinRow(
        energy_gev=bin_edges[0], theta_rad=bin_edges[1], n_reference=int(mr.sum()), n_candidate=int(mc.sum()),
        sf_reference=sf_ref, sf_reference_err=sf_ref_err, sf_candidate=sf_cand, sf_candidate_err=sf_cand_err,
        sf_relative_error=sf_relative_error(sf_r, sf_c),
        sf_resolution_reference=float(sf_r.std() / max(sf_r.mean(), F.EPSILON)),
        sf_resolution_candidate=float(sf_c.std() / max(sf_c.mean(), F.EPSILON)),
        separation_sf=separation_power(hists.reference, hists.candidate), ssim_l1=l1, ssim_l1e4=l1e4,
        **shapes, **means,
    )


def _mean_of(rows: list[BinRow], name: str) -> float:
    values = [v for v in (getattr(r, name) for r in rows) if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else math.nan


def _check_samples(reference: ShowerSet, candidate: ShowerSet) -> None:
    if reference.geometry != candidate.geometry:
        raise ValueError(f"reference geometry {reference.geometry} differs from candidate geometry "
                         f"{candidate.geometry}; compare samples of the same detector window")
    if len(reference) < 2 or len(candidate) < 2:
        raise ValueError(f"need at least 2 showers in each sample (reference {len(reference)}, candidate "
                         f"{len(candidate)})")


def compare_samples(
    reference: ShowerSet,
    candidate: ShowerSet,
    *,
    bins: ConditionBins | None = None,
    classifier: bool = False,
    seed: int = 0,
    min_bin_count: int = 10,
    max_classifier_showers: int = 4000,
    classifier_epochs: int | None = None,
    max_neighbour_showers: int = 400,
    max_mscn_showers: int = 200,
    classifier_candidate: ShowerSet | None = None,
    progress: Say | None = None,
) -> Comparison:
    """Measure ``candidate`` against ``reference`` (same cell geometry, at least 2 showers each).

    bins: the (energy, angle) bins of the per-bin rows and of the SF error, default
    :meth:`ConditionBins.of_sample` of the reference (+-5 GeV around fixed energies, quantile bins otherwise);
    a row is made for every bin holding at least ``min_bin_count`` showers of each sample. classifier: also run
    the classifier test on high-level features and on cells (a minute or two of CPU). Random sub-samples and
    the classifier are seeded by ``seed``. classifier_candidate: the candidate showers the classifier test uses
    (default ``candidate``; :func:`compare_source` gives it the draw matched one to one to the reference's
    conditions). progress: called with the name of each stage.
    """
    say = progress or (lambda _msg: None)
    _check_samples(reference, candidate)
    ref_cond, cand_cond = reference.conditions, candidate.conditions
    bins = bins or ConditionBins.of_sample(ref_cond)
    say("features")
    ref_sum = F.shower_summary(reference.showers, ref_cond.energy_gev)
    cand_sum = F.shower_summary(candidate.showers, cand_cond.energy_gev)
    sf_ref, sf_cand = ref_sum["scalars"]["sampling_fraction"], cand_sum["scalars"]["sampling_fraction"]
    metrics: dict[str, float] = {}

    # (1) per-bin rows: sampling fraction, shapes, SSIM of mean showers
    say("condition bins")
    rows = []
    for e_bin, t_bin in bins:
        mr, mc = bins.mask(ref_cond, e_bin, t_bin), bins.mask(cand_cond, e_bin, t_bin)
        if mr.sum() >= min_bin_count and mc.sum() >= min_bin_count:
            rows.append(_bin_row(reference, candidate, ref_sum, cand_sum, (e_bin, t_bin), mr, mc))
    metrics["n_bins"] = float(len(rows))
    metrics["sf_mre"] = sf_mre(sf_ref, ref_cond, sf_cand, cand_cond, bins, min_count=min_bin_count)
    errors = [r.sf_relative_error for r in rows if r.sf_relative_error is not None]
    metrics["sf_relative_error_max_bin"] = max(errors) if errors else math.nan
    metrics["ssim_L1"], metrics["ssim_L0.0001"] = _mean_of(rows, "ssim_l1"), _mean_of(rows, "ssim_l1e4")
    for name in ("separation_sf", "shape_mse_z", "bmre_profile_z", "shape_mse_x", "shape_mse_y"):
        metrics[f"bins_mean_{name}"] = _mean_of(rows, name)
    sf_points = []
    for e_lo, e_hi in bins.energy_gev:  # SF against energy, all angles together
        mr = (ref_cond.energy_gev >= e_lo) & (ref_cond.energy_gev < e_hi)
        mc = (cand_cond.energy_gev >= e_lo) & (cand_cond.energy_gev < e_hi)
        if mr.sum() >= 2 and mc.sum() >= 2:
            sf_points.append(SfPoint(float(np.mean(ref_cond.energy_gev[mr])), *_mean_sem(sf_ref[mr]),
                                     *_mean_sem(sf_cand[mc])))

    # (2) whole-sample distributions and mean profiles
    say("distributions")
    features = {}
    for name, ref_values in ref_sum["scalars"].items():
        cand_values = cand_sum["scalars"][name]
        features[name] = hists = histogram_pair(ref_values, cand_values)
        metrics[f"separation_{name}"] = separation_power(hists.reference, hists.candidate)
        metrics[f"wasserstein_{name}"] = wasserstein(ref_values, cand_values)
    metrics["separation_mean"] = float(np.mean([metrics[f"separation_{name}"] for name in features]))
    profiles = {axis: _profile(ref_sum[f"profile_{axis}"], cand_sum[f"profile_{axis}"]) for axis in "xyz"}
    for axis, profile in profiles.items():
        metrics[f"shape_mse_{axis}"] = shape_mse(profile.reference, profile.candidate)
        metrics[f"bmre_profile_{axis}"] = bmre(profile.reference, profile.candidate)
    metrics["shape_mse"] = float(np.mean([metrics[f"shape_mse_{axis}"] for axis in "xyz"]))

    # (3) cells: spectrum, occupancy, texture, variance ratio (mode collapse), nearest neighbours (copies)
    say("cells")
    spectrum, occupancy = _cell_spectrum(reference, candidate)
    keep = spectrum.edges[:-1] >= F.HIT_THRESHOLD_GEV
    metrics["separation_cell_energy"] = separation_power(spectrum.reference[keep], spectrum.candidate[keep])
    metrics["bmre_sparsity"] = bmre(occupancy.reference, occupancy.candidate, floor_fraction=0.0)
    ir, ic = paired_subsets(len(reference), len(candidate), max_mscn_showers, seed)
    metrics["mscn_jsd"], mscn = mscn_jsd(reference.showers[ir], candidate.showers[ic])
    metrics["cell_variance_ratio"], per_layer = cell_variance_ratio(reference.showers, candidate.showers)
    metrics.update(nearest_neighbour_ratio(reference.showers, ref_cond.energy_gev, candidate.showers,
                                           cand_cond.energy_gev, max_showers=max_neighbour_showers, seed=seed))

    # (4) correlations and distances in the high-level feature space
    say("correlations, FPD, KPD")
    names = list(ref_sum["scalars"])
    ref_table = np.stack([ref_sum["scalars"][n] for n in names], axis=1)
    cand_table = np.stack([cand_sum["scalars"][n] for n in names], axis=1)
    diff, metrics["correlation_mse"] = correlation_difference(ref_table, cand_table)
    metrics["correlation_max_abs_difference"] = float(np.max(np.abs(diff)))
    correlation = Correlations(tuple(names), correlation_matrix(ref_table), correlation_matrix(cand_table), diff)
    metrics["fpd"], metrics["fpd_err"] = fpd(ref_sum["high_level"], cand_sum["high_level"], seed=seed)
    metrics["kpd"], metrics["kpd_err"] = kpd(ref_sum["high_level"], cand_sum["high_level"], seed=seed)
    metrics["fpd_x1e3"], metrics["kpd_x1e3"] = metrics["fpd"] * 1e3, metrics["kpd"] * 1e3

    # (5) classifier test
    results: dict[Level, ClassifierResult] = {}
    if classifier:
        say("classifier")
        against = candidate if classifier_candidate is None else classifier_candidate
        for level in ("high", "low"):
            results[level] = result = classifier_test(reference, against, level=level, seed=seed,
                                                      max_showers=max_classifier_showers, epochs=classifier_epochs)
            metrics[f"classifier_auc_{level}"], metrics[f"classifier_jsd_{level}"] = result.auc, result.jsd

    info = ComparisonInfo(
        n_reference=len(reference), n_candidate=len(candidate),
        reference_source=str(reference.attrs.get("source", "unknown")),
        candidate_source=str(candidate.attrs.get("source", "unknown")),
        geometry=reference.geometry, n_high_level_features=int(ref_sum["high_level"].shape[1]),
        energy_bins_gev=bins.energy_gev, theta_bins_rad=bins.theta_rad,
    )
    return Comparison(
        metrics={k: (v if math.isfinite(v) else None) for k, v in metrics.items()}, bins=tuple(rows), info=info,
        profiles=profiles, features=features, sf_vs_energy=tuple(sf_points), cell_spectrum=spectrum,
        occupancy=occupancy, mscn=mscn, correlation=correlation, variance_ratio_per_layer=per_layer,
        classifier=results,
    )


def _cell_spectrum(reference: ShowerSet, candidate: ShowerSet) -> tuple[Any, Occupancy]:
    """Histograms of all non-zero cell energies (60 log bins from 1 keV) and the occupancy at 30 thresholds."""
    cells_r = reference.showers[reference.showers > 0]
    cells_c = candidate.showers[candidate.showers > 0]
    hi = max(float(cells_r.max(initial=1e-3)), float(cells_c.max(initial=1e-3)))
    spectrum = histogram_pair(cells_r, cells_c, bins=np.geomspace(1e-6, hi * 1.001, 61))
    thresholds = np.geomspace(1e-6, max(hi, 1e-5), 30)
    n_cells = float(np.prod(reference.geometry))

    def occupancy(cells: npt.NDArray[np.float32], n_showers: int) -> Array:
        below = np.searchsorted(np.sort(cells), thresholds, side="right")
        return (cells.size - below) / (n_cells * n_showers)

    return spectrum, Occupancy(thresholds, occupancy(cells_r, len(reference)), occupancy(cells_c, len(candidate)))


def compare_source(
    source: Source,
    reference: ShowerSet,
    *,
    seed: int,
    bins: ConditionBins | None = None,
    classifier: bool = False,
    draws: int = 1,
    progress: Say | None = None,
    **options: Any,
) -> Comparison:
    """Draw ``draws`` showers of ``source`` at each reference shower's conditions (``source.sample`` of the
    reference conditions repeated ``draws`` times, ``seed=seed``) and compare them with :func:`compare_samples`
    (``options`` go there too). More draws shrink the candidate's share of the sampling noise of every per-bin
    mean (by 1 / sqrt(draws)); the reference's share stays. The classifier test uses the first draw, one shower
    at each reference shower's conditions, so that the conditions cannot tell the samples apart. The candidate is
    named after the source. Raises ValueError for ``draws`` < 1 and
    :class:`calogen.showers.OutOfRangeError` when the reference lies outside the source's condition range."""
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws={draws!r}: draw at least one shower per reference shower (a whole number)")
    say = progress or (lambda _msg: None)
    conditions = reference.conditions
    if draws > 1:
        conditions = conditions.select(np.tile(np.arange(len(conditions)), draws))
    say(f"generating {len(conditions)} showers with {source.name}")
    candidate = source.sample(conditions, seed=seed)
    candidate.attrs.setdefault("source", source.name)
    matched = candidate.select(slice(0, len(reference))) if draws > 1 else None
    return compare_samples(reference, candidate, bins=bins, classifier=classifier, seed=seed, progress=progress,
                           classifier_candidate=matched, **options)


def _check_files(reference: ShowerSet, candidate: ShowerSet, reference_path: Path, candidate_path: Path) -> None:
    if reference.geometry != candidate.geometry:
        raise ValueError(
            f"geometry mismatch: {reference_path} has {'x'.join(map(str, reference.geometry))} cells, "
            f"{candidate_path} has {'x'.join(map(str, candidate.geometry))}; compare files of the same detector "
            "window")
    for key in ("units", "detector"):
        a, b = reference.attrs.get(key), candidate.attrs.get(key)
        if a not in (None, "") and b not in (None, "") and str(a) != str(b):
            raise ValueError(f"{key} mismatch: {reference_path} has {key}={a!r}, {candidate_path} has {key}={b!r}; "
                             f"compare files with the same {key}")


def compare_files(
    reference_path: str | os.PathLike[str],
    candidate_path: str | os.PathLike[str],
    *,
    energy_bins_gev: Sequence[tuple[float, float]] | None = None,
    theta_bins_rad: Sequence[tuple[float, float]] | None = None,
    classifier: bool = True,
    max_showers: int | None = None,
    seed: int = 0,
    match_conditions: bool = True,
    progress: Say | None = None,
) -> Comparison:
    """Read two shower files (native, 3DGAN or CaloChallenge) and compare them.

    energy_bins_gev, theta_bins_rad: [(low, high), ...]; where not given, the reference's grid bins
    (:meth:`ConditionBins.grid`) with ``match_conditions``, else its :meth:`ConditionBins.of_sample` bins.
    max_showers: read at most this many showers of each file (the first ones, at least 2). match_conditions:
    compare only the (energy, angle) bins both files fill (:func:`calogen.validation.binning.covered_conditions`,
    recorded as ``info.coverage``); False compares the whole files. Raises ValueError naming both files when
    the geometry, units or detector differ, and when no bin is covered.
    """
    from calogen.io import read_any

    ref_path, cand_path = Path(reference_path), Path(candidate_path)
    if max_showers is not None and max_showers < 2:
        raise ValueError(f"max_showers={max_showers} is too small; use at least 2")
    reference, candidate = read_any(ref_path), read_any(cand_path)
    _check_files(reference, candidate, ref_path, cand_path)
    if max_showers is not None:
        reference, candidate = reference.select(slice(0, max_showers)), candidate.select(slice(0, max_showers))
    default = (ConditionBins.grid if match_conditions else ConditionBins.of_sample)(reference.conditions)
    bins = ConditionBins(tuple(energy_bins_gev or default.energy_gev), tuple(theta_bins_rad or default.theta_rad))
    coverage = None
    if match_conditions:
        reference, candidate, coverage = covered_conditions(reference, candidate, bins=bins)
        bins = coverage.condition_bins
    result = compare_samples(reference, candidate, bins=bins, classifier=classifier, seed=seed, progress=progress)
    info = dataclasses.replace(result.info, coverage=coverage, reference_path=str(ref_path),
                               candidate_path=str(cand_path))
    return dataclasses.replace(result, info=info)


def validate_model(
    model: str | os.PathLike[str],
    reference_path: str | os.PathLike[str],
    *,
    seed: int = 97531,
    classifier: bool = True,
    draws: int = 1,
    device: str = "cpu",
    command: str | None = None,
    progress: Say | None = None,
    bf16: bool = False,
) -> dict[str, Any]:
    """Measure a model folder against a held-out reference file; returns its card's ``validation`` entry
    (``bf16``: the generator's bfloat16 path, :func:`calogen.gan.generate.load_generator`; the entry says so).

    Only reference showers inside the model's condition range are used; the model draws ``draws`` showers at
    each of their conditions (:func:`compare_source`, bins of :meth:`ConditionBins.of_sample`). The entry holds
    the figures of :meth:`Comparison.to_card_json`, the per-bin SF table and the provenance of the measurement
    (reference file, its seed, sample size, draws, device, wall time, command).
    """
    from calogen.gan.generate import load_generator
    from calogen.io import read_any

    start = time.perf_counter()
    source = load_generator(model, device=device, fast=True, bf16=bf16)
    reference = read_any(reference_path)
    keep = source.condition_range.contains(reference.conditions)
    if not keep.any():
        raise ValueError(f"{reference_path}: no reference shower lies inside the model's range "
                         f"{source.condition_range.describe()}")
    reference = reference.select(keep)
    comparison = compare_source(source, reference, seed=seed, classifier=classifier, draws=draws,
                                progress=progress)
    attrs = reference.attrs
    return comparison.to_card_json(
        reference={"file": Path(reference_path).name, "seed": attrs.get("seed"), "source": attrs.get("source"),
                   "held_out": True, "showers": len(reference)},
        generator_seed=seed, draws_per_reference_shower=draws, classifier=classifier, device=str(device),
        precision="bfloat16 shape network" if bf16 else "float32",
        wall_time_s=round(time.perf_counter() - start, 1),
        measured=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), command=command,
    )

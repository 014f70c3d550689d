"""Sample-versus-sample comparisons: a reference (usually the Monte Carlo) against a candidate (a generator).

Distances on 1D distributions (separation power, Wasserstein, BMRE), on mean shapes (shape MSE, SSIM), on
texture (MSCN coefficients), on correlations, on the whole high-level feature space (FPD, KPD) and by a
classifier (:mod:`calogen.validation.classifier`), plus checks for mode collapse (per-cell variance ratio) and memorisation
(nearest-neighbour distances). :func:`compare` runs them all, per condition bin where the papers do, and
returns a JSON-able dict; :func:`validate_files` does the same for two shower files and writes the report.

Sources: 3DGAN (Khattak et al., IEEE Access 2021) for the sampling-fraction MRE and the +-5 GeV / 0.1 rad
condition bins; CaloChallenge 2022 (arXiv:2410.21611) for separation power, the classifier test, FPD and KPD
(Kansal et al., arXiv:2211.10295); Wang et al. 2004 (IEEE TIP 13, 600) for SSIM; Mittal et al. 2012 (IEEE TIP
21, 4695) for MSCN coefficients; ATLAS WGAN-GP studies for the variance and nearest-neighbour checks.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage, stats
from scipy.spatial.distance import jensenshannon

from calogen.validation import features as F
from calogen.validation.features import EPSILON

__all__ = [
    "ANGLE_BIN_HALF_WIDTH_RAD",
    "ENERGY_BIN_HALF_WIDTH_GEV",
    "bmre",
    "cell_variance_ratio",
    "compare",
    "condition_bins",
    "correlation_difference",
    "covered_conditions",
    "correlation_matrix",
    "default_energy_bins",
    "default_theta_bins",
    "fpd",
    "frechet_distance",
    "histogram_pair",
    "kpd",
    "mscn_coefficients",
    "mscn_jsd",
    "nearest_neighbour_ratio",
    "separation_power",
    "sf_mre",
    "shape_mse",
    "ssim",
    "validate_files",
    "wasserstein",
]

Array = npt.NDArray[np.float64]
Bins = Sequence[tuple[float, float]]

ENERGY_BIN_HALF_WIDTH_GEV = 5.0  # 3DGAN compares at fixed energies within +-5 GeV
ANGLE_BIN_HALF_WIDTH_RAD = 0.05  # 3DGAN angle bins are 0.1 rad wide
SSIM_DATA_RANGES = (1.0, 1e-4)  # dynamic-range parameters L used by the 3DGAN SSIM study
_N_HIST_BINS = 40


# ----------------------------------------------------------------------------------------------- 1D distributions
def histogram_pair(
    reference: Any, candidate: Any, *, bins: int | Any = _N_HIST_BINS, log: bool = False
) -> tuple[Array, Array, Array]:
    """Common binning of two samples: (edges (B+1,), reference counts (B,), candidate counts (B,)).

    With an integer ``bins`` the edges span the 0.1-99.9% quantiles of both samples together (log-spaced if
    ``log``); values outside are clipped into the first and last bin, so no entry is lost.
    """
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    cand = np.asarray(candidate, dtype=np.float64).reshape(-1)
    ref, cand = ref[np.isfinite(ref)], cand[np.isfinite(cand)]
    if np.ndim(bins) == 0:
        both = np.concatenate([ref, cand])
        if log:
            both = both[both > 0]
        if both.size == 0:
            lo, hi = (1e-6, 1.0) if log else (0.0, 1.0)
        else:
            lo, hi = np.quantile(both, [0.001, 0.999])
            if hi <= lo:
                lo, hi = (lo * 0.9, lo * 1.1 + 1e-12) if log else (lo - 0.5, hi + 0.5)
        edges = np.geomspace(lo, hi, int(bins) + 1) if log else np.linspace(lo, hi, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)

    def count(values: Array) -> Array:
        clipped = np.clip(values, edges[0], edges[-1])
        return np.histogram(clipped, bins=edges)[0].astype(np.float64)

    return edges, count(ref), count(cand)


def separation_power(reference_counts: Any, candidate_counts: Any) -> float:
    """CaloChallenge separation power S = 1/2 sum (h - g)^2 / (h + g) of the normalised histograms; in [0, 1]:
    0 for identical shapes, 1 for disjoint ones."""
    h = np.asarray(reference_counts, dtype=np.float64)
    g = np.asarray(candidate_counts, dtype=np.float64)
    h = h / max(h.sum(), EPSILON)
    g = g / max(g.sum(), EPSILON)
    both = h + g
    nonzero = both > 0
    return float(0.5 * np.sum((h[nonzero] - g[nonzero]) ** 2 / both[nonzero]))


def bmre(reference_counts: Any, candidate_counts: Any, *, floor_fraction: float = 1e-3) -> float:
    """Bin-wise mean relative error of two histograms (or profiles), after normalising each to unit sum.

    Mean over the bins whose normalised reference content exceeds ``floor_fraction`` of |<h - g>| / h.
    """
    h = np.asarray(reference_counts, dtype=np.float64).reshape(-1)
    g = np.asarray(candidate_counts, dtype=np.float64).reshape(-1)
    h = h / max(h.sum(), EPSILON)
    g = g / max(g.sum(), EPSILON)
    keep = h > floor_fraction
    if not np.any(keep):
        return float("nan")
    return float(np.mean(np.abs(h[keep] - g[keep]) / h[keep]))


def wasserstein(reference: Any, candidate: Any, *, standardise: bool = True) -> float:
    """1D Wasserstein (earth mover's) distance; divided by the reference standard deviation if ``standardise``
    (so that distances of different observables are comparable)."""
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    cand = np.asarray(candidate, dtype=np.float64).reshape(-1)
    if ref.size == 0 or cand.size == 0:
        return float("nan")
    distance = float(stats.wasserstein_distance(ref, cand))
    if standardise:
        distance /= max(float(ref.std()), EPSILON)
    return distance


# --------------------------------------------------------------------------------------------- condition binning
def default_energy_bins(energy_gev: Any, *, max_bins: int = 6,
                        max_grid_points: int = 12) -> list[tuple[float, float]]:
    """Energy bins: +-5 GeV around each distinct energy when there are at most ``max_grid_points`` of them (a
    grid of fixed energies, as the 3DGAN samples and data/reference.h5), otherwise ``max_bins`` quantile bins of
    the sample (the last bin closed)."""
    e = np.asarray(energy_gev, dtype=np.float64).reshape(-1)
    distinct = np.unique(np.round(e, 3))
    if distinct.size <= max_grid_points:
        return [(float(v - ENERGY_BIN_HALF_WIDTH_GEV), float(v + ENERGY_BIN_HALF_WIDTH_GEV)) for v in distinct]
    edges = np.quantile(e, np.linspace(0.0, 1.0, max_bins + 1))
    edges[-1] = np.nextafter(edges[-1], np.inf)
    return [(float(lo), float(hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True) if hi > lo]


def default_theta_bins(theta_rad: Any, *, max_bins: int = 3) -> list[tuple[float, float]]:
    """Angle bins: one bin when the sample spans less than 0.1 rad, else ``max_bins`` quantile bins."""
    t = np.asarray(theta_rad, dtype=np.float64).reshape(-1)
    lo, hi = float(t.min()), float(t.max())
    if hi - lo < 2 * ANGLE_BIN_HALF_WIDTH_RAD:
        return [(lo - ANGLE_BIN_HALF_WIDTH_RAD, hi + ANGLE_BIN_HALF_WIDTH_RAD)]
    edges = np.quantile(t, np.linspace(0.0, 1.0, max_bins + 1))
    edges[-1] = np.nextafter(edges[-1], np.inf)
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def condition_bins(energy_gev: Any, theta_rad: Any, *, max_points: int = 12,
                   ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Energy bins (GeV) and angle bins (rad) of a sample: +-5 GeV and +-0.05 rad around each grid point when
    it holds at most ``max_points`` distinct values (a reference made on a grid, as 3DGAN compares), else
    :func:`default_energy_bins` / :func:`default_theta_bins`."""
    t = np.asarray(theta_rad, dtype=np.float64).reshape(-1)
    grid = np.unique(np.round(t, 4))
    if grid.size <= max_points and t.max() - t.min() >= 2 * ANGLE_BIN_HALF_WIDTH_RAD:
        t_bins = [(float(v - ANGLE_BIN_HALF_WIDTH_RAD), float(v + ANGLE_BIN_HALF_WIDTH_RAD)) for v in grid]
    else:
        t_bins = default_theta_bins(t)
    return default_energy_bins(energy_gev, max_grid_points=max_points), t_bins


def covered_conditions(
    reference: Any,
    candidate: Any,
    *,
    energy_bins: Bins | None = None,
    theta_bins_rad: Bins | None = None,
    min_count: int = 10,
) -> tuple[Any, Any, dict[str, Any]]:
    """The part of both samples that lies in the condition bins the candidate covers.

    Bins: the given ones, else :func:`condition_bins` of the reference. An (energy, angle) bin is covered when
    both samples hold at least ``min_count`` showers in it; reference showers of the other bins are left out
    (so that a candidate made at 100 GeV is not judged against 2-200 GeV showers), and so are candidate
    showers outside every covered bin. Returns (reference part, candidate part, coverage) where coverage holds
    ``bins`` (one entry per covered bin: energy_gev, theta_rad, n_reference, n_candidate), the covered
    ``energy_bins_gev`` and ``theta_bins_rad``, and the numbers of showers used and given of each sample.
    Raises ValueError naming the candidate's conditions when no bin is covered.
    """
    e_ref, t_ref = reference.energy_gev.astype(np.float64), reference.theta_rad.astype(np.float64)
    e_cand, t_cand = candidate.energy_gev.astype(np.float64), candidate.theta_rad.astype(np.float64)
    default_e, default_t = condition_bins(e_ref, t_ref)
    e_bins = [tuple(map(float, b)) for b in (energy_bins or default_e)]
    t_bins = [tuple(map(float, b)) for b in (theta_bins_rad or default_t)]
    use_ref = np.zeros(len(e_ref), dtype=bool)
    use_cand = np.zeros(len(e_cand), dtype=bool)
    covered = []
    for e_lo, e_hi in e_bins:
        for t_lo, t_hi in t_bins:
            mr = _in_bin(e_ref, e_lo, e_hi) & _in_bin(t_ref, t_lo, t_hi)
            mc = _in_bin(e_cand, e_lo, e_hi) & _in_bin(t_cand, t_lo, t_hi)
            if mr.sum() >= min_count and mc.sum() >= min_count:
                use_ref |= mr
                use_cand |= mc
                covered.append({"energy_gev": [e_lo, e_hi], "theta_rad": [t_lo, t_hi],
                                "n_reference": int(mr.sum()), "n_candidate": int(mc.sum())})
    if not covered:
        raise ValueError(
            f"the candidate (energies {e_cand.min():g}-{e_cand.max():g} GeV, angles "
            f"{math.degrees(t_cand.min()):.1f}-{math.degrees(t_cand.max()):.1f} deg) has fewer than {min_count} "
            f"showers in every reference bin ({len(e_bins)} energy bins {_bins_text(e_bins, 1.0, 'GeV')}, "
            f"{len(t_bins)} angle bins {_bins_text(t_bins, 180.0 / math.pi, 'deg')}); make the candidate at the "
            "reference's conditions, or give bins that both samples fill")
    coverage = {
        "bins": covered,
        "energy_bins_gev": sorted({tuple(c["energy_gev"]) for c in covered}),
        "theta_bins_rad": sorted({tuple(c["theta_rad"]) for c in covered}),
        "n_reference": int(use_ref.sum()), "n_reference_given": len(e_ref),
        "n_candidate": int(use_cand.sum()), "n_candidate_given": len(e_cand),
    }
    return reference.select(use_ref), candidate.select(use_cand), coverage


def _bins_text(bins: Bins, scale: float, unit: str) -> str:
    return ", ".join(f"{lo * scale:.4g}-{hi * scale:.4g}" for lo, hi in bins) + f" {unit}"


def _in_bin(values: Array, lo: float, hi: float) -> npt.NDArray[np.bool_]:
    return (values >= lo) & (values < hi)


def sf_mre(
    sf_reference: Any,
    energy_reference: Any,
    sf_candidate: Any,
    energy_candidate: Any,
    energy_bins: Bins,
    *,
    min_count: int = 5,
) -> float:
    """3DGAN sampling-fraction MRE: mean over energy bins of |<SF_ref> - <SF_cand>| / <SF_ref>.

    Bins with fewer than ``min_count`` showers in either sample are skipped; NaN if none is left.
    """
    sf_r, e_r = np.asarray(sf_reference, float), np.asarray(energy_reference, float)
    sf_c, e_c = np.asarray(sf_candidate, float), np.asarray(energy_candidate, float)
    errors = []
    for lo, hi in energy_bins:
        mr, mc = _in_bin(e_r, lo, hi), _in_bin(e_c, lo, hi)
        if mr.sum() < min_count or mc.sum() < min_count:
            continue
        ref_mean = sf_r[mr].mean()
        errors.append(abs(ref_mean - sf_c[mc].mean()) / max(abs(ref_mean), EPSILON))
    return float(np.mean(errors)) if errors else float("nan")


# ------------------------------------------------------------------------------------------------- mean shapes
def shape_mse(reference_profile: Any, candidate_profile: Any) -> float:
    """MSE between two mean energy profiles, both divided by the peak of the reference profile (so a perfect
    match is 0 and a profile displaced by its own width gives O(0.1)); as the shower-shape MSE of Rehm et al."""
    ref = np.asarray(reference_profile, dtype=np.float64).reshape(-1)
    cand = np.asarray(candidate_profile, dtype=np.float64).reshape(-1)
    peak = max(float(np.max(np.abs(ref))), EPSILON)
    return float(np.mean(((ref - cand) / peak) ** 2))


def ssim(
    reference_image: Any,
    candidate_image: Any,
    *,
    data_range: float = 1.0,
    sigma_cells: float = 1.5,
) -> float:
    """Structural similarity (Wang et al. 2004) of two images of the same shape, with dynamic range L.

    For 3D showers (nx, ny, nz) the Gaussian window (sigma 1.5 cells) runs over x and y inside each layer, i.e.
    the layers are treated as 2D images and the SSIM map is averaged over all cells. K1 = 0.01, K2 = 0.03,
    C1 = (K1 L)^2, C2 = (K2 L)^2. Identical images give 1. ``compare`` applies it to the mean shower of each
    condition bin, with L = 1 and L = 1e-4 GeV (the two settings of the 3DGAN study).
    """
    a = np.asarray(reference_image, dtype=np.float64)
    b = np.asarray(candidate_image, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs images of the same shape; got {a.shape} and {b.shape}")
    sigma = [sigma_cells if k < 2 else 0.0 for k in range(a.ndim)]

    def blur(x: Array) -> Array:
        return ndimage.gaussian_filter(x, sigma=sigma, mode="constant", truncate=3.5)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


# ------------------------------------------------------------------------------------------------------ texture
def mscn_coefficients(showers: Any, *, sigma_cells: float = 7.0 / 6.0, c_gev: float = 1e-4) -> Array:
    """Mean-subtracted contrast-normalised coefficients (Mittal et al. 2012) of every non-zero cell.

    Per layer image I: mu = G*I, s = sqrt(|G*I^2 - mu^2|), MSCN = (I - mu) / (s + C), with a Gaussian window
    of ``sigma_cells`` (7/6, as BRISQUE) and C = ``c_gev`` (1e-4 GeV, half the hit threshold, in place of the
    C = 1 grey level of 8-bit images). Returns the coefficients of the cells with I > 0, flattened; (M,).
    """
    s = F.as_numpy(showers)
    sigma = (0.0, sigma_cells, sigma_cells, 0.0)
    mu = ndimage.gaussian_filter(s, sigma=sigma, mode="constant", truncate=3.0, output=np.float32)
    var = np.abs(ndimage.gaussian_filter(s * s, sigma=sigma, mode="constant", truncate=3.0, output=np.float32)
                 - mu * mu)
    nonzero = s > 0
    return (s[nonzero] - mu[nonzero]).astype(np.float64) / (np.sqrt(var[nonzero].astype(np.float64)) + c_gev)


def mscn_jsd(reference: Any, candidate: Any, *, bins: Any = None) -> tuple[float, Array, Array, Array]:
    """Jensen-Shannon distance (base 2, in [0, 1]) between MSCN-coefficient histograms of two shower samples.

    Returns (distance, edges, reference counts, candidate counts); default bins: 60 between -3 and 3.
    """
    edges = np.linspace(-3.0, 3.0, 61) if bins is None else np.asarray(bins, dtype=np.float64)
    _, h, g = histogram_pair(mscn_coefficients(reference), mscn_coefficients(candidate), bins=edges)
    if h.sum() == 0 or g.sum() == 0:
        return float("nan"), edges, h, g
    return float(jensenshannon(h, g, base=2)), edges, h, g


# --------------------------------------------------------------------------------------------------- correlations
def correlation_matrix(feature_matrix: Any) -> Array:
    """Pearson correlation of the columns of (N, F); constant columns get 0 off the diagonal, 1 on it."""
    x = np.asarray(feature_matrix, dtype=np.float64)
    x = x - x.mean(axis=0)
    std = x.std(axis=0)
    ok = std > EPSILON
    z = np.where(ok, x / np.where(ok, std, 1.0), 0.0)
    corr = (z.T @ z) / max(x.shape[0], 1)
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1.0, 1.0)


def correlation_difference(reference_features: Any, candidate_features: Any) -> tuple[Array, float]:
    """(candidate - reference correlation matrix (F, F), mean squared difference over the off-diagonal)."""
    diff = correlation_matrix(candidate_features) - correlation_matrix(reference_features)
    off = ~np.eye(diff.shape[0], dtype=bool)
    return diff, float(np.mean(diff[off] ** 2)) if off.any() else 0.0


# ------------------------------------------------------------------------------------- mode collapse, memorising
def _cell_mean_var(showers: npt.NDArray[np.float32], chunk: int = 256) -> tuple[Array, Array]:
    n = showers.shape[0]
    flat = showers.reshape(n, -1)
    total = np.zeros(flat.shape[1])
    total_sq = np.zeros(flat.shape[1])
    for start in range(0, n, chunk):
        block = flat[start : start + chunk].astype(np.float64)
        total += block.sum(axis=0)
        total_sq += (block * block).sum(axis=0)
    mean = total / max(n, 1)
    return mean, np.maximum(total_sq / max(n, 1) - mean**2, 0.0)


def cell_variance_ratio(reference: Any, candidate: Any, *, floor_fraction: float = 1e-3) -> tuple[float, Array]:
    """Per-cell variance of the candidate over that of the reference (mode collapse shows as ratios << 1).

    Cells whose mean reference energy is below ``floor_fraction`` of the hottest mean cell are ignored. Returns
    (median ratio, per-layer median ratio (nz,)).
    """
    ref, cand = F.as_numpy(reference), F.as_numpy(candidate)
    mean_r, var_r = _cell_mean_var(ref)
    _, var_c = _cell_mean_var(cand)
    keep = (mean_r > floor_fraction * max(mean_r.max(), EPSILON)) & (var_r > 0)
    ratio = np.full(mean_r.shape, np.nan)
    ratio[keep] = var_c[keep] / var_r[keep]
    per_layer = ratio.reshape(ref.shape[1:])
    layer_median = np.array(
        [np.nanmedian(per_layer[..., k]) if np.any(np.isfinite(per_layer[..., k])) else np.nan
         for k in range(per_layer.shape[-1])]
    )
    return (float(np.nanmedian(ratio)) if keep.any() else float("nan")), layer_median


def _paired_subsets(
    n_reference: int, n_candidate: int, size: int, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Random sorted subsets of both samples drawn from identically seeded generators (so that two samples of
    equal size get the same positions and a sample compared with itself gives exactly zero distance)."""
    ir = np.random.default_rng(seed).choice(n_reference, size=min(n_reference, size), replace=False)
    ic = np.random.default_rng(seed).choice(n_candidate, size=min(n_candidate, size), replace=False)
    return np.sort(ir), np.sort(ic)


def _nn_distances(queries: Array, pool: Array, *, exclude_self: bool) -> Array:
    """Euclidean distance of each query row to its nearest pool row; (Q,). The search runs in float32 through
    |a|^2 + |b|^2 - 2 a.b, then the winning pair's distance is recomputed exactly in float64."""
    import torch

    q = torch.as_tensor(queries, dtype=torch.float32)
    p = torch.as_tensor(pool, dtype=torch.float32)
    p_sq = (p * p).sum(dim=1)
    nearest = []
    for start in range(0, q.shape[0], 256):
        block = q[start : start + 256]
        d2 = (block * block).sum(dim=1, keepdim=True) + p_sq[None, :] - 2.0 * block @ p.T
        if exclude_self:
            rows = torch.arange(block.shape[0])
            d2[rows, rows + start] = float("inf")
        nearest.append(d2.argmin(dim=1))
    index = torch.cat(nearest).numpy()
    return np.sqrt(((np.asarray(queries, np.float64) - np.asarray(pool, np.float64)[index]) ** 2).sum(axis=1))


def nearest_neighbour_ratio(
    reference: Any,
    reference_energy_gev: Any,
    candidate: Any,
    candidate_energy_gev: Any,
    *,
    max_showers: int = 500,
    seed: int = 0,
) -> dict[str, float]:
    """Memorisation check on cells / primary energy (Euclidean distance).

    For up to ``max_showers`` candidates the distance to the nearest reference shower is compared with the
    nearest-neighbour distance inside the reference (itself excluded). A generator that copies its training
    data gives ratio -> 0 and a large 'exact_copy_fraction'; an independent sample gives ratio ~1.
    """
    ref, cand = F.as_numpy(reference), F.as_numpy(candidate)
    e_r = np.asarray(reference_energy_gev, dtype=np.float64)
    e_c = np.asarray(candidate_energy_gev, dtype=np.float64)
    ir, ic = _paired_subsets(len(ref), len(cand), max_showers, seed)
    r = ref[ir].reshape(len(ir), -1) / np.maximum(e_r[ir], EPSILON)[:, None].astype(np.float32)
    c = cand[ic].reshape(len(ic), -1) / np.maximum(e_c[ic], EPSILON)[:, None].astype(np.float32)
    active = (r > 0).any(axis=0) | (c > 0).any(axis=0)  # cells empty in both subsets add nothing
    r, c = r[:, active], c[:, active]
    d_cr = _nn_distances(c, r, exclude_self=False)
    d_rr = _nn_distances(r, r, exclude_self=True) if len(r) > 1 else np.array([np.nan])
    scale = float(np.median(d_rr))
    return {
        "nn_distance_candidate_to_reference": float(np.median(d_cr)),
        "nn_distance_reference_to_reference": scale,
        "nn_ratio": float(np.median(d_cr) / max(scale, EPSILON)),
        "exact_copy_fraction": float(np.mean(d_cr <= 1e-6 * max(scale, EPSILON))),
    }


# --------------------------------------------------------------------------------------------------- FPD and KPD
def _standardise(reference: Array, candidate: Array) -> tuple[Array, Array]:
    mean = reference.mean(axis=0)
    std = reference.std(axis=0)
    std = np.where(std > EPSILON, std, 1.0)
    return (reference - mean) / std, (candidate - mean) / std


def frechet_distance(reference: Any, candidate: Any) -> float:
    """Frechet distance between Gaussians fitted to two (N, F) samples:
    |mu_r - mu_c|^2 + Tr(S_r + S_c - 2 (S_r S_c)^(1/2))."""
    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(candidate, dtype=np.float64)
    mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
    s_x = np.atleast_2d(np.cov(x, rowvar=False))
    s_y = np.atleast_2d(np.cov(y, rowvar=False))
    # Tr (S_x S_y)^(1/2) = Tr (S_x^(1/2) S_y S_x^(1/2))^(1/2): symmetric, so eigh is stable and fast
    w, v = np.linalg.eigh(s_x)
    root_x = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    inner = np.linalg.eigvalsh(root_x @ s_y @ root_x)
    trace_covmean = float(np.sum(np.sqrt(np.clip(inner, 0.0, None))))
    return float(np.sum((mu_x - mu_y) ** 2) + np.trace(s_x) + np.trace(s_y) - 2.0 * trace_covmean)


def fpd(
    reference: Any,
    candidate: Any,
    *,
    n_points: int = 5,
    n_batches: int = 3,
    min_fraction: float = 0.3,
    seed: int = 0,
) -> tuple[float, float]:
    """Frechet physics distance (Kansal et al. 2022, as in the CaloChallenge): the Frechet distance of the
    standardised high-level features, extrapolated to infinite sample size.

    For ``n_points`` sample sizes between ``min_fraction`` x N and N (N = the smaller sample), the mean FD of
    ``n_batches`` random subsets is fitted by FD(n) = FPD + b / n; returns (FPD, its fit uncertainty). Reference
    and candidate subsets share their indices, so identical samples give exactly 0. The CaloChallenge reports
    FPD x 1e3.
    """
    x, y = _standardise(np.asarray(reference, float), np.asarray(candidate, float))
    n_max = min(len(x), len(y))
    sizes = np.unique(np.linspace(max(int(min_fraction * n_max), 10), n_max, n_points).astype(int))
    rng = np.random.default_rng(seed)
    means = []
    for size in sizes:
        values = []
        for _ in range(n_batches if size < n_max else 1):
            idx = rng.choice(n_max, size=size, replace=False)
            values.append(frechet_distance(x[idx], y[idx]))
        means.append(np.mean(values))
    if len(sizes) < 2:
        return float(means[0]), float("nan")
    design = np.stack([np.ones(len(sizes)), 1.0 / sizes], axis=1)
    coef, *_ = np.linalg.lstsq(design, np.asarray(means), rcond=None)
    residual = np.asarray(means) - design @ coef
    dof = max(len(sizes) - 2, 1)
    cov = np.linalg.pinv(design.T @ design) * float(residual @ residual) / dof
    return float(coef[0]), float(math.sqrt(max(cov[0, 0], 0.0)))


def kpd(
    reference: Any, candidate: Any, *, batch_size: int = 1000, n_batches: int = 10, seed: int = 0
) -> tuple[float, float]:
    """Kernel physics distance (Kansal et al. 2022): unbiased MMD^2 with the cubic polynomial kernel
    k(a, b) = (a.b / F + 1)^3 on standardised high-level features, median over ``n_batches`` random batches.

    Returns (median, interquartile range / 2). Batches of the two samples share indices and the U-statistic
    excludes all i = j terms, so identical samples give exactly 0. The CaloChallenge reports KPD x 1e3.
    """
    x, y = _standardise(np.asarray(reference, float), np.asarray(candidate, float))
    n_max = min(len(x), len(y))
    m = min(batch_size, n_max)
    if m < 2:
        return float("nan"), float("nan")
    dim = x.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_batches):
        idx = rng.choice(n_max, size=m, replace=False)
        a, b = x[idx], y[idx]
        k_aa = (a @ a.T / dim + 1.0) ** 3
        k_bb = (b @ b.T / dim + 1.0) ** 3
        k_ab = (a @ b.T / dim + 1.0) ** 3
        h = k_aa + k_bb - k_ab - k_ab.T
        np.fill_diagonal(h, 0.0)
        values.append(h.sum() / (m * (m - 1)))
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return float(q50), float((q75 - q25) / 2)


# ----------------------------------------------------------------------------------------------------- compare
def _finite(value: Any) -> Any:
    """JSON-able copy: numpy -> Python, non-finite floats -> None."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _mean_sem(values: Array) -> tuple[float, float]:
    if values.size == 0:
        return float("nan"), float("nan")
    sem = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else float("nan")
    return float(values.mean()), sem


def _profile_summary(ref_profiles: Array, cand_profiles: Array) -> dict[str, Any]:
    ref_mean, cand_mean = ref_profiles.mean(axis=0), cand_profiles.mean(axis=0)
    n_r, n_c = max(len(ref_profiles), 1), max(len(cand_profiles), 1)
    return {
        "reference": ref_mean,
        "candidate": cand_mean,
        "reference_err": ref_profiles.std(axis=0) / math.sqrt(n_r),
        "candidate_err": cand_profiles.std(axis=0) / math.sqrt(n_c),
    }


def _bin_row(
    ref: Any, cand: Any, ref_sum: dict[str, Any], cand_sum: dict[str, Any], mr: Array, mc: Array
) -> dict[str, Any]:
    """Metrics of one (energy, angle) bin."""
    sf_r = ref_sum["scalars"]["sampling_fraction"][mr]
    sf_c = cand_sum["scalars"]["sampling_fraction"][mc]
    row: dict[str, Any] = {"n_reference": int(mr.sum()), "n_candidate": int(mc.sum())}
    row["sf_reference"], row["sf_reference_err"] = _mean_sem(sf_r)
    row["sf_candidate"], row["sf_candidate_err"] = _mean_sem(sf_c)
    row["sf_relative_error"] = abs(row["sf_reference"] - row["sf_candidate"]) / max(abs(row["sf_reference"]), EPSILON)
    row["sf_resolution_reference"] = float(sf_r.std() / max(sf_r.mean(), EPSILON))
    row["sf_resolution_candidate"] = float(sf_c.std() / max(sf_c.mean(), EPSILON))
    _, h, g = histogram_pair(sf_r, sf_c, bins=20)
    row["separation_sf"] = separation_power(h, g)
    for axis in ("x", "y", "z"):
        pr = ref_sum[f"profile_{axis}"][mr].mean(axis=0)
        pc = cand_sum[f"profile_{axis}"][mc].mean(axis=0)
        row[f"shape_mse_{axis}"] = shape_mse(pr, pc)
        row[f"bmre_profile_{axis}"] = bmre(pr, pc)
    for name in ("measured_angle_rad", "barycentre_z_layer", "n_hits"):
        row[f"{name}_reference"] = float(np.mean(ref_sum["scalars"][name][mr]))
        row[f"{name}_candidate"] = float(np.mean(cand_sum["scalars"][name][mc]))
    mean_r = ref.showers[mr].mean(axis=0, dtype=np.float64)
    mean_c = cand.showers[mc].mean(axis=0, dtype=np.float64)
    for data_range in SSIM_DATA_RANGES:
        row[f"ssim_L{data_range:g}"] = ssim(mean_r, mean_c, data_range=data_range)
    return row


def compare(
    reference: Any,
    candidate: Any,
    *,
    energy_bins: Bins | None = None,
    theta_bins_rad: Bins | None = None,
    classifier: bool = False,
    seed: int = 0,
    min_bin_count: int = 10,
    max_classifier_showers: int = 4000,
    classifier_epochs: int | None = None,
    max_neighbour_showers: int = 400,
    max_mscn_showers: int = 200,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Compare a candidate sample with a reference sample (both :class:`calogen.io.ShowerSet`, same geometry).

    energy_bins: [(lo, hi), ...] GeV, default :func:`default_energy_bins` of the reference (+-5 GeV around
    fixed energies, quantile bins for a continuous spectrum); theta_bins_rad likewise (default
    :func:`default_theta_bins`). Per-bin rows are produced for every (energy, angle) bin with at least
    ``min_bin_count`` showers in both samples. classifier: also train the classifier test (low- and high-level;
    a minute or two of CPU), see :mod:`calogen.validation.classifier`.

    Returns a JSON-able dict:
      "metrics": flat {name: float} (sf_mre, separation_<feature>, wasserstein_<feature>, bmre_profile_<axis>,
          shape_mse_<axis>, ssim_L1, ssim_L0.0001, mscn_jsd, correlation_mse, cell_variance_ratio, nn_ratio,
          fpd, fpd_x1e3, kpd, kpd_x1e3, classifier_auc_low/high, ...),
      "bins": [per-bin row, ...] with the bin edges, counts, SF means and errors, shape metrics and SSIM,
      "histograms": the data behind the figures of :mod:`calogen.plots.figures` (feature histograms, mean profiles,
          SF vs energy, cell spectrum, sparsity curve, MSCN histograms, correlation matrices),
      "info": sample sizes, geometry, sources and the binning used.
    """
    say = progress or (lambda _msg: None)
    if reference.showers.shape[1:] != candidate.showers.shape[1:]:
        raise ValueError(
            f"reference geometry {tuple(reference.showers.shape[1:])} differs from candidate geometry "
            f"{tuple(candidate.showers.shape[1:])}; compare samples of the same detector window"
        )
    if len(reference) < 2 or len(candidate) < 2:
        raise ValueError(
            f"need at least 2 showers in each sample (reference {len(reference)}, candidate {len(candidate)})"
        )
    e_ref = reference.energy_gev.astype(np.float64)
    e_cand = candidate.energy_gev.astype(np.float64)
    t_ref = reference.theta_rad.astype(np.float64)
    t_cand = candidate.theta_rad.astype(np.float64)
    e_bins = [tuple(map(float, b)) for b in (energy_bins or default_energy_bins(e_ref))]
    t_bins = [tuple(map(float, b)) for b in (theta_bins_rad or default_theta_bins(t_ref))]
    for lo, hi in (*e_bins, *t_bins):
        if not hi > lo:
            raise ValueError(f"bin ({lo}, {hi}) is empty; give each bin as (low, high) with high > low")

    say("features")
    ref_sum = F.shower_summary(reference.showers, e_ref)
    cand_sum = F.shower_summary(candidate.showers, e_cand)
    metrics: dict[str, float] = {}
    hists: dict[str, Any] = {"features": {}}

    # (1) per-bin rows: sampling fraction, shapes, SSIM on mean showers
    say("condition bins")
    rows = []
    for e_lo, e_hi in e_bins:
        for t_lo, t_hi in t_bins:
            mr = _in_bin(e_ref, e_lo, e_hi) & _in_bin(t_ref, t_lo, t_hi)
            mc = _in_bin(e_cand, e_lo, e_hi) & _in_bin(t_cand, t_lo, t_hi)
            if mr.sum() < min_bin_count or mc.sum() < min_bin_count:
                continue
            row = {"energy_gev": [e_lo, e_hi], "theta_rad": [t_lo, t_hi]}
            row.update(_bin_row(reference, candidate, ref_sum, cand_sum, mr, mc))
            rows.append(row)
    metrics["n_bins"] = float(len(rows))
    bin_keys = ["sf_relative_error", "separation_sf", "shape_mse_z", "bmre_profile_z", "shape_mse_x",
                "shape_mse_y", *(f"ssim_L{d:g}" for d in SSIM_DATA_RANGES)]
    for key in bin_keys:
        values = [r[key] for r in rows if math.isfinite(r[key])]
        if key == "sf_relative_error":
            name = "sf_mre"  # 3DGAN: mean over condition bins of the relative SF error
        elif key.startswith("ssim"):
            name = key
        else:
            name = f"bins_mean_{key}"
        metrics[name] = float(np.mean(values)) if values else float("nan")
    sf_rows = []
    for e_lo, e_hi in e_bins:  # SF vs energy, all angles together
        mr, mc = _in_bin(e_ref, e_lo, e_hi), _in_bin(e_cand, e_lo, e_hi)
        if mr.sum() < 2 or mc.sum() < 2:
            continue
        sr = _mean_sem(ref_sum["scalars"]["sampling_fraction"][mr])
        sc = _mean_sem(cand_sum["scalars"]["sampling_fraction"][mc])
        sf_rows.append({"energy_gev": float(np.mean(e_ref[mr])), "reference": sr[0], "reference_err": sr[1],
                        "candidate": sc[0], "candidate_err": sc[1]})
    hists["sf_vs_energy"] = sf_rows

    # (2) whole-sample 1D distributions
    say("distributions")
    separations = []
    for name, ref_values in ref_sum["scalars"].items():
        cand_values = cand_sum["scalars"][name]
        edges, h, g = histogram_pair(ref_values, cand_values)
        sep = separation_power(h, g)
        separations.append(sep)
        metrics[f"separation_{name}"] = sep
        metrics[f"wasserstein_{name}"] = wasserstein(ref_values, cand_values)
        hists["features"][name] = {"edges": edges, "reference": h, "candidate": g}
    metrics["separation_mean"] = float(np.mean(separations))
    for axis in ("x", "y", "z"):
        prof = _profile_summary(ref_sum[f"profile_{axis}"], cand_sum[f"profile_{axis}"])
        hists[f"profile_{axis}"] = prof
        metrics[f"shape_mse_{axis}"] = shape_mse(prof["reference"], prof["candidate"])
        metrics[f"bmre_profile_{axis}"] = bmre(prof["reference"], prof["candidate"])
    metrics["shape_mse"] = float(np.mean([metrics[f"shape_mse_{a}"] for a in ("x", "y", "z")]))

    # (3) cells: spectrum, sparsity, MSCN, variance ratio, nearest neighbours
    say("cells")
    cells_r = reference.showers[reference.showers > 0]
    cells_c = candidate.showers[candidate.showers > 0]
    hi = max(float(cells_r.max(initial=1e-3)), float(cells_c.max(initial=1e-3)))
    spectrum_edges = np.geomspace(1e-6, hi * 1.001, 61)
    _, h, g = histogram_pair(cells_r, cells_c, bins=spectrum_edges)
    hists["cell_spectrum"] = {"edges": spectrum_edges, "reference": h, "candidate": g}
    keep = spectrum_edges[:-1] >= F.HIT_THRESHOLD_GEV
    metrics["separation_cell_energy"] = separation_power(h[keep], g[keep])
    thresholds = np.geomspace(1e-6, max(hi, 1e-5), 30)
    n_cells = float(np.prod(reference.showers.shape[1:]))
    occupancy_r = np.searchsorted(np.sort(cells_r), thresholds, side="right")
    occupancy_c = np.searchsorted(np.sort(cells_c), thresholds, side="right")
    occ_r = (cells_r.size - occupancy_r) / (n_cells * len(reference))
    occ_c = (cells_c.size - occupancy_c) / (n_cells * len(candidate))
    hists["sparsity"] = {"thresholds_gev": thresholds, "reference": occ_r, "candidate": occ_c}
    metrics["bmre_sparsity"] = bmre(occ_r, occ_c, floor_fraction=0.0)
    ir, ic = _paired_subsets(len(reference), len(candidate), max_mscn_showers, seed)
    jsd, edges, h, g = mscn_jsd(reference.showers[ir], candidate.showers[ic])
    metrics["mscn_jsd"] = jsd
    hists["mscn"] = {"edges": edges, "reference": h, "candidate": g}
    ratio, per_layer = cell_variance_ratio(reference.showers, candidate.showers)
    metrics["cell_variance_ratio"] = ratio
    hists["cell_variance_ratio_per_layer"] = per_layer
    metrics.update(
        nearest_neighbour_ratio(
            reference.showers, e_ref, candidate.showers, e_cand, max_showers=max_neighbour_showers, seed=seed
        )
    )

    # (4) correlations and high-level distances
    say("correlations, FPD, KPD")
    names = list(ref_sum["scalars"])
    ref_table = np.stack([ref_sum["scalars"][n] for n in names], axis=1)
    cand_table = np.stack([cand_sum["scalars"][n] for n in names], axis=1)
    diff, corr_mse = correlation_difference(ref_table, cand_table)
    metrics["correlation_mse"] = corr_mse
    metrics["correlation_max_abs_difference"] = float(np.max(np.abs(diff)))
    hists["correlation"] = {"names": names, "reference": correlation_matrix(ref_table),
                            "candidate": correlation_matrix(cand_table), "difference": diff}
    fpd_value, fpd_err = fpd(ref_sum["high_level"], cand_sum["high_level"], seed=seed)
    kpd_value, kpd_err = kpd(ref_sum["high_level"], cand_sum["high_level"], seed=seed)
    metrics.update({"fpd": fpd_value, "fpd_err": fpd_err, "fpd_x1e3": fpd_value * 1e3,
                    "kpd": kpd_value, "kpd_err": kpd_err, "kpd_x1e3": kpd_value * 1e3})

    # (5) classifier test
    if classifier:
        from calogen.validation.classifier import classifier_test

        say("classifier")
        for level in ("high", "low"):
            result = classifier_test(
                reference, candidate, level=level, seed=seed, max_showers=max_classifier_showers,
                epochs=classifier_epochs,
            )
            metrics[f"classifier_auc_{level}"] = result["auc"]
            metrics[f"classifier_jsd_{level}"] = result["jsd"]
            hists[f"classifier_{level}"] = result["histogram"]

    info = {
        "n_reference": len(reference),
        "n_candidate": len(candidate),
        "geometry": list(reference.showers.shape[1:]),
        "n_high_level_features": int(ref_sum["high_level"].shape[1]),  # the dimension FPD and KPD work in
        "reference_source": str(reference.attrs.get("source", "unknown")),
        "candidate_source": str(candidate.attrs.get("source", "unknown")),
        "energy_bins_gev": [list(b) for b in e_bins],
        "theta_bins_rad": [list(b) for b in t_bins],
        "ssim": "on the mean shower of each condition bin, per-layer Gaussian window sigma 1.5 cells",
    }
    return _finite({"metrics": metrics, "bins": rows, "histograms": hists, "info": info})


def _check_compatible(reference: Any, candidate: Any, reference_path: Path, candidate_path: Path) -> None:
    if reference.showers.shape[1:] != candidate.showers.shape[1:]:
        raise ValueError(
            f"geometry mismatch: {reference_path} has {'x'.join(map(str, reference.showers.shape[1:]))} cells, "
            f"{candidate_path} has {'x'.join(map(str, candidate.showers.shape[1:]))}; compare files of the same "
            "detector window"
        )
    for key in ("units", "detector"):
        a, b = reference.attrs.get(key), candidate.attrs.get(key)
        if a not in (None, "") and b not in (None, "") and str(a) != str(b):
            raise ValueError(
                f"{key} mismatch: {reference_path} has {key}={a!r}, {candidate_path} has {key}={b!r}; "
                f"compare files with the same {key}"
            )


def validate_files(
    reference_path: str | os.PathLike[str],
    candidate_path: str | os.PathLike[str],
    *,
    out_json: str | os.PathLike[str] | None,
    out_html: str | os.PathLike[str] | None = None,
    classifier: bool = True,
    energy_bins: Bins | None = None,
    theta_bins_rad: Bins | None = None,
    max_showers: int | None = None,
    seed: int = 0,
    match_conditions: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Read two shower files (native, 3DGAN or CaloChallenge), check that geometry and units match, run
    :func:`compare` and write the result as JSON (``out_json``) and optionally as an HTML report.

    max_showers: read at most this many showers of each file (the first ones). match_conditions: compare only
    the (energy, angle) bins that the candidate covers (:func:`covered_conditions`; recorded under
    ``info["coverage"]``); False compares the whole files. Raises ValueError naming both files when the
    geometry, units or detector differ.
    """
    from calogen.io import read_any

    ref_path, cand_path = Path(reference_path), Path(candidate_path)
    reference = read_any(ref_path)
    candidate = read_any(cand_path)
    _check_compatible(reference, candidate, ref_path, cand_path)
    if max_showers is not None:
        if max_showers < 2:
            raise ValueError(f"max_showers={max_showers} is too small; use at least 2")
        reference = reference.select(slice(0, max_showers))
        candidate = candidate.select(slice(0, max_showers))
    coverage = None
    if match_conditions:
        reference, candidate, coverage = covered_conditions(reference, candidate, energy_bins=energy_bins,
                                                            theta_bins_rad=theta_bins_rad)
        energy_bins, theta_bins_rad = coverage["energy_bins_gev"], coverage["theta_bins_rad"]
    result = compare(
        reference, candidate, energy_bins=energy_bins, theta_bins_rad=theta_bins_rad,
        classifier=classifier, seed=seed, progress=progress,
    )
    result["info"]["coverage"] = coverage
    result["info"]["reference_path"] = str(ref_path)
    result["info"]["candidate_path"] = str(cand_path)
    if out_json is not None:
        out = Path(out_json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    if out_html is not None:
        from calogen.plots.report import write_html_report

        write_html_report(result, out_html)
    return result

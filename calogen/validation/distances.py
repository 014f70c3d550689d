"""Distances between two samples of showers: 1D distributions, mean profiles, the high-level feature space and
nearest neighbours.

Separation power and the classifier-free distances follow the CaloChallenge 2022 (arXiv:2410.21611); FPD and KPD
are those of Kansal et al. (arXiv:2211.10295); the shape MSE is that of Rehm et al.; the nearest-neighbour check
for memorisation follows the ATLAS WGAN-GP studies. Every function takes arrays and returns numbers or arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from calogen.validation import features as F
from calogen.validation.features import EPSILON

__all__ = [
    "HistogramPair",
    "bmre",
    "fpd",
    "frechet_distance",
    "histogram_pair",
    "kpd",
    "nearest_neighbour_ratio",
    "paired_subsets",
    "separation_power",
    "shape_mse",
    "wasserstein",
]

Array = npt.NDArray[np.float64]
_N_HIST_BINS = 40


def _floats(values: Any) -> Array:
    """A 1-d float64 array; None entries (JSON's null for a non-finite number) become NaN."""
    return np.array([np.nan if v is None else v for v in np.asarray(values, dtype=object).reshape(-1)],
                    dtype=np.float64)


@dataclass(frozen=True)
class HistogramPair:
    """Two samples histogrammed with common bins: edges (B+1,) and the counts of each (B,)."""

    edges: Array
    reference: Array
    candidate: Array

    def __post_init__(self) -> None:
        for name in ("edges", "reference", "candidate"):
            object.__setattr__(self, name, _floats(getattr(self, name)))
        if not self.reference.shape == self.candidate.shape == (self.edges.size - 1,):
            raise ValueError(f"histogram with {self.edges.size} edges has {self.reference.size} reference and "
                             f"{self.candidate.size} candidate counts; give one count per bin")

    def to_json(self) -> dict[str, list[float]]:
        """``{"edges", "reference", "candidate"}`` as lists."""
        return {"edges": self.edges.tolist(), "reference": self.reference.tolist(),
                "candidate": self.candidate.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HistogramPair:
        """Inverse of :meth:`to_json`."""
        return cls(data["edges"], data["reference"], data["candidate"])


# ----------------------------------------------------------------------------------------------- 1D distributions
def histogram_pair(
    reference: Any, candidate: Any, *, bins: int | Any = _N_HIST_BINS, log: bool = False
) -> HistogramPair:
    """Common binning of two samples (any shape, flattened; non-finite values dropped).

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

    return HistogramPair(edges, count(ref), count(cand))


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


# ------------------------------------------------------------------------------------------------- mean shapes
def shape_mse(reference_profile: Any, candidate_profile: Any) -> float:
    """MSE between two mean energy profiles, both divided by the peak of the reference profile (so a perfect
    match is 0 and a profile displaced by its own width gives O(0.1)); as the shower-shape MSE of Rehm et al."""
    ref = np.asarray(reference_profile, dtype=np.float64).reshape(-1)
    cand = np.asarray(candidate_profile, dtype=np.float64).reshape(-1)
    peak = max(float(np.max(np.abs(ref))), EPSILON)
    return float(np.mean(((ref - cand) / peak) ** 2))



def paired_subsets(
    n_reference: int, n_candidate: int, size: int, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Random sorted subsets of both samples drawn from identically seeded generators (so that two samples of
    equal size get the same positions and a sample compared with itself gives exactly zero distance)."""
    ir = np.random.default_rng(seed).choice(n_reference, size=min(n_reference, size), replace=False)
    ic = np.random.default_rng(seed).choice(n_candidate, size=min(n_candidate, size), replace=False)
    return np.sort(ir), np.sort(ic)


def _nn_distances(queries: npt.ArrayLike, pool: npt.ArrayLike, *, exclude_self: bool) -> Array:
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
    ir, ic = paired_subsets(len(ref), len(cand), max_showers, seed)
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

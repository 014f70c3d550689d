"""Image-like comparisons of shower samples: structural similarity of mean showers, local texture (MSCN
coefficients), per-cell variances (mode collapse) and correlations between shower observables.

Sources: Wang et al. 2004 (IEEE TIP 13, 600) for SSIM, with the two dynamic ranges of the 3DGAN study (Khattak
et al., IEEE Access 2021); Mittal et al. 2012 (IEEE TIP 21, 4695) for MSCN coefficients; the ATLAS WGAN-GP
studies for the per-cell variance check.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial.distance import jensenshannon

from calogen.validation import features as F
from calogen.validation.distances import HistogramPair, histogram_pair
from calogen.validation.features import EPSILON

__all__ = [
    "SSIM_DATA_RANGES",
    "cell_variance_ratio",
    "correlation_difference",
    "correlation_matrix",
    "mscn_coefficients",
    "mscn_jsd",
    "ssim",
]

Array = npt.NDArray[np.float64]
SSIM_DATA_RANGES = (1.0, 1e-4)  # dynamic-range parameters L used by the 3DGAN SSIM study


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
    C1 = (K1 L)^2, C2 = (K2 L)^2. Identical images give 1. The comparison applies it to the mean shower of each
    condition bin, with each L of :data:`SSIM_DATA_RANGES` (1 and 1e-4 GeV, the two settings of the 3DGAN study).
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


def mscn_jsd(reference: Any, candidate: Any, *, bins: Any = None) -> tuple[float, HistogramPair]:
    """Jensen-Shannon distance (base 2, in [0, 1]) between MSCN-coefficient histograms of two shower samples.

    Returns (distance, the two histograms); default bins: 60 between -3 and 3. NaN when a sample has no
    non-zero cell.
    """
    edges = np.linspace(-3.0, 3.0, 61) if bins is None else np.asarray(bins, dtype=np.float64)
    hists = histogram_pair(mscn_coefficients(reference), mscn_coefficients(candidate), bins=edges)
    if hists.reference.sum() == 0 or hists.candidate.sum() == 0:
        return float("nan"), hists
    return float(jensenshannon(hists.reference, hists.candidate, base=2)), hists


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


# ------------------------------------------------------------------------------------------------ mode collapse
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
    n_layers = int(ref.shape[3])
    per_layer = ratio.reshape(-1, n_layers)  # (nx * ny, nz)
    layer_median = np.array(
        [np.nanmedian(per_layer[:, k]) if np.any(np.isfinite(per_layer[:, k])) else np.nan for k in range(n_layers)]
    )
    return (float(np.nanmedian(ratio)) if keep.any() else float("nan")), layer_median

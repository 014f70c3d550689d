"""Condition bins and the sampling-fraction error measured over them.

Two samples are compared like for like: showers are grouped into (energy, angle) bins and each bin of the
reference is set against the same bin of the candidate. The 3DGAN validation (Khattak et al., IEEE Access 2021)
compares at fixed energies within +-5 GeV and in 0.1 rad wide angle bins; a continuous spectrum gets quantile
bins instead. :func:`sf_mre`, the mean over bins of |<SF_ref> - <SF_cand>| / <SF_ref>, is the 3DGAN
sampling-fraction figure; every part of calogen (training's epoch selection, the comparison, model cards)
measures it through this one function.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from calogen.showers import Conditions, ShowerSet
from calogen.validation.features import EPSILON

__all__ = [
    "ANGLE_BIN_HALF_WIDTH_RAD",
    "ENERGY_BIN_HALF_WIDTH_GEV",
    "ConditionBins",
    "Coverage",
    "CoveredBin",
    "covered_conditions",
    "default_energy_bins",
    "default_theta_bins",
    "in_bin",
    "sf_bin_errors",
    "sf_mre",
    "sf_relative_error",
]

ENERGY_BIN_HALF_WIDTH_GEV = 5.0  # 3DGAN compares at fixed energies within +-5 GeV
ANGLE_BIN_HALF_WIDTH_RAD = 0.05  # 3DGAN angle bins are 0.1 rad wide
Bin = tuple[float, float]  # (low, high), half-open [low, high)


def in_bin(values: npt.ArrayLike, lo: float, hi: float) -> npt.NDArray[np.bool_]:
    """bool (N,): which values lie in the half-open bin [lo, hi)."""
    v = np.asarray(values, dtype=np.float64)
    return (v >= lo) & (v < hi)


def _quantile_bins(values: npt.NDArray[np.float64], n_bins: int) -> list[Bin]:
    """``n_bins`` equal-count bins of ``values``, the last one closed (its upper edge just above the maximum)."""
    edges = np.quantile(values, np.linspace(0.0, 1.0, n_bins + 1))
    edges[-1] = np.nextafter(edges[-1], np.inf)
    return [(float(lo), float(hi)) for lo, hi in itertools.pairwise(edges) if hi > lo]


def default_energy_bins(energy_gev: npt.ArrayLike, *, max_bins: int = 6, max_grid_points: int = 12) -> list[Bin]:
    """Energy bins, GeV: +-5 GeV around each distinct energy when there are at most ``max_grid_points`` of them
    (a grid of fixed energies, as the 3DGAN samples and data/reference.h5), otherwise ``max_bins`` quantile bins
    of the sample (the last bin closed)."""
    e = np.asarray(energy_gev, dtype=np.float64).reshape(-1)
    distinct = np.unique(np.round(e, 3))
    if distinct.size <= max_grid_points:
        return [(float(v - ENERGY_BIN_HALF_WIDTH_GEV), float(v + ENERGY_BIN_HALF_WIDTH_GEV)) for v in distinct]
    return _quantile_bins(e, max_bins)


def default_theta_bins(theta_rad: npt.ArrayLike, *, max_bins: int = 3) -> list[Bin]:
    """Angle bins, rad: one bin when the sample spans less than 0.1 rad, else ``max_bins`` quantile bins."""
    t = np.asarray(theta_rad, dtype=np.float64).reshape(-1)
    lo, hi = float(t.min()), float(t.max())
    if hi - lo < 2 * ANGLE_BIN_HALF_WIDTH_RAD:
        return [(lo - ANGLE_BIN_HALF_WIDTH_RAD, hi + ANGLE_BIN_HALF_WIDTH_RAD)]
    return _quantile_bins(t, max_bins)


def _as_bins(bins: Sequence[Sequence[float]], name: str) -> tuple[Bin, ...]:
    out = tuple((float(lo), float(hi)) for lo, hi in bins)
    if not out:
        raise ValueError(f"no {name} bins given; give at least one (low, high) bin")
    for lo, hi in out:
        if not hi > lo:
            raise ValueError(f"{name} bin ({lo:g}, {hi:g}) is empty; give each bin as (low, high) with high > low")
    return out


@dataclass(frozen=True)
class ConditionBins:
    """Energy bins (GeV) times angle bins (rad), each half-open [low, high); the cells a comparison runs over."""

    energy_gev: tuple[Bin, ...]
    theta_rad: tuple[Bin, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "energy_gev", _as_bins(self.energy_gev, "energy"))
        object.__setattr__(self, "theta_rad", _as_bins(self.theta_rad, "angle"))

    @classmethod
    def of_sample(cls, conditions: Conditions, *, energy_gev: Sequence[Bin] | None = None,
                  theta_rad: Sequence[Bin] | None = None) -> ConditionBins:
        """The given bins, and for any not given :func:`default_energy_bins` / :func:`default_theta_bins` of
        ``conditions`` (a reference sample)."""
        return cls(tuple(energy_gev or default_energy_bins(conditions.energy_gev)),
                   tuple(theta_rad or default_theta_bins(conditions.theta_rad)))

    @classmethod
    def grid(cls, conditions: Conditions, *, max_points: int = 12) -> ConditionBins:
        """Bins of a sample made on a grid: +-5 GeV and +-0.05 rad around each grid point when there are at most
        ``max_points`` distinct values (as 3DGAN compares), else the quantile bins of :meth:`of_sample`."""
        t = conditions.theta_rad
        grid = np.unique(np.round(t, 4))
        if grid.size <= max_points and t.max() - t.min() >= 2 * ANGLE_BIN_HALF_WIDTH_RAD:
            t_bins = [(float(v - ANGLE_BIN_HALF_WIDTH_RAD), float(v + ANGLE_BIN_HALF_WIDTH_RAD)) for v in grid]
        else:
            t_bins = default_theta_bins(t)
        return cls(tuple(default_energy_bins(conditions.energy_gev, max_grid_points=max_points)), tuple(t_bins))

    @classmethod
    def energy_quantiles(cls, energy_gev: npt.ArrayLike, *, max_bins: int = 10, min_per_bin: int = 10
                         ) -> ConditionBins:
        """Equal-count energy bins (at most ``max_bins``, at least ``min_per_bin`` showers each) and one angle bin
        holding every angle: the binning for two samples made at the same conditions (training's held-out set)."""
        e = np.sort(np.asarray(energy_gev, dtype=np.float64).reshape(-1))
        n_bins = max(1, min(max_bins, e.size // max(min_per_bin, 1)))
        return cls(tuple(_quantile_bins(e, n_bins)), ((0.0, math.pi),))

    def __iter__(self) -> Iterator[tuple[Bin, Bin]]:
        """(energy bin, angle bin) of every cell, energy-major."""
        for e_bin in self.energy_gev:
            for t_bin in self.theta_rad:
                yield e_bin, t_bin

    def mask(self, conditions: Conditions, energy_bin: Bin, theta_bin: Bin) -> npt.NDArray[np.bool_]:
        """bool (N,): the showers of ``conditions`` in one (energy, angle) cell."""
        return in_bin(conditions.energy_gev, *energy_bin) & in_bin(conditions.theta_rad, *theta_bin)

    def describe(self) -> str:
        """``'2 energy bins 45-55, 95-105 GeV, 1 angle bins 87.1-92.9 deg'`` for messages."""
        energy = ", ".join(f"{lo:.4g}-{hi:.4g}" for lo, hi in self.energy_gev)
        angle = ", ".join(f"{math.degrees(lo):.4g}-{math.degrees(hi):.4g}" for lo, hi in self.theta_rad)
        return (f"{len(self.energy_gev)} energy bins {energy} GeV, {len(self.theta_rad)} angle bins {angle} deg")


def sf_relative_error(sf_reference: npt.ArrayLike, sf_candidate: npt.ArrayLike) -> float:
    """|<SF_ref> - <SF_cand>| / <SF_ref> of one bin, from the per-shower sampling fractions of each sample."""
    ref_mean = float(np.mean(np.asarray(sf_reference, dtype=np.float64)))
    cand_mean = float(np.mean(np.asarray(sf_candidate, dtype=np.float64)))
    return abs(ref_mean - cand_mean) / max(abs(ref_mean), EPSILON)


def sf_bin_errors(
    sf_reference: npt.ArrayLike,
    reference: Conditions,
    sf_candidate: npt.ArrayLike,
    candidate: Conditions,
    bins: ConditionBins,
    *,
    min_count: int = 10,
) -> list[tuple[Bin, Bin, float]]:
    """(energy bin GeV, angle bin rad, :func:`sf_relative_error`) of every cell of ``bins`` that holds at least
    ``min_count`` showers of each sample. sf_*: (N,) sampling fractions (deposited / primary energy) of the
    showers whose conditions are ``reference`` / ``candidate``."""
    sf_r = np.asarray(sf_reference, dtype=np.float64).reshape(-1)
    sf_c = np.asarray(sf_candidate, dtype=np.float64).reshape(-1)
    for name, sf, conditions in (("reference", sf_r, reference), ("candidate", sf_c, candidate)):
        if sf.shape != (len(conditions),):
            raise ValueError(f"{name}: {sf.size} sampling fractions for {len(conditions)} conditions; pass one "
                             "per shower")
    errors = []
    for e_bin, t_bin in bins:
        mr, mc = bins.mask(reference, e_bin, t_bin), bins.mask(candidate, e_bin, t_bin)
        if mr.sum() >= min_count and mc.sum() >= min_count:
            errors.append((e_bin, t_bin, sf_relative_error(sf_r[mr], sf_c[mc])))
    return errors


def sf_mre(
    sf_reference: npt.ArrayLike,
    reference: Conditions,
    sf_candidate: npt.ArrayLike,
    candidate: Conditions,
    bins: ConditionBins,
    *,
    min_count: int = 10,
) -> float:
    """The 3DGAN sampling-fraction mean relative error (Khattak et al. 2021, section V): the mean over the
    condition bins of |<SF_ref> - <SF_cand>| / <SF_ref>, dimensionless (0.05 = 5 %).

    sf_*: (N,) per-shower sampling fractions (deposited / primary energy) with their ``Conditions``; bins with
    fewer than ``min_count`` showers of either sample are skipped (:func:`sf_bin_errors`). NaN when none is left.
    For two samples made at the same conditions use ``ConditionBins.energy_quantiles(energy_gev)``.
    """
    errors = [error for _, _, error in sf_bin_errors(sf_reference, reference, sf_candidate, candidate, bins,
                                                     min_count=min_count)]
    return float(np.mean(errors)) if errors else float("nan")


@dataclass(frozen=True)
class CoveredBin:
    """One (energy, angle) bin both samples fill: edges (GeV, rad) and the showers of each in it."""

    energy_gev: Bin
    theta_rad: Bin
    n_reference: int
    n_candidate: int


@dataclass(frozen=True)
class Coverage:
    """What :func:`covered_conditions` kept: the covered bins and the showers used of those given."""

    bins: tuple[CoveredBin, ...]
    n_reference: int
    n_reference_given: int
    n_candidate: int
    n_candidate_given: int

    @property
    def condition_bins(self) -> ConditionBins:
        """The covered energy and angle bins (sorted) as :class:`ConditionBins`."""
        return ConditionBins(tuple(sorted({b.energy_gev for b in self.bins})),
                             tuple(sorted({b.theta_rad for b in self.bins})))

    def to_json(self) -> dict[str, Any]:
        """Today's ``info.coverage`` keys: bins, energy_bins_gev, theta_bins_rad and the shower counts."""
        covered = self.condition_bins
        return {"bins": [{"energy_gev": list(b.energy_gev), "theta_rad": list(b.theta_rad),
                          "n_reference": b.n_reference, "n_candidate": b.n_candidate} for b in self.bins],
                "energy_bins_gev": [list(b) for b in covered.energy_gev],
                "theta_bins_rad": [list(b) for b in covered.theta_rad],
                "n_reference": self.n_reference, "n_reference_given": self.n_reference_given,
                "n_candidate": self.n_candidate, "n_candidate_given": self.n_candidate_given}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Coverage:
        """Inverse of :meth:`to_json`."""
        bins = tuple(CoveredBin((float(b["energy_gev"][0]), float(b["energy_gev"][1])),
                                (float(b["theta_rad"][0]), float(b["theta_rad"][1])),
                                int(b["n_reference"]), int(b["n_candidate"])) for b in data["bins"])
        return cls(bins, int(data["n_reference"]), int(data["n_reference_given"]), int(data["n_candidate"]),
                   int(data["n_candidate_given"]))


def covered_conditions(
    reference: ShowerSet, candidate: ShowerSet, *, bins: ConditionBins | None = None, min_count: int = 10
) -> tuple[ShowerSet, ShowerSet, Coverage]:
    """The part of both samples that lies in the condition bins the candidate covers.

    Bins: ``bins``, else :meth:`ConditionBins.grid` of the reference. An (energy, angle) bin is covered when
    both samples hold at least ``min_count`` showers in it; reference showers of the other bins are left out
    (so that a candidate made at 100 GeV is not judged against 2-200 GeV showers), and so are candidate showers
    outside every covered bin. Returns (reference part, candidate part, coverage). Raises ValueError naming the
    candidate's conditions when no bin is covered.
    """
    ref_conditions, cand_conditions = reference.conditions, candidate.conditions
    bins = bins or ConditionBins.grid(ref_conditions)
    use_ref = np.zeros(len(reference), dtype=bool)
    use_cand = np.zeros(len(candidate), dtype=bool)
    covered = []
    for e_bin, t_bin in bins:
        mr, mc = bins.mask(ref_conditions, e_bin, t_bin), bins.mask(cand_conditions, e_bin, t_bin)
        if mr.sum() >= min_count and mc.sum() >= min_count:
            use_ref |= mr
            use_cand |= mc
            covered.append(CoveredBin(e_bin, t_bin, int(mr.sum()), int(mc.sum())))
    if not covered:
        e, t = cand_conditions.energy_gev, cand_conditions.theta_rad
        raise ValueError(
            f"the candidate (energies {e.min():g}-{e.max():g} GeV, angles {math.degrees(t.min()):.1f}-"
            f"{math.degrees(t.max()):.1f} deg) has fewer than {min_count} showers in every reference bin "
            f"({bins.describe()}); make the candidate at the reference's conditions, or give bins that both "
            "samples fill")
    coverage = Coverage(tuple(covered), int(use_ref.sum()), len(reference), int(use_cand.sum()), len(candidate))
    return reference.select(use_ref), candidate.select(use_cand), coverage

"""The figures of merit a comparison reports: what each measures, its ideal value and the range that passes.

The pass ranges are this project's acceptance lines for a generator meant for physics checks, not published
numbers: about 5 % on the sampling fraction (the level the 3DGAN papers show, Khattak et al., IEEE Access
2021), classifier AUC at most 0.7 (the CaloChallenge 2022, arXiv:2410.21611, reads 0.5 as indistinguishable and
1 as trivially separable), per-cell variance and nearest-neighbour ratios within a factor two of 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "HEADLINE_METRICS",
    "METRIC_SPECS",
    "SPECS_BY_KEY",
    "JudgedFigure",
    "MetricSpec",
    "failed_headlines",
    "judge",
]

Verdict = Literal["pass", "FAIL", "n/a"]


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class MetricSpec:
    """How to read one figure of merit: what it measures, its ideal value and the pass range."""

    key: str  # JSON name: in a comparison's "metrics" and in card.json's "validation"
    label: str  # short readable name for tables
    meaning: str  # one sentence
    ideal: float  # value of a perfect generator
    low: float  # pass range, inclusive: low <= value <= high
    high: float
    fmt: str = ".3g"  # format of the value

    def passes(self, value: float | None) -> bool | None:
        """True inside the pass range, False outside, None when there is no finite value."""
        finite = _finite(value)
        return None if finite is None else self.low <= finite <= self.high

    @property
    def target(self) -> str:
        """The pass range in words, e.g. "<= 0.05" or "0.5-2"."""
        if self.low == -math.inf:
            return f"<= {self.high:g}"
        if self.high == math.inf:
            return f">= {self.low:g}"
        return f"{self.low:g}-{self.high:g}"

    def format(self, value: float | None) -> str:
        """The value with a sensible number of digits (scientific notation for large ones), "n/a" when absent."""
        finite = _finite(value)
        if finite is None:
            return "n/a"
        return f"{finite:.3g}" if abs(finite) >= 1e4 else format(finite, self.fmt)


@dataclass(frozen=True)
class JudgedFigure:
    """One measured figure with its spec: value (None when not finite) and verdict against the target."""

    spec: MetricSpec
    value: float | None

    @property
    def key(self) -> str:
        """JSON name, e.g. "sf_mre"."""
        return self.spec.key

    @property
    def label(self) -> str:
        """Readable name, e.g. "SF error"."""
        return self.spec.label

    @property
    def meaning(self) -> str:
        """What the figure measures, one sentence."""
        return self.spec.meaning

    @property
    def passes(self) -> bool | None:
        """True / False against the target, None without a value."""
        return self.spec.passes(self.value)

    @property
    def verdict(self) -> Verdict:
        """"pass", "FAIL" or "n/a"."""
        passes = self.passes
        if passes is None:
            return "n/a"
        return "pass" if passes else "FAIL"

    @property
    def formatted(self) -> str:
        """The value as text ("n/a" without one)."""
        return self.spec.format(self.value)


_INF = math.inf
METRIC_SPECS: tuple[MetricSpec, ...] = (
    MetricSpec("sf_mre", "SF error", "mean relative error of the mean sampling fraction over the energy and "
               "angle bins (3DGAN)", 0.0, -_INF, 0.05),
    MetricSpec("sf_relative_error_max_bin", "SF error, worst bin", "relative error of the mean sampling "
               "fraction in the worst energy and angle bin", 0.0, -_INF, 0.1),
    MetricSpec("separation_mean", "separation power", "mean separation power of the shower observables' "
               "histograms, 0 = identical (CaloChallenge)", 0.0, -_INF, 0.05),
    MetricSpec("classifier_auc_high", "classifier AUC (features)", "AUC of a classifier telling generated "
               "from Monte Carlo showers by their observables; 0.5 = cannot tell, and an AUC far below 0.5 separates "
               "as well as one far above", 0.5, 0.3, 0.7, ".2f"),
    MetricSpec("classifier_auc_low", "classifier AUC (cells)", "AUC of a classifier telling generated from "
               "Monte Carlo showers by their cells; 0.5 = cannot tell, and an AUC far below 0.5 separates as well as "
               "one far above", 0.5, 0.3, 0.7, ".2f"),
    MetricSpec("bmre_profile_z", "longitudinal profile error", "binned mean relative error of the mean "
               "energy per layer", 0.0, -_INF, 0.1),
    MetricSpec("shape_mse", "profile shape MSE", "mean squared error of the normalised mean x, y and layer "
               "profiles", 0.0, -_INF, 0.001),
    MetricSpec("ssim_L1", "SSIM of mean showers (L=1)", "structural similarity of the mean shower images, "
               "1 = identical", 1.0, 0.99, 1.0, ".4f"),
    MetricSpec("ssim_L0.0001", "SSIM of mean showers (L=1e-4)", "structural similarity with the dynamic range "
               "of the faint cells, 1 = identical", 1.0, 0.9, 1.0, ".3f"),
    MetricSpec("mscn_jsd", "texture distance (MSCN)", "Jensen-Shannon distance of the local-contrast (MSCN) "
               "coefficients of the cells, 0 = identical", 0.0, -_INF, 0.1),
    MetricSpec("correlation_mse", "correlation error", "mean squared difference of the correlations between "
               "shower observables", 0.0, -_INF, 0.01),
    MetricSpec("fpd_x1e3", "FPD x 1e3", "Frechet distance of the shower-observable distributions, x 1000",
               0.0, -_INF, 100.0),
    MetricSpec("kpd_x1e3", "KPD x 1e3", "kernel distance of the shower-observable distributions, x 1000",
               0.0, -_INF, 10.0),
    MetricSpec("cell_variance_ratio", "cell variance ratio", "median ratio of per-cell variances, generated / "
               "Monte Carlo; << 1 means every shower looks alike (mode collapse)", 1.0, 0.5, 2.0),
    MetricSpec("nn_ratio", "nearest-neighbour ratio", "distance to the nearest Monte Carlo shower over the "
               "Monte Carlo's own; << 1 means copies of training showers, >> 1 showers unlike any", 1.0, 0.5, 2.0),
)
SPECS_BY_KEY = {spec.key: spec for spec in METRIC_SPECS}
HEADLINE_METRICS = ("sf_mre", "sf_relative_error_max_bin", "separation_mean", "classifier_auc_high",
                    "bmre_profile_z", "cell_variance_ratio")


def judge(figures: Mapping[str, object], keys: tuple[str, ...] | None = None) -> list[JudgedFigure]:
    """Every known figure present in ``figures`` (JSON name -> value), judged; ``keys``: which and in what order
    (default all of :data:`METRIC_SPECS`). A present but non-numeric or non-finite value is judged "n/a"."""
    return [JudgedFigure(SPECS_BY_KEY[key], _finite(figures[key]))
            for key in keys or tuple(SPECS_BY_KEY) if key in figures]


def failed_headlines(figures: Mapping[str, object]) -> list[str]:
    """Labels of the headline figures that fail their targets (absent or non-finite ones are not counted)."""
    return [figure.label for figure in judge(figures, HEADLINE_METRICS) if figure.passes is False]

"""The result of comparing a candidate sample of showers with a reference sample, typed, and its JSON.

:class:`Comparison` holds every figure of merit by its JSON name (``metrics``), the judged headline figures
with their meaning and target (:mod:`calogen.validation.targets`), one :class:`BinRow` per (energy, angle) bin,
and the data behind the figures (mean profiles, feature histograms, sampling fraction against energy, cell
spectrum, occupancy, MSCN coefficients, correlations, per-layer variance ratios, classifier outputs).

JSON: :meth:`Comparison.to_json` writes ``{"metrics", "bins", "histograms", "info"}`` (the file of
``python -m calogen validate --out``); :meth:`Comparison.to_card_json` writes the ``validation`` entry of a model
card (the headline figures at the top level, the per-bin sampling-fraction table with angles in degrees, and
the provenance it is given). :meth:`Comparison.from_json` reads either, so every card ever written reads back.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from calogen.validation.binning import Bin, Coverage
from calogen.validation.classifier import ClassifierResult, Level
from calogen.validation.distances import HistogramPair
from calogen.validation.targets import HEADLINE_METRICS, JudgedFigure, judge

__all__ = [
    "CARD_FIGURES",
    "BinRow",
    "Comparison",
    "ComparisonInfo",
    "Correlations",
    "Occupancy",
    "Profile",
    "SfPoint",
]

Array = npt.NDArray[np.float64]

# the figures a model card carries at the top level of its "validation" (with sf_relative_error_max_bin)
CARD_FIGURES = (
    "sf_mre", "shape_mse", "bmre_profile_x", "bmre_profile_y", "bmre_profile_z", "separation_mean",
    "ssim_L1", "ssim_L0.0001", "mscn_jsd", "correlation_mse", "cell_variance_ratio", "nn_ratio",
    "fpd_x1e3", "kpd_x1e3", "classifier_auc_low", "classifier_auc_high", "sf_relative_error_max_bin",
)
# numbers a card records about the measurement, not figures of merit
_CARD_PROVENANCE = ("generator_seed", "wall_time_s", "draws_per_reference_shower")
_SSIM_KEYS = {"ssim_l1": "ssim_L1", "ssim_l1e4": "ssim_L0.0001"}  # field name -> JSON name


def _number(value: Any) -> float | None:
    """A finite float, or None (JSON null) for NaN, inf and anything not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _floats(values: Any) -> Array:
    return np.array([np.nan if v is None else v for v in np.asarray(values, dtype=object).reshape(-1)],
                    dtype=np.float64)


def _list(values: Array) -> list[float | None]:
    return [_number(v) for v in np.asarray(values).reshape(-1)]


def _bin(values: Any) -> Bin:
    lo, hi = values
    return float(lo), float(hi)


@dataclass(frozen=True)
class BinRow:
    """Figures of one (energy, angle) bin; None where not measured (or read from a card that lacks it).

    energy_gev, theta_rad: the bin's edges (GeV, rad). sf_*: mean sampling fraction (deposited / primary energy)
    of each sample and its standard error; sf_relative_error = |<SF_ref> - <SF_cand>| / <SF_ref>; sf_resolution_*:
    std / mean of the sampling fraction; separation_sf: separation power of the two SF histograms; shape_mse_* and
    bmre_profile_*: of the mean profiles along x, y, z; *_reference / *_candidate: sample means of the measured
    angle (rad), the longitudinal barycentre (layers), the hit count (cells above 0.2 MeV) and the core containment
    (fraction within 5.1 mm); ssim_l1, ssim_l1e4: SSIM of the two mean
    showers with L = 1 and 1e-4 GeV.
    """

    energy_gev: Bin
    theta_rad: Bin
    n_reference: int
    n_candidate: int
    sf_reference: float | None = None
    sf_reference_err: float | None = None
    sf_candidate: float | None = None
    sf_candidate_err: float | None = None
    sf_relative_error: float | None = None
    sf_resolution_reference: float | None = None
    sf_resolution_candidate: float | None = None
    separation_sf: float | None = None
    shape_mse_x: float | None = None
    shape_mse_y: float | None = None
    shape_mse_z: float | None = None
    bmre_profile_x: float | None = None
    bmre_profile_y: float | None = None
    bmre_profile_z: float | None = None
    measured_angle_rad_reference: float | None = None
    measured_angle_rad_candidate: float | None = None
    barycentre_z_layer_reference: float | None = None
    barycentre_z_layer_candidate: float | None = None
    n_hits_reference: float | None = None
    n_hits_candidate: float | None = None
    core_5mm_reference: float | None = None  # mean fraction of the energy within 5.1 mm of the shower axis
    core_5mm_candidate: float | None = None
    barycentre_x_rms_mm_reference: float | None = None  # rms of the x barycentre about the window's centre, mm
    barycentre_x_rms_mm_candidate: float | None = None
    layer_width_cells_reference: float | None = None  # mean transverse width of the layers, cells (layer_width)
    layer_width_cells_candidate: float | None = None
    far_hits_reference: float | None = None  # mean hits beyond 6 cells of their layer's barycentre (hits_beyond)
    far_hits_candidate: float | None = None
    ssim_l1: float | None = None
    ssim_l1e4: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The row under today's JSON names (``energy_gev`` and ``theta_rad`` as [low, high])."""
        out: dict[str, Any] = {"energy_gev": list(self.energy_gev), "theta_rad": list(self.theta_rad),
                               "n_reference": self.n_reference, "n_candidate": self.n_candidate}
        for f in dataclasses.fields(self)[4:]:
            out[_SSIM_KEYS.get(f.name, f.name)] = _number(getattr(self, f.name))
        return out

    def to_card_json(self) -> dict[str, Any]:
        """The row as a model card records it: counts, sampling fractions, profile errors, the means of the
        measured angle (rad), hit count, longitudinal barycentre and core containment, the rms of the transverse
        barycentre about the window's centre (the shower's place within its central cell, mm), the mean layer width
        (cells) and hits beyond 6 cells of the layer's barycentre, and the bin as
        ``energy_bin_gev`` (rounded to 1 MeV) and ``theta_bin_deg`` (degrees, rounded to 0.01)."""
        keys = ("n_reference", "n_candidate", "sf_reference", "sf_reference_err", "sf_candidate",
                "sf_candidate_err", "sf_relative_error", "shape_mse_z", "bmre_profile_x", "bmre_profile_y",
                "bmre_profile_z", "measured_angle_rad_reference", "measured_angle_rad_candidate",
                "n_hits_reference", "n_hits_candidate", "barycentre_z_layer_reference",
                "barycentre_z_layer_candidate", "core_5mm_reference", "core_5mm_candidate",
                "barycentre_x_rms_mm_reference", "barycentre_x_rms_mm_candidate", "layer_width_cells_reference",
                "layer_width_cells_candidate", "far_hits_reference", "far_hits_candidate")
        out: dict[str, Any] = {key: getattr(self, key) for key in keys}
        out["energy_bin_gev"] = [round(v, 3) for v in self.energy_gev]
        out["theta_bin_deg"] = [round(math.degrees(v), 2) for v in self.theta_rad]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BinRow:
        """A row of :meth:`to_json` or of :meth:`to_card_json` (its degrees converted back to radians)."""
        if "energy_bin_gev" in data:
            energy, theta = _bin(data["energy_bin_gev"]), tuple(math.radians(v) for v in data["theta_bin_deg"])
        else:
            energy, theta = _bin(data["energy_gev"]), _bin(data["theta_rad"])
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls)[4:]:
            values[f.name] = _number(data.get(_SSIM_KEYS.get(f.name, f.name)))
        return cls(energy, _bin(theta), int(data.get("n_reference", 0)), int(data.get("n_candidate", 0)), **values)


@dataclass(frozen=True)
class Profile:
    """Mean energy per slice along one axis (GeV) of each sample, with standard errors; each (n,)."""

    reference: Array
    candidate: Array
    reference_err: Array
    candidate_err: Array

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _floats(getattr(self, f.name)))

    def to_json(self) -> dict[str, list[float | None]]:
        """``{"reference", "candidate", "reference_err", "candidate_err"}``."""
        return {f.name: _list(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        """Inverse of :meth:`to_json`; missing errors read as NaN."""
        n = len(data["reference"])
        return cls(data["reference"], data["candidate"], data.get("reference_err", [None] * n),
                   data.get("candidate_err", [None] * n))


@dataclass(frozen=True)
class SfPoint:
    """Mean sampling fraction of each sample in one energy bin (all angles), with standard errors.

    energy_gev: the mean primary energy of the reference showers in the bin, GeV.
    """

    energy_gev: float
    reference: float | None
    reference_err: float | None
    candidate: float | None
    candidate_err: float | None

    def to_json(self) -> dict[str, float | None]:
        """The point under its field names."""
        return {f.name: _number(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SfPoint:
        """Inverse of :meth:`to_json`."""
        return cls(float(data["energy_gev"]), *(_number(data.get(k)) for k in
                                                ("reference", "reference_err", "candidate", "candidate_err")))


@dataclass(frozen=True)
class Occupancy:
    """Fraction of all cells above each threshold (1 - sparsity) of each sample; thresholds GeV, each (T,)."""

    thresholds_gev: Array
    reference: Array
    candidate: Array

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _floats(getattr(self, f.name)))

    def to_json(self) -> dict[str, list[float | None]]:
        """``{"thresholds_gev", "reference", "candidate"}``."""
        return {f.name: _list(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Occupancy:
        """Inverse of :meth:`to_json`."""
        return cls(data["thresholds_gev"], data["reference"], data["candidate"])


@dataclass(frozen=True)
class Correlations:
    """Pearson correlations between the shower observables ``names`` (F of them), each (F, F)."""

    names: tuple[str, ...]
    reference: Array
    candidate: Array
    difference: Array  # candidate - reference

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        n = len(self.names)
        for name in ("reference", "candidate", "difference"):
            object.__setattr__(self, name, _floats(getattr(self, name)).reshape(n, n))

    def to_json(self) -> dict[str, Any]:
        """``{"names", "reference", "candidate", "difference"}`` (matrices as nested lists)."""
        return {"names": list(self.names),
                **{k: [_list(r) for r in getattr(self, k)] for k in ("reference", "candidate", "difference")}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Correlations:
        """Inverse of :meth:`to_json`."""
        return cls(tuple(data["names"]), data["reference"], data["candidate"], data["difference"])


@dataclass(frozen=True)
class ComparisonInfo:
    """What was compared: sample sizes and sources, the cell geometry (nx, ny, nz), the dimension of the
    high-level feature space (FPD, KPD), the energy (GeV) and angle (rad) bins, and, when the samples were cut
    to the bins the candidate covers, that :class:`Coverage`; the files when read from files."""

    n_reference: int
    n_candidate: int
    reference_source: str = "unknown"
    candidate_source: str = "unknown"
    geometry: tuple[int, ...] | None = None
    n_high_level_features: int | None = None
    energy_bins_gev: tuple[Bin, ...] = ()
    theta_bins_rad: tuple[Bin, ...] = ()
    coverage: Coverage | None = None
    reference_path: str | None = None
    candidate_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Today's ``info`` keys, with a sentence on how SSIM was taken."""
        return {
            "n_reference": self.n_reference, "n_candidate": self.n_candidate,
            "geometry": None if self.geometry is None else list(self.geometry),
            "n_high_level_features": self.n_high_level_features,
            "reference_source": self.reference_source, "candidate_source": self.candidate_source,
            "energy_bins_gev": [list(b) for b in self.energy_bins_gev],
            "theta_bins_rad": [list(b) for b in self.theta_bins_rad],
            "ssim": "on the mean shower of each condition bin, per-layer Gaussian window sigma 1.5 cells",
            "coverage": None if self.coverage is None else self.coverage.to_json(),
            "reference_path": self.reference_path, "candidate_path": self.candidate_path,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComparisonInfo:
        """Inverse of :meth:`to_json`."""
        geometry = data.get("geometry")
        coverage = data.get("coverage")
        return cls(
            n_reference=int(data.get("n_reference", 0)), n_candidate=int(data.get("n_candidate", 0)),
            reference_source=str(data.get("reference_source", "unknown")),
            candidate_source=str(data.get("candidate_source", "unknown")),
            geometry=None if geometry is None else tuple(int(v) for v in geometry),
            n_high_level_features=data.get("n_high_level_features"),
            energy_bins_gev=tuple(_bin(b) for b in data.get("energy_bins_gev", ())),
            theta_bins_rad=tuple(_bin(b) for b in data.get("theta_bins_rad", ())),
            coverage=None if coverage is None else Coverage.from_json(coverage),
            reference_path=data.get("reference_path"), candidate_path=data.get("candidate_path"),
        )


@dataclass(frozen=True)
class Comparison:
    """A candidate sample measured against a reference sample (see the module docstring for the parts)."""

    metrics: Mapping[str, float | None]  # every figure by its JSON name; None where not finite
    bins: tuple[BinRow, ...]
    info: ComparisonInfo
    profiles: Mapping[str, Profile] = field(default_factory=dict)  # "x", "y", "z" -> mean profile
    features: Mapping[str, HistogramPair] = field(default_factory=dict)  # shower observable -> histograms
    sf_vs_energy: tuple[SfPoint, ...] = ()
    cell_spectrum: HistogramPair | None = None  # energies of all non-zero cells, GeV
    occupancy: Occupancy | None = None
    mscn: HistogramPair | None = None
    correlation: Correlations | None = None
    variance_ratio_per_layer: Array | None = None  # (nz,) median per-cell variance ratio per layer
    classifier: Mapping[Level, ClassifierResult] = field(default_factory=dict)

    @property
    def sf_mre(self) -> float | None:
        """The 3DGAN sampling-fraction mean relative error over the condition bins (None if not measured)."""
        return _number(self.metrics.get("sf_mre"))

    @property
    def headline(self) -> list[JudgedFigure]:
        """The headline figures present, each with its meaning, target and verdict."""
        return judge(self.metrics, HEADLINE_METRICS)

    @property
    def figures(self) -> list[JudgedFigure]:
        """Every figure with a known meaning and target that is present, judged."""
        return judge(self.metrics)

    @property
    def failed(self) -> list[str]:
        """Labels of the headline figures that miss their targets."""
        return [figure.label for figure in self.headline if figure.passes is False]

    def to_json(self) -> dict[str, Any]:
        """``{"metrics", "bins", "histograms", "info"}``: plain JSON types, non-finite numbers as null."""
        hists: dict[str, Any] = {"features": {name: h.to_json() for name, h in self.features.items()}}
        for axis, profile in self.profiles.items():
            hists[f"profile_{axis}"] = profile.to_json()
        hists["sf_vs_energy"] = [p.to_json() for p in self.sf_vs_energy]
        for key, part in (("cell_spectrum", self.cell_spectrum), ("sparsity", self.occupancy),
                          ("mscn", self.mscn), ("correlation", self.correlation)):
            if part is not None:
                hists[key] = part.to_json()
        if self.variance_ratio_per_layer is not None:
            hists["cell_variance_ratio_per_layer"] = _list(self.variance_ratio_per_layer)
        info = self.info.to_json()
        for level, result in self.classifier.items():
            hists[f"classifier_{level}"] = result.output.to_json()
            info.setdefault("classifier", {})[level] = {"auc_train": _number(result.auc_train),
                                                        "n_train": result.n_train, "n_test": result.n_test,
                                                        "epochs": result.epochs}
        return {"metrics": {k: _number(v) for k, v in self.metrics.items()},
                "bins": [row.to_json() for row in self.bins], "histograms": hists, "info": info}

    def to_card_json(self, **provenance: Any) -> dict[str, Any]:
        """The ``validation`` entry of a model card: :data:`CARD_FIGURES` present at the top level, ``bins``
        (:meth:`BinRow.to_card_json`), then ``provenance`` (reference file, seeds, device, command, ...)."""
        figures = {key: _number(self.metrics[key]) for key in CARD_FIGURES if key in self.metrics}
        return {**figures, "bins": [row.to_card_json() for row in self.bins], **provenance}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Comparison:
        """A comparison from :meth:`to_json`'s dict, or from a card's ``validation`` (:meth:`to_card_json`, and
        cards written before it: every number at its top level is a figure, except the provenance numbers
        generator_seed, draws_per_reference_shower and wall_time_s). Raises ValueError naming what is malformed."""
        try:
            return cls._from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a comparison or card validation: {type(exc).__name__} {exc}") from exc

    @classmethod
    def _from_json(cls, data: Mapping[str, Any]) -> Comparison:
        bins = tuple(BinRow.from_json(row) for row in data.get("bins") or ())
        if "metrics" not in data:  # a card's validation
            metrics = {k: _number(v) for k, v in data.items()
                       if k not in _CARD_PROVENANCE and _number(v) is not None}
            reference: Mapping[str, Any] = data.get("reference") or {}
            n = int(reference.get("showers") or sum(row.n_reference for row in bins))
            info = ComparisonInfo(n, int(sum(row.n_candidate for row in bins)) or n,
                                  reference_source=str(reference.get("source", "unknown")),
                                  reference_path=reference.get("file"))
            return cls(metrics, bins, info)
        hists = data.get("histograms") or {}
        classifier_info = (data.get("info") or {}).get("classifier") or {}
        classifier: dict[Level, ClassifierResult] = {}
        for level in ("low", "high"):
            if hists.get(f"classifier_{level}"):
                details = classifier_info.get(level) or {}
                auc, jsd = (_number(data["metrics"].get(f"classifier_{k}_{level}")) for k in ("auc", "jsd"))
                classifier[level] = ClassifierResult(
                    level, math.nan if auc is None else auc, math.nan if jsd is None else jsd,
                    HistogramPair.from_json(hists[f"classifier_{level}"]), auc_train=details.get("auc_train"),
                    n_train=details.get("n_train"), n_test=details.get("n_test"), epochs=details.get("epochs"))
        ratio = hists.get("cell_variance_ratio_per_layer")
        return cls(
            metrics={k: _number(v) for k, v in data["metrics"].items()},
            bins=bins,
            info=ComparisonInfo.from_json(data.get("info") or {}),
            profiles={axis: Profile.from_json(hists[f"profile_{axis}"]) for axis in ("x", "y", "z")
                      if hists.get(f"profile_{axis}")},
            features={name: HistogramPair.from_json(h) for name, h in (hists.get("features") or {}).items()},
            sf_vs_energy=tuple(SfPoint.from_json(p) for p in hists.get("sf_vs_energy") or ()),
            cell_spectrum=HistogramPair.from_json(hists["cell_spectrum"]) if hists.get("cell_spectrum") else None,
            occupancy=Occupancy.from_json(hists["sparsity"]) if hists.get("sparsity") else None,
            mscn=HistogramPair.from_json(hists["mscn"]) if hists.get("mscn") else None,
            correlation=Correlations.from_json(hists["correlation"]) if hists.get("correlation") else None,
            variance_ratio_per_layer=None if ratio is None else _floats(ratio),
            classifier=classifier,
        )

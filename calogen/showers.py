"""The types every part of calogen speaks: conditions, the range a source accepts, a sample of showers, a source.

- :class:`Conditions`: per-shower primary energy (GeV) and polar angle of incidence (radians, pi/2 = normal to
  the layers), validated and broadcast here and nowhere else.
- :class:`ConditionRange`: the closed energy and angle intervals an engine or a trained model accepts; each
  declares its own, and :meth:`ConditionRange.check` turns a bad request into one clear message.
- :class:`ShowerSet`: cells (N, nx, ny, nz) in GeV with the conditions they were made at.
- :class:`Source`: anything that makes showers, ``sample(conditions, seed=..., progress=...)``.

Degrees appear only where people type or read angles (the app and the command line); the library holds radians.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "TRAINING_RANGE",
    "ConditionRange",
    "Conditions",
    "OutOfRangeError",
    "Progress",
    "ShowerSet",
    "ShowerSetError",
    "Source",
]

Progress = Callable[[int, int], None]
"""A progress callback: called with (showers done, showers in all)."""

# Conditions read back from float32 arrays (shower files, ShowerSet) sit up to ~1e-7 (relative, and radians)
# from the float64 edges they were drawn at: a range accepts values this close outside its edges.
_ENERGY_REL_TOL = 1e-6
_THETA_TOL_RAD = 1e-6


class OutOfRangeError(ValueError):
    """Conditions outside the range a source accepts; the message gives both in GeV and degrees."""


class ShowerSetError(ValueError):
    """A sample of showers is inconsistent (shapes, non-finite or negative values); the message says where."""


@dataclass(frozen=True)
class Conditions:
    """Primary energies and angles of a batch of showers.

    energy_gev: float64 (n,), primary energy, GeV, finite and positive.
    theta_rad:  float64 (n,), polar angle of incidence, radians, finite, in (0, pi).
    """

    energy_gev: npt.NDArray[np.float64]
    theta_rad: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        energy = np.atleast_1d(np.asarray(self.energy_gev, dtype=np.float64))
        theta = np.atleast_1d(np.asarray(self.theta_rad, dtype=np.float64))
        if energy.ndim != 1 or theta.ndim != 1 or energy.shape != theta.shape:
            raise ValueError(f"energy_gev {energy.shape} and theta_rad {theta.shape} must be 1-d of one length; "
                             "use Conditions.broadcast to repeat a single value")
        if energy.size == 0:
            raise ValueError("conditions for zero showers: give at least one energy and angle")
        if not np.all(np.isfinite(energy)) or float(energy.min()) <= 0.0:
            raise ValueError("energy_gev must be finite and positive (GeV)")
        if not np.all(np.isfinite(theta)) or float(theta.min()) <= 0.0 or float(theta.max()) >= math.pi:
            raise ValueError("theta_rad must be finite and inside (0, pi) radians; is a value in degrees?")
        object.__setattr__(self, "energy_gev", energy)
        object.__setattr__(self, "theta_rad", theta)

    @classmethod
    def broadcast(cls, energy_gev: float | npt.ArrayLike, theta_rad: float | npt.ArrayLike,
                  n: int | None = None) -> Conditions:
        """Conditions for ``n`` showers: a number is repeated, an array must have n entries.

        With ``n=None`` the longer of the two inputs sets the length (the other must then be a single value).
        Raises ValueError naming the input whose length does not fit.
        """
        energy = np.atleast_1d(np.asarray(energy_gev, dtype=np.float64))
        theta = np.atleast_1d(np.asarray(theta_rad, dtype=np.float64))
        for name, arr in (("energy_gev", energy), ("theta_rad", theta)):
            if arr.ndim != 1:
                raise ValueError(f"{name} must be a number or a 1-d array, got shape {arr.shape}")
        if n is None:
            n = max(energy.size, theta.size)
        if n < 1:
            raise ValueError(f"n={n}: the number of showers must be positive")
        columns = []
        for name, arr in (("energy_gev", energy), ("theta_rad", theta)):
            if arr.size == 1:
                arr = np.full(n, arr[0])
            elif arr.size != n:
                raise ValueError(f"{name} has {arr.size} values but n={n}; pass one value or n values")
            columns.append(arr)
        return cls(columns[0], columns[1])

    def __len__(self) -> int:
        return int(self.energy_gev.size)

    def select(self, index: Any) -> Conditions:
        """The conditions of a subset (mask, integer indices or slice)."""
        return Conditions(self.energy_gev[index], self.theta_rad[index])


@dataclass(frozen=True)
class ConditionRange:
    """Closed intervals of primary energy (GeV) and polar angle (radians) that a source accepts."""

    energy_gev: tuple[float, float]
    theta_rad: tuple[float, float]

    def __post_init__(self) -> None:
        (e_lo, e_hi), (t_lo, t_hi) = self.energy_gev, self.theta_rad
        if not 0.0 < e_lo <= e_hi or not 0.0 < t_lo <= t_hi < math.pi:
            raise ValueError(f"not a valid range: energy {self.energy_gev} GeV, theta {self.theta_rad} rad")
        object.__setattr__(self, "energy_gev", (float(e_lo), float(e_hi)))
        object.__setattr__(self, "theta_rad", (float(t_lo), float(t_hi)))

    @property
    def theta_deg(self) -> tuple[float, float]:
        """The angle interval in degrees, for display."""
        return math.degrees(self.theta_rad[0]), math.degrees(self.theta_rad[1])

    def describe(self) -> str:
        """``'2-500 GeV, 60-120 deg'``."""
        t_lo, t_hi = self.theta_deg
        return f"{self.energy_gev[0]:g}-{self.energy_gev[1]:g} GeV, {t_lo:.4g}-{t_hi:.4g} deg"

    def contains(self, conditions: Conditions) -> npt.NDArray[np.bool_]:
        """bool (n,): which showers' conditions lie inside the range (edges widened by float32 precision:
        1e-6 relative in energy, 1e-6 rad in angle)."""
        (e_lo, e_hi), (t_lo, t_hi) = self.energy_gev, self.theta_rad
        energy, theta = conditions.energy_gev, conditions.theta_rad
        return ((energy >= e_lo * (1 - _ENERGY_REL_TOL)) & (energy <= e_hi * (1 + _ENERGY_REL_TOL))
                & (theta >= t_lo - _THETA_TOL_RAD) & (theta <= t_hi + _THETA_TOL_RAD))

    def check(self, conditions: Conditions, who: str) -> None:
        """Raise :class:`OutOfRangeError` naming ``who`` if any condition lies outside the range."""
        inside = self.contains(conditions)
        if bool(inside.all()):
            return
        energy, theta = conditions.energy_gev, conditions.theta_rad
        e_lo, e_hi = self.energy_gev
        if energy.min() < e_lo * (1 - _ENERGY_REL_TOL) or energy.max() > e_hi * (1 + _ENERGY_REL_TOL):
            asked = f"{energy.min():g}" if energy.min() == energy.max() else f"{energy.min():g}-{energy.max():g}"
            raise OutOfRangeError(f"energy {asked} GeV is outside {e_lo:g}-{e_hi:g} GeV, the range {who} accepts")
        lo_deg, hi_deg = math.degrees(float(theta.min())), math.degrees(float(theta.max()))
        asked = f"{lo_deg:.4g}" if theta.min() == theta.max() else f"{lo_deg:.4g}-{hi_deg:.4g}"
        t_lo_deg, t_hi_deg = self.theta_deg
        raise OutOfRangeError(f"angle {asked} deg is outside {t_lo_deg:.4g}-{t_hi_deg:.4g} deg, the range {who} "
                              "accepts")

    def sample(self, n: int, rng: np.random.Generator) -> Conditions:
        """``n`` conditions drawn in the range: energies log-uniform, angles uniform."""
        (e_lo, e_hi), (t_lo, t_hi) = self.energy_gev, self.theta_rad
        energy = np.exp(rng.uniform(math.log(e_lo), math.log(e_hi), n)) if e_hi > e_lo else np.full(n, e_lo)
        theta = rng.uniform(t_lo, t_hi, n) if t_hi > t_lo else np.full(n, t_lo)
        return Conditions(energy, theta)

    def to_json(self) -> dict[str, list[float]]:
        """``{"energy_gev": [lo, hi], "theta_rad": [lo, hi]}`` for cards and manifests."""
        return {"energy_gev": list(self.energy_gev), "theta_rad": list(self.theta_rad)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConditionRange:
        """Inverse of :meth:`to_json`; raises ValueError on a malformed entry."""
        try:
            e_lo, e_hi = (float(v) for v in data["energy_gev"])
            t_lo, t_hi = (float(v) for v in data["theta_rad"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a condition range: {data!r} ({exc})") from None
        return cls((e_lo, e_hi), (t_lo, t_hi))


TRAINING_RANGE = ConditionRange((2.0, 500.0), (math.radians(60.0), math.radians(120.0)))
"""The domain of the 3DGAN data set (Khattak et al.) and of calogen's generators: 2-500 GeV, 60-120 deg."""


@dataclass
class ShowerSet:
    """A sample of showers with their conditions.

    showers:    float32 (N, nx, ny, nz), GeV deposited in the silicon of each cell; axes x, y, layer.
    energy_gev: float32 (N,), primary energy, GeV.
    theta_rad:  float32 (N,), polar angle of incidence, radians (pi/2 = normal incidence).
    attrs:      provenance (particle, source, detector, seed, calogen_version, ...); JSON-able values.
    """

    showers: npt.NDArray[np.float32]
    energy_gev: npt.NDArray[np.float32]
    theta_rad: npt.NDArray[np.float32]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.showers = np.asarray(self.showers, dtype=np.float32)
        self.energy_gev = np.asarray(self.energy_gev, dtype=np.float32).reshape(-1)
        self.theta_rad = np.asarray(self.theta_rad, dtype=np.float32).reshape(-1)
        check_arrays(self.showers, self.energy_gev, self.theta_rad, where="ShowerSet")

    def __len__(self) -> int:
        return int(self.showers.shape[0])

    @property
    def geometry(self) -> tuple[int, int, int]:
        """(nx, ny, nz) cells."""
        nx, ny, nz = self.showers.shape[1:]
        return int(nx), int(ny), int(nz)

    @property
    def conditions(self) -> Conditions:
        """The showers' conditions (float64 copies)."""
        return Conditions(self.energy_gev.astype(np.float64), self.theta_rad.astype(np.float64))

    def select(self, index: Any) -> ShowerSet:
        """Sub-sample by boolean mask, integer indices or slice; attrs are shared (copied)."""
        if isinstance(index, slice):
            idx: Any = index
        else:
            idx = np.asarray(index)
            if idx.dtype == bool and idx.shape != (len(self),):
                raise ValueError(f"boolean mask has shape {idx.shape}; expected ({len(self)},)")
        return ShowerSet(self.showers[idx], self.energy_gev[idx], self.theta_rad[idx], dict(self.attrs))

    @staticmethod
    def concatenate(parts: list[ShowerSet]) -> ShowerSet:
        """Join samples of the same geometry; attrs of the first part are kept."""
        if not parts:
            raise ValueError("cannot concatenate an empty list of ShowerSets")
        geometries = {p.geometry for p in parts}
        if len(geometries) != 1:
            raise ValueError(f"cannot concatenate ShowerSets of different geometries {sorted(geometries)}")
        return ShowerSet(
            np.concatenate([p.showers for p in parts]),
            np.concatenate([p.energy_gev for p in parts]),
            np.concatenate([p.theta_rad for p in parts]),
            dict(parts[0].attrs),
        )


def check_arrays(showers: np.ndarray, energy_gev: np.ndarray, theta_rad: np.ndarray, *, where: str) -> None:
    """Raise :class:`ShowerSetError` (naming ``where``) unless the arrays form a valid sample."""
    if showers.ndim != 4:
        raise ShowerSetError(f"{where}: showers have shape {showers.shape}; expected (N, nx, ny, nz)")
    n = showers.shape[0]
    for name, arr in (("energy", energy_gev), ("theta", theta_rad)):
        if arr.shape != (n,):
            raise ShowerSetError(f"{where}: '{name}' has shape {arr.shape}; expected ({n},) to match {n} showers")
    for name, arr in (("ECAL", showers), ("energy", energy_gev), ("theta", theta_rad)):
        if not np.all(np.isfinite(arr)):
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            raise ShowerSetError(f"{where}: '{name}' holds {bad} non-finite values (NaN or inf)")
    if n and float(showers.min()) < 0.0:
        raise ShowerSetError(f"{where}: 'ECAL' holds negative cell energies (min {float(showers.min()):.3g})")
    if n and float(energy_gev.min()) <= 0.0:
        raise ShowerSetError(f"{where}: 'energy' must be positive GeV (min {float(energy_gev.min()):.3g})")


@runtime_checkable
class Source(Protocol):
    """Anything that makes showers: the Monte Carlo, GFlash, a trained generator.

    ``name`` is what the user picks; ``condition_range`` is what it accepts. ``sample`` returns one shower per
    condition, reproducibly for a given ``seed``, calls ``progress(done, total)`` as it goes when given, and
    raises :class:`OutOfRangeError` for conditions outside ``condition_range``.
    """

    @property
    def name(self) -> str: ...

    @property
    def condition_range(self) -> ConditionRange: ...

    def sample(self, conditions: Conditions, seed: int | None = None,
               progress: Progress | None = None) -> ShowerSet: ...

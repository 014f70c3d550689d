"""Pre-processing of cell energies between physical units (GeV) and the units networks see.

Two transforms are provided:

* the 3DGAN power transform (Khattak et al., IEEE Access 2021, public Keras loader): cells are stored as
  GeV x 50 and raised to the power 0.85 before training; generated images are raised to 1/0.85 and divided
  by 50. ``to_network`` / ``from_network`` implement it for NumPy arrays and torch tensors alike.
* the Box-Cox transform used by the LHCb WGAN-GP (Chekalina et al., 2019), compatible with
  ``scipy.stats.boxcox`` / ``scipy.special.inv_boxcox``: ``y = (x**lmbda - 1) / lmbda`` (``log x`` for
  ``lmbda == 0``), applied to ``scale * x + shift`` so that empty cells (x = 0) stay finite.

``from_card`` / ``to_card`` map a checkpoint card's ``preprocessing`` dictionary to the matching pair, so
that loaders never need to know which transform a model was trained with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import torch

__all__ = [
    "DEFAULT_POWER",
    "DEFAULT_SCALE",
    "BoxCox",
    "boxcox_forward",
    "boxcox_inverse",
    "fit_boxcox",
    "from_network",
    "from_network_card",
    "to_network",
    "to_network_card",
]

DEFAULT_POWER = 0.85  # 3DGAN angle loader: cells ** 0.85 (Khattak et al. 2021)
DEFAULT_SCALE = 50.0  # 3DGAN files store GeV x 50

_A = TypeVar("_A", np.ndarray, torch.Tensor)


def _check_power(power: float) -> None:
    if not power > 0:
        raise ValueError(f"power={power} must be > 0; the 3DGAN recipe uses 0.85")


def to_network(showers_gev: _A, power: float = DEFAULT_POWER, scale: float = DEFAULT_SCALE) -> _A:
    """Convert cell energies in GeV to network units: ``(scale * E) ** power``.

    showers_gev: array or tensor of any shape (typically (N, 51, 51, 25)), GeV, non-negative. Negative
    values (which physical deposits never have) are clamped to 0 so the power stays real.
    Returns the same type and shape; NumPy input gives float32.
    """
    _check_power(power)
    if isinstance(showers_gev, torch.Tensor):
        return (showers_gev.clamp_min(0.0) * scale) ** power
    x = np.asarray(showers_gev, dtype=np.float32)
    return np.power(np.maximum(x, 0.0) * np.float32(scale), np.float32(power)).astype(np.float32)


def from_network(x: _A, power: float = DEFAULT_POWER, scale: float = DEFAULT_SCALE) -> _A:
    """Inverse of :func:`to_network`: ``max(x, 0) ** (1 / power) / scale`` in GeV.

    Negative network outputs are clamped to 0 before the power (a fractional power of a negative number is
    not real, and a negative deposit is unphysical). Returns the same type and shape as ``x``.
    """
    _check_power(power)
    if isinstance(x, torch.Tensor):
        return x.clamp_min(0.0) ** (1.0 / power) / scale
    arr = np.asarray(x, dtype=np.float32)
    return (np.power(np.maximum(arr, 0.0), np.float32(1.0 / power)) / np.float32(scale)).astype(np.float32)


def boxcox_forward(x: _A, lmbda: float) -> _A:
    """Box-Cox transform, identical to ``scipy.stats.boxcox(x, lmbda)`` for positive ``x``.

    ``y = (x**lmbda - 1) / lmbda`` for ``lmbda != 0``, ``log(x)`` otherwise. ``x`` must be > 0.
    """
    if isinstance(x, torch.Tensor):
        if lmbda == 0.0:
            return torch.log(x)
        return torch.expm1(lmbda * torch.log(x)) / lmbda
    arr = np.asarray(x, dtype=np.float64)
    if np.any(arr <= 0):
        raise ValueError(
            f"Box-Cox needs positive values, got minimum {arr.min():g}; add a positive shift "
            "(BoxCox(shift=...)) before transforming empty cells"
        )
    if lmbda == 0.0:
        return np.log(arr)
    return np.expm1(lmbda * np.log(arr)) / lmbda


def boxcox_inverse(y: _A, lmbda: float) -> _A:
    """Inverse Box-Cox, identical to ``scipy.special.inv_boxcox(y, lmbda)``.

    Values of ``y`` below ``-1/lmbda`` (for ``lmbda > 0``) have no pre-image; they are clamped to that bound,
    which maps to 0.
    """
    if isinstance(y, torch.Tensor):
        if lmbda == 0.0:
            return torch.exp(y)
        base = 1.0 + lmbda * y
        if lmbda > 0:
            base = base.clamp_min(0.0)
        return base ** (1.0 / lmbda)
    arr = np.asarray(y, dtype=np.float64)
    if lmbda == 0.0:
        return np.exp(arr)
    base = 1.0 + lmbda * arr
    if lmbda > 0:
        base = np.maximum(base, 0.0)
    return np.power(base, 1.0 / lmbda)


@dataclass(frozen=True)
class BoxCox:
    """Box-Cox transform of cell energies as in the LHCb WGAN-GP recipe (Chekalina et al. 2019).

    network = boxcox(scale * E_gev + shift, lmbda); the shift keeps empty cells finite.
    """

    lmbda: float  # Box-Cox exponent (fitted with scipy.stats.boxcox), dimensionless
    shift: float = 1e-3  # added to scale * E before the transform, same units as scale * E
    scale: float = DEFAULT_SCALE  # GeV -> file units (GeV x 50)

    def forward(self, showers_gev: _A) -> _A:
        """GeV (any shape) -> network units."""
        if isinstance(showers_gev, torch.Tensor):
            return boxcox_forward(showers_gev.clamp_min(0.0) * self.scale + self.shift, self.lmbda)
        arr = np.maximum(np.asarray(showers_gev, dtype=np.float64), 0.0) * self.scale + self.shift
        return boxcox_forward(arr, self.lmbda).astype(np.float32)

    def inverse(self, x: _A) -> _A:
        """Network units -> GeV; results below 0 (the shift undone) are clamped to 0."""
        if isinstance(x, torch.Tensor):
            return (boxcox_inverse(x, self.lmbda) - self.shift).clamp_min(0.0) / self.scale
        e = (boxcox_inverse(np.asarray(x, dtype=np.float64), self.lmbda) - self.shift) / self.scale
        return np.maximum(e, 0.0).astype(np.float32)

    def to_card(self) -> dict[str, Any]:
        """The ``preprocessing`` entry of a checkpoint card."""
        return {"kind": "boxcox", **asdict(self)}


def fit_boxcox(
    showers_gev: npt.ArrayLike,
    *,
    shift: float = 1e-3,
    scale: float = DEFAULT_SCALE,
    max_values: int = 200_000,
    seed: int = 0,
) -> BoxCox:
    """Fit the Box-Cox exponent by maximum likelihood (``scipy.stats.boxcox``) on ``scale * E + shift``.

    showers_gev: cell energies in GeV, any shape; at most ``max_values`` randomly chosen cells are used.
    """
    from scipy import stats

    values = np.asarray(showers_gev, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("cannot fit Box-Cox on an empty array; pass at least one shower")
    if values.size > max_values:
        values = np.random.default_rng(seed).choice(values, size=max_values, replace=False)
    _, lmbda = stats.boxcox(np.maximum(values, 0.0) * scale + shift)
    return BoxCox(lmbda=float(lmbda), shift=shift, scale=scale)


def _kind(preprocessing: dict[str, Any]) -> str:
    kind = str(preprocessing.get("kind", "power"))
    if kind not in ("power", "boxcox", "identity"):
        raise ValueError(f"preprocessing kind {kind!r} is unknown; use 'power', 'boxcox' or 'identity'")
    return kind


def _boxcox_from_card(p: dict[str, Any]) -> BoxCox:
    if "lmbda" not in p:
        raise ValueError("Box-Cox preprocessing needs the fitted 'lmbda'; write it with BoxCox.to_card()")
    shift, scale = float(p.get("shift", 1e-3)), float(p.get("scale", DEFAULT_SCALE))
    return BoxCox(lmbda=float(p["lmbda"]), shift=shift, scale=scale)


def from_network_card(x: _A, preprocessing: dict[str, Any] | None) -> _A:
    """Network units -> GeV following a card's ``preprocessing`` dict (default: 3DGAN power 0.85, scale 50)."""
    p = dict(preprocessing or {})
    kind = _kind(p)
    if kind == "identity":
        return x.clamp_min(0.0) if isinstance(x, torch.Tensor) else np.maximum(np.asarray(x, np.float32), 0.0)
    if kind == "boxcox":
        return _boxcox_from_card(p).inverse(x)
    return from_network(x, float(p.get("power", DEFAULT_POWER)), float(p.get("scale", DEFAULT_SCALE)))


def to_network_card(showers_gev: _A, preprocessing: dict[str, Any] | None) -> _A:
    """GeV -> network units following a card's ``preprocessing`` dict (inverse of :func:`from_network_card`)."""
    p = dict(preprocessing or {})
    kind = _kind(p)
    if kind == "identity":
        return showers_gev
    if kind == "boxcox":
        return _boxcox_from_card(p).forward(showers_gev)
    return to_network(showers_gev, float(p.get("power", DEFAULT_POWER)), float(p.get("scale", DEFAULT_SCALE)))

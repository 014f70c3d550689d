"""The app's view state: what the URL carries between pages, checked against the chosen source's range.

:func:`parse_view_state` turns a query-string mapping (``st.query_params``) into a validated :class:`ViewState`
plus a list of readable warnings; :func:`view_state_to_query` goes back. The energy and angle are checked
against the :class:`calogen.showers.ConditionRange` of the source the state names, so the sliders and the URL
accept what that source accepts. People see angles in degrees; :func:`to_radians` and :func:`to_degrees` are
the app's one conversion, and :attr:`ViewState.conditions` hands the library radians.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from calogen.showers import TRAINING_RANGE, ConditionRange, Conditions

__all__ = [
    "DEVICES",
    "MAX_SHOWERS",
    "ViewState",
    "parse_view_state",
    "slider_bounds",
    "stale_batch_message",
    "to_degrees",
    "to_radians",
    "view_state_to_query",
]

MAX_SHOWERS = 64  # showers per request in the app (CPU Monte Carlo takes seconds per GeV-shower)
DEVICES = ("auto", "cpu", "cuda")
_DEGREE_DIGITS = 6  # degrees shown and compared to 1e-6 deg (a range's edges come back from radians as 59.999...)


def to_radians(theta_deg: float) -> float:
    """An angle people typed or picked, degrees -> radians."""
    return math.radians(theta_deg)


def to_degrees(theta_rad: float) -> float:
    """An angle from the library, radians -> degrees for people (rounded to 1e-6 deg)."""
    return round(math.degrees(theta_rad), _DEGREE_DIGITS)


def slider_bounds(accepted: ConditionRange) -> tuple[tuple[float, float], tuple[float, float]]:
    """((energy lo, hi) GeV, (angle lo, hi) deg): the energy and angle sliders' ends for a source's range."""
    (e_lo, e_hi), (t_lo, t_hi) = accepted.energy_gev, accepted.theta_rad
    return (e_lo, e_hi), (to_degrees(t_lo), to_degrees(t_hi))


@dataclass(frozen=True)
class ViewState:
    """What the URL can carry between pages (units as named)."""

    energy_gev: float = 50.0  # primary energy, GeV
    theta_deg: float = 90.0  # polar angle, degrees (90 = normal incidence)
    n_showers: int = 4  # showers per request
    seed: int = 0  # seed of the sampling request
    source: str = ""  # "Monte Carlo", "GFlash" or a model name; "" = the best available (see sources.rank_sources)
    shower_index: int = 0  # the shower shown in detail
    device: str = "auto"  # "auto", "cpu" or "cuda"

    @property
    def theta_rad(self) -> float:
        """Polar angle, radians."""
        return to_radians(self.theta_deg)

    @property
    def conditions(self) -> Conditions:
        """The request: ``n_showers`` showers at (energy_gev GeV, theta_rad radians)."""
        return Conditions.broadcast(self.energy_gev, self.theta_rad, self.n_showers)

    def inside(self, accepted: ConditionRange) -> ViewState:
        """This state with its energy and angle moved to the nearest edge of ``accepted`` where outside it."""
        (e_lo, e_hi), (t_lo, t_hi) = slider_bounds(accepted)
        return replace(self, energy_gev=min(max(self.energy_gev, e_lo), e_hi),
                       theta_deg=min(max(self.theta_deg, t_lo), t_hi))


_QUERY_KEYS = {
    "energy_gev": "energy",
    "theta_deg": "theta",
    "n_showers": "n",
    "seed": "seed",
    "source": "source",
    "shower_index": "shower",
    "device": "device",
}


def _first(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else ""
    return str(value).strip()


def _parse_float(raw: str, key: str, bounds: tuple[float, float], unit: str, whose: str,
                 warnings: list[str]) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        warnings.append(f"{key}={raw!r} in the URL is not a number; using the default instead.")
        return None
    lo, hi = bounds
    if not math.isfinite(value) or not lo <= value <= hi:
        warnings.append(f"{key}={raw} in the URL is outside {lo:g}-{hi:g} {unit}{whose}; using the default instead.")
        return None
    return value


def _parse_int(raw: str, key: str, lo: int, hi: int, warnings: list[str]) -> int | None:
    try:
        value = int(raw)
    except ValueError:
        warnings.append(f"{key}={raw!r} in the URL is not a whole number; using the default instead.")
        return None
    if not lo <= value <= hi:
        warnings.append(f"{key}={raw} in the URL is outside {lo}-{hi}; using the default instead.")
        return None
    return value


def parse_view_state(
    params: Mapping[str, Any],
    *,
    default: ViewState | None = None,
    ranges: Mapping[str, ConditionRange] | None = None,
) -> tuple[ViewState, list[str]]:
    """Validate query-string parameters; bad values fall back to ``default`` with a warning each.

    params: mapping of key -> string (or list of strings, last one wins), e.g. ``st.query_params``.
            Keys: energy (GeV), theta (deg), n, seed, source, shower, device.
    ranges: the available sources, name -> the range it accepts. An unknown source falls back with a warning;
            energy and angle are checked against the range of the source in effect (None: any source name,
            and :data:`calogen.showers.TRAINING_RANGE`). The result always lies inside that range: a default
            outside it is moved to its nearest edge.
    Returns (state, warnings); warnings are sentences naming the key, the value and what was done.
    """
    state = default or ViewState()
    warnings: list[str] = []
    changes: dict[str, Any] = {}
    raw = {key: _first(params[key]) for key in _QUERY_KEYS.values() if key in params}
    if "source" in raw:
        if ranges is None or raw["source"] in ranges:
            changes["source"] = raw["source"] or None
        else:
            warnings.append(f"source={raw['source']!r} in the URL is not an available source "
                            f"({', '.join(ranges) or 'none installed'}); using the default instead.")
    source = changes.get("source") or state.source
    accepted = ranges[source] if ranges is not None and source in ranges else TRAINING_RANGE
    whose = f" ({source}'s range)" if ranges is not None and source in ranges else ""
    energy_bounds, theta_bounds = slider_bounds(accepted)
    if "energy" in raw:
        changes["energy_gev"] = _parse_float(raw["energy"], "energy", energy_bounds, "GeV", whose, warnings)
    if "theta" in raw:
        changes["theta_deg"] = _parse_float(raw["theta"], "theta", theta_bounds, "deg", whose, warnings)
    if "n" in raw:
        changes["n_showers"] = _parse_int(raw["n"], "n", 1, MAX_SHOWERS, warnings)
    if "seed" in raw:
        changes["seed"] = _parse_int(raw["seed"], "seed", 0, 2**31 - 1, warnings)
    if "shower" in raw:
        changes["shower_index"] = _parse_int(raw["shower"], "shower", 0, MAX_SHOWERS - 1, warnings)
    if "device" in raw:
        if raw["device"] in DEVICES:
            changes["device"] = raw["device"]
        else:
            warnings.append(
                f"device={raw['device']!r} in the URL is not one of {', '.join(DEVICES)}; using the default instead."
            )
    state = replace(state, **{k: v for k, v in changes.items() if v is not None}).inside(accepted)
    if state.shower_index >= state.n_showers:
        state = replace(state, shower_index=0)
    return state, warnings


def view_state_to_query(state: ViewState) -> dict[str, str]:
    """The query-string form of ``state`` (strings; floats without trailing zeros)."""
    out: dict[str, str] = {}
    for name, value in asdict(state).items():
        out[_QUERY_KEYS[name]] = f"{value:g}" if isinstance(value, float) else str(value)
    return out


def stale_batch_message(shown: ViewState, wanted: ViewState) -> str | None:
    """A sentence naming what differs between the batch on screen (``shown``) and the widgets (``wanted``),
    or None when the batch was made with the widgets' settings. The shower index is not a condition."""
    fields = (("source", "source", "{}"), ("energy_gev", "energy", "{:g} GeV"), ("theta_deg", "angle", "{:g} deg"),
              ("n_showers", "showers", "{}"), ("seed", "seed", "{}"))
    differ = [(label, fmt.format(getattr(shown, name)), fmt.format(getattr(wanted, name)))
              for name, label, fmt in fields if getattr(shown, name) != getattr(wanted, name)]
    if not differ:
        return None
    changes = ", ".join(f"{label} {new} (shown: {old})" for label, old, new in differ)
    return (f"The settings differ from the batch on screen: {changes}. Everything below, the Monte Carlo "
            "comparison included, is for the batch on screen; press Generate for the new settings.")

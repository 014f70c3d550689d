"""Argument helpers shared by the sub-commands: conditions, device, progress, errors, figures in words.

People type angles in degrees; the library takes radians. :func:`deg_to_rad` and :func:`rad_to_deg` are the
command line's one conversion between the two, and every command goes through them.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from calogen.showers import ConditionRange, Conditions, OutOfRangeError

__all__ = [
    "CliError",
    "add_condition_args",
    "add_device_arg",
    "conditions_from_args",
    "deg_to_rad",
    "describe_figure",
    "progress_bar",
    "rad_to_deg",
    "resolve_device",
]


# relative errors, printed in per cent
_PERCENT_FIGURES = frozenset({"sf_mre", "sf_relative_error_max_bin", "bmre_profile_x", "bmre_profile_y",
                              "bmre_profile_z"})


class CliError(Exception):
    """A user mistake on the command line; printed as one line ``error: <message>``, exit status 2."""


def deg_to_rad(theta_deg: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Angles typed in degrees -> radians, float64 of the input's shape."""
    return np.radians(np.asarray(theta_deg, dtype=np.float64))


def rad_to_deg(theta_rad: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Angles in radians -> degrees for printing, float64 of the input's shape."""
    return np.degrees(np.asarray(theta_rad, dtype=np.float64))


def add_condition_args(parser: argparse.ArgumentParser, *, default_n: int = 100) -> None:
    """--energy E | --energy-range LO HI (GeV); --theta DEG | --theta-range LO HI (degrees); -n; --seed."""
    energy = parser.add_mutually_exclusive_group()
    energy.add_argument("--energy", type=float, metavar="GEV", help="primary energy, GeV (default 100)")
    energy.add_argument("--energy-range", type=float, nargs=2, metavar=("LO", "HI"),
                        help="sample energies uniformly in [LO, HI] GeV")
    theta = parser.add_mutually_exclusive_group()
    theta.add_argument("--theta", type=float, metavar="DEG",
                       help="polar angle, degrees (90 = normal incidence, the default)")
    theta.add_argument("--theta-range", type=float, nargs=2, metavar=("LO", "HI"),
                       help="sample angles uniformly in [LO, HI] degrees")
    parser.add_argument("-n", "--number", dest="n", type=int, default=default_n, help="number of showers")
    parser.add_argument("--seed", type=int, default=None, help="random seed (reproducible on a given device)")


def _interval(args: argparse.Namespace, name: str, default: float, unit: str) -> tuple[float, float]:
    """(LO, HI) of --NAME-range, or (V, V) of --NAME; CliError for a non-finite or reversed value."""
    given = getattr(args, f"{name}_range", None)
    lo, hi = given if given else (default if getattr(args, name) is None else float(getattr(args, name)),) * 2
    flag = f"--{name}-range" if given else f"--{name}"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise CliError(f"{flag} {lo:g} {unit}: give a finite number" if not given else
                       f"{flag} {lo:g} {hi:g} {unit}: give finite numbers")
    if lo > hi:
        raise CliError(f"{name} range {lo:g}-{hi:g} {unit} is reversed; give LO <= HI")
    return lo, hi


def conditions_from_args(args: argparse.Namespace, accepted: ConditionRange | None, *, who: str = "",
                         hint: str = "") -> Conditions:
    """Per-shower conditions from the parsed arguments, checked against the range ``who`` accepts.

    Fixed values are repeated; ranges are sampled uniformly with ``args.seed``. Degrees become radians here
    (:func:`deg_to_rad`), and the values are rounded to float32, as a shower file stores them, so that a file's
    conditions give its showers again. accepted: the source's range (None: any energy > 0 GeV and angle in
    0-180 deg, for a model asked to extrapolate); hint: appended to an out-of-range message (e.g. how to widen
    the range). Raises :class:`CliError` with one readable message for bad input.
    """
    n = int(args.n)
    if n <= 0:
        raise CliError(f"-n {n}: the number of showers must be a positive integer")
    e_lo, e_hi = _interval(args, "energy", 100.0, "GeV")
    t_lo, t_hi = _interval(args, "theta", 90.0, "deg")
    if e_lo <= 0.0:
        raise CliError(f"energy {e_lo:g} GeV: give a positive energy")
    if not 0.0 < t_lo <= t_hi < 180.0:
        raise CliError(f"angle {t_lo:g}-{t_hi:g} deg: give angles between 0 and 180 deg (90 = normal incidence)")
    if accepted is not None:
        try:
            accepted.check(Conditions.broadcast([e_lo, e_hi], deg_to_rad([t_lo, t_hi])), who)
        except OutOfRangeError as exc:
            raise CliError(f"{exc}{hint}") from None
    rng = np.random.default_rng(args.seed)
    energy = rng.uniform(e_lo, e_hi, n) if args.energy_range else np.full(n, e_lo)
    theta_deg = rng.uniform(t_lo, t_hi, n) if args.theta_range else np.full(n, t_lo)
    return Conditions(energy.astype(np.float32).astype(np.float64),
                      deg_to_rad(theta_deg).astype(np.float32).astype(np.float64))


def add_device_arg(parser: argparse.ArgumentParser) -> None:
    """--device cpu|cuda|auto (auto: CUDA when present, else CPU)."""
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                        help="where to run: cpu, cuda, or auto (CUDA if present)")


def resolve_device(name: str) -> Any:
    """torch.device for 'cpu', 'cuda' or 'auto'; :class:`CliError` if CUDA is asked for but absent."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CliError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise CliError(f"--device {name!r} is not a device torch knows ({exc}); use cpu or cuda") from exc


def progress_bar(total: int, desc: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback drawing a tqdm bar on stderr; close it by calling with done == total."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="shower", leave=True)

    def update(done: int, total_now: int) -> None:
        bar.total = total_now
        bar.n = done
        bar.refresh()
        if done >= total_now:
            bar.close()

    return update


def _percent_target(low: float, high: float) -> str:
    if low == -math.inf:
        return f"<= {100 * high:g} %"
    if high == math.inf:
        return f">= {100 * low:g} %"
    return f"{100 * low:g}-{100 * high:g} %"


def describe_figure(key: str, value: float | None) -> str:
    """A figure of merit in words: the JSON name and value, the readable name, the value (relative errors in
    per cent), the pass line and verdict, and what it measures, from :data:`calogen.plots.report.METRIC_SPECS`.

    E.g. ``sf_mre=2.127: SF error 212.7 %, target <= 5 %: FAIL (mean relative error of the mean sampling
    fraction over the energy and angle bins (3DGAN))``. Names without a spec give ``key=value``.
    """
    from calogen.plots.report import SPECS_BY_KEY

    number = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    raw = f"{key}={number:.4g}" if number is not None else f"{key}=n/a"
    spec = SPECS_BY_KEY.get(key)
    if spec is None:
        return raw
    percent = key in _PERCENT_FIGURES
    shown = "n/a" if number is None else f"{100 * number:.1f} %" if percent else spec.format(number)
    target = _percent_target(spec.low, spec.high) if percent else spec.target
    verdict = {True: "pass", False: "FAIL", None: "no value"}[spec.passes(number)]
    return f"{raw}: {spec.label} {shown}, target {target}: {verdict} ({spec.meaning})"

"""Argument helpers shared by the sub-commands: conditions, device, progress, errors, figures in words."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "CliError",
    "add_condition_args",
    "add_device_arg",
    "conditions_from_args",
    "describe_figure",
    "progress_bar",
    "resolve_device",
]


# relative errors, printed in per cent
_PERCENT_FIGURES = frozenset({"sf_mre", "sf_relative_error_max_bin", "bmre_profile_x", "bmre_profile_y",
                              "bmre_profile_z"})


class CliError(Exception):
    """A user mistake on the command line; printed as one line ``error: <message>``, exit status 2."""


def add_condition_args(parser: argparse.ArgumentParser, *, default_n: int = 100) -> None:
    """--energy E | --energy-range LO HI (GeV); --theta DEG | --theta-range LO HI (degrees); -n; --seed."""
    energy = parser.add_mutually_exclusive_group()
    energy.add_argument("--energy", type=float, metavar="GEV", help="primary energy, GeV")
    energy.add_argument("--energy-range", type=float, nargs=2, metavar=("LO", "HI"),
                        help="sample energies uniformly in [LO, HI] GeV")
    theta = parser.add_mutually_exclusive_group()
    theta.add_argument("--theta", type=float, metavar="DEG", help="polar angle, degrees (90 = normal incidence)")
    theta.add_argument("--theta-range", type=float, nargs=2, metavar=("LO", "HI"),
                       help="sample angles uniformly in [LO, HI] degrees")
    parser.add_argument("-n", "--number", dest="n", type=int, default=default_n, help="number of showers")
    parser.add_argument("--seed", type=int, default=None, help="random seed (reproducible on a given device)")


def _check_range(name: str, unit: str, lo: float, hi: float, allowed: tuple[float, float]) -> None:
    a_lo, a_hi = allowed
    for value in (lo, hi):
        if not math.isfinite(value) or not a_lo <= value <= a_hi:
            raise CliError(f"{name}={value:g} {unit} is outside the allowed range {a_lo:g}-{a_hi:g} {unit}")
    if lo > hi:
        raise CliError(f"{name} range {lo:g}-{hi:g} {unit} is reversed; give LO <= HI")


def conditions_from_args(
    args: argparse.Namespace,
    *,
    energy_range: tuple[float, float] = (1.0, 500.0),
    theta_range_deg: tuple[float, float] = (60.0, 120.0),
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Per-shower conditions from the parsed arguments.

    Returns energy_gev float32 (n,) and theta_rad float32 (n,). Fixed values are repeated; ranges are sampled
    uniformly with ``args.seed``. Raises :class:`CliError` naming the allowed range for out-of-range input.
    """
    n = int(args.n)
    if n <= 0:
        raise CliError(f"-n {n}: the number of showers must be a positive integer")
    rng = np.random.default_rng(args.seed)
    if getattr(args, "energy_range", None):
        lo, hi = args.energy_range
        _check_range("energy", "GeV", lo, hi, energy_range)
        energy = rng.uniform(lo, hi, n)
    else:
        value = 100.0 if args.energy is None else float(args.energy)
        _check_range("energy", "GeV", value, value, energy_range)
        energy = np.full(n, value)
    if getattr(args, "theta_range", None):
        lo, hi = args.theta_range
        _check_range("theta", "deg", lo, hi, theta_range_deg)
        theta_deg = rng.uniform(lo, hi, n)
    else:
        value = 90.0 if args.theta is None else float(args.theta)
        _check_range("theta", "deg", value, value, theta_range_deg)
        theta_deg = np.full(n, value)
    return energy.astype(np.float32), np.deg2rad(theta_deg).astype(np.float32)


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

    finite = isinstance(value, (int, float)) and math.isfinite(value)
    raw = f"{key}={value:.4g}" if finite else f"{key}=n/a"
    spec = SPECS_BY_KEY.get(key)
    if spec is None:
        return raw
    percent = key in _PERCENT_FIGURES
    shown = (f"{100 * value:.1f} %" if percent else spec.format(value)) if finite else "n/a"
    target = _percent_target(spec.low, spec.high) if percent else spec.target
    verdict = {True: "pass", False: "FAIL", None: "no value"}[spec.passes(value if finite else None)]
    return f"{raw}: {spec.label} {shown}, target {target}: {verdict} ({spec.meaning})"

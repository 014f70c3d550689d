"""Per-bin physics of a comparison as a table: sampling fraction, hit count, measured angle and core containment
of each (energy, angle) bin, with a verdict against the per-bin targets.

Targets per bin (the candidate against the reference Monte Carlo): sampling fraction within 2 % (the 3DGAN papers
quote "a few percent", Khattak et al. arXiv:2103.08497); mean hit count (cells above 0.2 MeV) within 10 %; mean
measured angle (from the layer barycentres, as in the 3DGAN angle constraint) within 2 degrees. The core
containment (energy fraction within 5.1 mm of the axis) is listed as a difference without a verdict.

The SF error carries its standard error from the sampling noise of both samples' means (the two standard errors
of the mean added in quadrature, relative to the reference's mean): a bin whose error is within about two of
those standard errors shows no difference that its showers resolve, whatever the 2 % verdict says.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from calogen.validation.comparison import BinRow

__all__ = ["BIN_TARGETS", "BinVerdict", "bin_table_lines", "judge_bin", "sf_error_standard_error"]

BIN_TARGETS = {"sf_relative_error": 0.02, "hits_relative_error": 0.10, "angle_difference_deg": 2.0}
"""Largest allowed |value| per bin: SF relative error, hit-count relative error, measured-angle difference (deg)."""


@dataclass(frozen=True)
class BinVerdict:
    """One bin's figures (None where the row lacks them) and the names of the targets it misses."""

    sf_relative_error: float | None
    hits_relative_error: float | None
    angle_difference_deg: float | None
    core_5mm_difference: float | None
    failed: tuple[str, ...]
    sf_relative_error_err: float | None = None
    """Standard error of the SF relative error (a fraction): sqrt(err_ref^2 + err_cand^2) / SF_ref."""


def sf_error_standard_error(row: BinRow) -> float | None:
    """The standard error of a bin's SF relative error from the standard errors of its two mean sampling
    fractions (added in quadrature, over the reference mean); None where they were not measured."""
    values = (row.sf_reference, row.sf_reference_err, row.sf_candidate_err)
    if any(v is None or not math.isfinite(v) for v in values) or not row.sf_reference:
        return None
    ref, ref_err, cand_err = (float(v) for v in values)  # type: ignore[arg-type]
    return math.hypot(ref_err, cand_err) / abs(ref)


def _difference(candidate: float | None, reference: float | None, *, relative: bool) -> float | None:
    if candidate is None or reference is None or not (math.isfinite(candidate) and math.isfinite(reference)):
        return None
    if relative:
        return candidate / reference - 1.0 if reference != 0.0 else None
    return candidate - reference


def judge_bin(row: BinRow) -> BinVerdict:
    """The figures of one bin and the per-bin targets it misses (a figure that was not measured misses none)."""
    angle = _difference(row.measured_angle_rad_candidate, row.measured_angle_rad_reference, relative=False)
    figures = {
        "sf_relative_error": row.sf_relative_error,
        "hits_relative_error": _difference(row.n_hits_candidate, row.n_hits_reference, relative=True),
        "angle_difference_deg": None if angle is None else math.degrees(angle),
    }
    failed = tuple(name for name, value in figures.items()
                   if value is not None and math.isfinite(value) and abs(value) > BIN_TARGETS[name])
    core = _difference(row.core_5mm_candidate, row.core_5mm_reference, relative=False)
    return BinVerdict(figures["sf_relative_error"], figures["hits_relative_error"], figures["angle_difference_deg"],
                      core, failed, sf_error_standard_error(row))


def _cell(value: float | None, fmt: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, fmt)


def bin_table_lines(rows: Sequence[BinRow]) -> list[str]:
    """A fixed-width table, one line per bin, then one line per target: in how many bins it is met."""
    head = (f"{'E (GeV)':>13s} {'theta (deg)':>13s} {'n ref/gen':>11s} {'SF ref':>7s} {'SF err +- s.e.':>14s} "
            f"{'hits ref':>8s} {'hits err':>8s} {'angle d':>8s} {'core ref':>8s} {'core d':>7s}  misses")
    lines = [head, "-" * len(head)]
    verdicts = []
    for row in rows:
        verdict = judge_bin(row)
        verdicts.append(verdict)
        # a bin around an energy point (2 GeV +- 5) is named by its centre, never by a negative edge
        lo, hi = row.energy_gev
        energy = f"{0.5 * (lo + hi):.4g} +- {0.5 * (hi - lo):.3g}"
        theta = f"{math.degrees(row.theta_rad[0]):.0f}-{math.degrees(row.theta_rad[1]):.0f}"
        sf_ref = None if row.sf_reference is None else 100.0 * row.sf_reference
        sf_se = None if verdict.sf_relative_error_err is None else 100.0 * verdict.sf_relative_error_err
        lines.append(
            f"{energy:>13s} {theta:>13s} {f'{row.n_reference}/{row.n_candidate}':>11s} {_cell(sf_ref, '.3f'):>6s}% "
            f"{_cell(None if verdict.sf_relative_error is None else 100 * verdict.sf_relative_error, '.1f'):>6s} +- "
            f"{_cell(sf_se, '.1f'):>4s}% "
            f"{_cell(row.n_hits_reference, '.0f'):>8s} "
            f"{_cell(None if verdict.hits_relative_error is None else 100 * verdict.hits_relative_error, '+.0f'):>7s}% "
            f"{_cell(verdict.angle_difference_deg, '+.1f'):>8s} {_cell(row.core_5mm_reference, '.3f'):>8s} "
            f"{_cell(verdict.core_5mm_difference, '+.3f'):>7s}  {', '.join(verdict.failed) or '-'}")
    for name, limit in BIN_TARGETS.items():
        measured = [v for v in verdicts if getattr(v, name) is not None]
        met = sum(name not in v.failed for v in measured)
        shown = f"{100 * limit:g} %" if name != "angle_difference_deg" else f"{limit:g} deg"
        lines.append(f"{name} within {shown}: {met} of {len(measured)} bins")
    pairs = [(v.sf_relative_error, v.sf_relative_error_err) for v in verdicts
             if v.sf_relative_error is not None and v.sf_relative_error_err]
    if pairs:
        beyond = sum(error > 2.0 * se for error, se in pairs)
        errors = sorted(se for _, se in pairs)
        lines.append(f"sf_relative_error beyond 2 standard errors: {beyond} of {len(pairs)} bins (standard error "
                     f"{100 * errors[0]:.1f}-{100 * errors[-1]:.1f} %)")
    return lines

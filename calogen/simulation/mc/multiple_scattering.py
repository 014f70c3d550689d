"""Multiple scattering of e+- over a condensed-history step: the deflection's polar angle (torch).

The deflection's distribution has Lewis's exact mean <1 - cos theta> = 1 - exp(-s / lambda_1) for any step
(Lewis, Phys. Rev. 78 (1950) 526), so its mean does not depend on how the path is cut into steps: as in
Geant4's Urban model (Geant4 Physics Reference Manual, "Multiple scattering"), a Gaussian core (the
Lynch-Dahl width of Moliere's distribution, Nucl. Instrum. Meth. B 58 (1991) 6) mixed with a single-scattering
tail of the screened-Rutherford shape, the mixture weight fixed by the exact mean; where the core alone is
already as wide as the mean allows (few collisions) or the mean is beyond any core (diffusion), a
screened-Rutherford (Wentzel) distribution whose screening parameter gives the exact mean. The tabulated
lambda_1, chi_c^2 and chi_a^2 come from :func:`calogen.simulation.mc.cross_sections.elastic_tables`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from calogen.simulation.mc.physics import PhysicsTables

__all__ = ["MultipleScattering"]

_LYNCH_DAHL_F = 0.98  # fraction of the single scatters kept in the Gaussian width (Lynch and Dahl 1991)


def _wentzel_mean(a: torch.Tensor) -> torch.Tensor:
    """<1 - cos theta> of the screened-Rutherford (Wentzel) distribution f(u) ~ 1/(u + 2a)^2, u = 1 - cos theta."""
    return 2.0 * a * ((1.0 + a) * torch.log1p(1.0 / a) - 1.0)


class _WentzelInverse:
    """The screening parameter a of the Wentzel distribution with a given mean m = <1 - cos theta>, by
    interpolation in ln a on a uniform grid of logit(m) (m in (0, 1))."""

    def __init__(self, device: torch.device, dtype: torch.dtype) -> None:
        ln_a = torch.linspace(-40.0, 16.0, 8001, dtype=torch.float64)
        m = _wentzel_mean(torch.exp(ln_a))
        logit = torch.log(m) - torch.log1p(-m)
        self.x0, self.x1, self.n = -36.0, 14.0, 4001
        grid = torch.linspace(self.x0, self.x1, self.n, dtype=torch.float64)
        idx = torch.searchsorted(logit, grid).clamp(1, logit.numel() - 1)
        lo, hi = logit[idx - 1], logit[idx]
        f = ((grid - lo) / (hi - lo)).clamp(0.0, 1.0)
        self.table = (ln_a[idx - 1] + f * (ln_a[idx] - ln_a[idx - 1])).to(device=device, dtype=dtype)
        self.inv_dx = (self.n - 1) / (self.x1 - self.x0)

    def __call__(self, mean: torch.Tensor) -> torch.Tensor:
        """Screening parameters a (N,) for the means (N,)."""
        m = mean.clamp(1e-15, 1.0 - 1e-6)
        x = (torch.log(m) - torch.log1p(-m)).clamp(self.x0, self.x1)
        u = (x - self.x0) * self.inv_dx
        i = u.floor().long().clamp(0, self.n - 2)
        f = u - i
        return torch.exp(self.table[i] * (1.0 - f) + self.table[i + 1] * f)


class MultipleScattering:
    """Samples the multiple-scattering deflection of e+- from the elastic tables of ``tables``; the inverse of
    the Wentzel mean is tabulated on ``device`` in ``dtype`` (those of the cascade's geometry)."""

    def __init__(self, tables: PhysicsTables, device: torch.device, dtype: torch.dtype) -> None:
        self.tables = tables
        # the elastic-scattering tables of e+- (the same for both charges): (M, G, 3)
        self.elastic_table = torch.stack((tables.inv_lambda1, tables.chi_c2, tables.ln_chi_a2), dim=2).contiguous()
        self._wentzel_inverse = _WentzelInverse(device, dtype)

    def cos_theta(self, s: torch.Tensor, mat: torch.Tensor, t_mid: torch.Tensor,
                  uniform: Callable[[int], torch.Tensor]) -> torch.Tensor:
        """cos of the deflection (N,) after true paths s (N,) mm in materials mat (N,) int64 at kinetic
        energies t_mid (N,) MeV; ``uniform(n)`` draws n uniform numbers in [0, 1) (the cascade's stream).

        Lewis's mean m = 1 - exp(-s / lambda_1) is kept exactly (see the module docstring): a mixture
        p core + (1 - p) tail of an exponential in u = 1 - cos theta with the Lynch-Dahl Gaussian width (u ~
        theta^2 / 2, mean theta_0^2) and a Wentzel tail whose screening equals that width, p from the mean;
        outside the mixture's reach a Wentzel distribution with the screening that gives m.
        """
        n = s.numel()
        el = self.tables.lookup_rows(self.elastic_table, mat, t_mid)  # (N, 3)
        inv_l1, chi_c2, chi_a2 = el[:, 0], el[:, 1] * s, torch.exp(el[:, 2])
        mean = -torch.expm1(-s * inv_l1)  # Lewis: <1 - cos theta>
        # Lynch and Dahl (1991), eqs. 6-7: theta_0^2 = chi_c^2 / (1 + F^2) [(1 + v)/v ln(1 + v) - 1],
        # v = Omega / (2 (1 - F)), Omega = chi_c^2 / (1.167 chi_a^2) the mean number of scatters
        v = (0.5 / (1.0 - _LYNCH_DAHL_F)) * chi_c2 / (1.167 * chi_a2)
        v = v.clamp_min(1e-6)
        width = chi_c2 / (1.0 + _LYNCH_DAHL_F**2) * ((1.0 + v) / v * torch.log1p(v) - 1.0)
        width = width.clamp(1e-12, 10.0)
        core_mean = width - 2.0 / torch.expm1((2.0 / width).clamp(max=80.0))
        tail_mean = _wentzel_mean(width)
        mixture = (core_mean < mean) & (mean < tail_mean) & (v > 1.0)
        p_core = ((tail_mean - mean) / (tail_mean - core_mean)).clamp(0.0, 1.0)
        a_single = self._wentzel_inverse(mean)
        use_core = mixture & (uniform(n) < p_core)
        a = torch.where(mixture, width, a_single)
        r = uniform(n)
        u_core = -width * torch.log1p(-r * -torch.expm1(-2.0 / width))
        u_tail = 2.0 * a * r / (1.0 + a - r)
        u = torch.where(use_core, u_core, u_tail).clamp(0.0, 2.0)
        return 1.0 - u


"""Interactions of photons, electrons and positrons in the cascade: the secondaries they make, sampled from
the differential cross sections (torch, MeV, mm).

Photons: Compton scattering (Klein-Nishina), the photo-effect (Sauter's photoelectron angles), pair
production (complete screening). Electrons and positrons: hard bremsstrahlung (Tsai's screened cross section
with dielectric suppression), Moller and Bhabha delta rays, positron annihilation in flight. The models follow
:mod:`calogen.simulation.mc.cross_sections`; the total cross sections that choose the interaction are in the
:class:`calogen.simulation.mc.physics.PhysicsTables`.
"""

from __future__ import annotations

import math

import torch

from calogen.simulation.mc.constants import ELECTRON_TRACKING_CUT_MEV
from calogen.simulation.mc.cross_sections import screening_functions
from calogen.simulation.mc.particles import Particles, normalise, rotate
from calogen.simulation.mc.state import M_E, PASSIVE, CascadeState

__all__ = ["Interactions"]

_SAUTER_MAX_MEV = 100.0  # photoelectrons above this keep the photon's direction (as Geant4)


class Interactions(CascadeState):
    """The discrete interactions of the cascade; each queues its secondaries and updates the primaries."""

    # ------------------------------------------------------------------ photons
    def _compton(self, p: Particles) -> None:
        """Klein-Nishina scattering sampled as Butcher and Messel (G4KleinNishinaCompton)."""
        n = len(p)
        kappa = p.energy / M_E
        eps0 = 1.0 / (1.0 + 2.0 * kappa)
        eps0sq = eps0 * eps0
        alpha1 = -torch.log(eps0)
        alpha2 = alpha1 + 0.5 * (1.0 - eps0sq)
        eps = torch.ones_like(kappa)
        pending = torch.ones(n, dtype=torch.bool, device=self.device)
        for _ in range(100):
            idx = pending.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            m = idx.numel()
            r1, r2, r3 = self._u(m), self._u(m), self._u(m)
            a1, a2, e0s = alpha1[idx], alpha2[idx], eps0sq[idx]
            first = a1 > a2 * r1
            e = torch.where(first, torch.exp(-a1 * r2), torch.sqrt(e0s + (1.0 - e0s) * r2))
            onecost = (1.0 - e) / (e * kappa[idx])
            sint2 = onecost * (2.0 - onecost)
            accept = (1.0 - e * sint2 / (1.0 + e * e)) >= r3
            eps[idx[accept]] = e[accept]
            pending[idx[accept]] = False
        cost = (1.0 - (1.0 - eps) / (eps * kappa)).clamp(-1.0, 1.0)
        phi = 2.0 * math.pi * self._u(n)
        k_new = eps * p.energy
        d_new = rotate(p.dir, cost, phi)
        t_e = p.energy - k_new
        p_e = p.energy.unsqueeze(1) * p.dir - k_new.unsqueeze(1) * d_new
        d_e = normalise(p_e)
        self.push(Particles(p.pos, d_new, k_new, p.charge, p.slab, p.shower))
        electron = Particles(p.pos, d_e, t_e, torch.full_like(t_e, -1.0), p.slab, p.shower)
        self._push_electrons(electron)

    def _photo(self, p: Particles) -> None:
        """Photo-absorption: the photoelectron takes k minus the K (or L1) binding energy of the heaviest
        element, which is deposited on the spot (fluorescence and Auger electrons are not followed); its
        direction follows Sauter's distribution (sampled as in the PENELOPE 2014 manual, eqs. 2.24-2.31)."""
        mat = self.g.slab_mat[p.slab]
        b_k, b_l = self.t.binding_k[mat], self.t.binding_l[mat]
        binding = torch.where(p.energy > b_k, b_k, torch.where(p.energy > b_l, b_l, 0.0))
        t_pe = p.energy - binding
        self._deposit(p.shower, p.slab, p.pos[:, 0], p.pos[:, 1], binding, PASSIVE)
        n = len(p)
        tau = (t_pe / M_E).clamp_min(1e-6)
        gam = 1.0 + tau
        beta = torch.sqrt(tau * (tau + 2.0)) / gam
        ac = (1.0 - beta) / beta
        a1 = 0.5 * beta * gam * tau * (gam - 2.0)
        a2 = ac + 2.0
        gtmax = 2.0 * (a1 + 1.0 / ac)
        tsam = torch.zeros_like(tau)

        def trial(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            r = self._u(idx.numel())
            aci, a2i = ac[idx], a2[idx]
            ts = 2.0 * aci * (2.0 * r + a2i * torch.sqrt(r)) / (a2i * a2i - 4.0 * r)
            gtr = (2.0 - ts) * (a1[idx] + 1.0 / (aci + ts))
            return ts, self._u(idx.numel()) * gtmax[idx] <= gtr

        # below the tracking cut the photoelectron stops on the spot: its direction does not matter
        self._rejection((t_pe < _SAUTER_MAX_MEV) & (t_pe >= ELECTRON_TRACKING_CUT_MEV), trial, tsam)
        d = rotate(p.dir, (1.0 - tsam).clamp(-1.0, 1.0), 2.0 * math.pi * self._u(n))
        self._push_electrons(Particles(p.pos, d, t_pe, torch.full_like(t_pe, -1.0), p.slab, p.shower))

    def _pair(self, p: Particles) -> None:
        """Pair production: x = E_lepton/k with dsigma/dx ~ 1 - 4/3 x (1 - x) on [m/k, 1 - m/k]
        (complete screening, PDG eq. 34.31); uniform in [m/k, 1/2] below 2 MeV (as Geant4)."""
        n = len(p)
        k = p.energy
        x_min = M_E / k
        x = torch.empty_like(k)
        pending = torch.ones(n, dtype=torch.bool, device=self.device)
        for _ in range(100):
            idx = pending.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            m = idx.numel()
            lo = x_min[idx]
            xs = lo + (1.0 - 2.0 * lo) * self._u(m)
            accept = self._u(m) <= 1.0 - 4.0 / 3.0 * xs * (1.0 - xs)
            accept |= k[idx] < 2.0
            xs = torch.where(k[idx] < 2.0, lo + (0.5 - lo) * self._u(m), xs)
            x[idx[accept]] = xs[accept]
            pending[idx[accept]] = False
        e1 = x * k
        e2 = k - e1
        theta1 = self._urban_angle(e1)
        theta2 = self._urban_angle(e2)
        phi = 2.0 * math.pi * self._u(n)
        d1 = rotate(p.dir, torch.cos(theta1), phi)
        d2 = rotate(p.dir, torch.cos(theta2), phi + math.pi)
        swap = self._u(n) < 0.5  # which lepton is the positron
        q1 = torch.where(swap, 1.0, -1.0).to(self.dtype)
        t1 = (e1 - M_E).clamp_min(0.0)
        t2 = (e2 - M_E).clamp_min(0.0)
        # bookkeeping: k = T- + (T+ + 2 m); rounding kept in the positron
        t_pos = torch.where(swap, t1, t2)
        t_ele = torch.where(swap, t2, t1)
        t_pos = (k - t_ele - 2.0 * M_E).clamp_min(0.0)
        t_ele = k - 2.0 * M_E - t_pos
        tt1 = torch.where(swap, t_pos, t_ele)
        tt2 = torch.where(swap, t_ele, t_pos)
        leptons = Particles(
            torch.cat((p.pos, p.pos)), torch.cat((d1, d2)), torch.cat((tt1, tt2)), torch.cat((q1, -q1)),
            torch.cat((p.slab, p.slab)), torch.cat((p.shower, p.shower)),
        )
        self._push_electrons(leptons)

    def _urban_angle(self, e_total: torch.Tensor) -> torch.Tensor:
        """Polar angle of pair leptons / bremsstrahlung photons: u m/E with Urban's universal u (Geant3 PHYS211)."""
        n = e_total.numel()
        a = torch.where(self._u(n) < 9.0 / 36.0, 0.625, 1.875).to(self.dtype)
        u = -torch.log((self._u(n) * self._u(n)).clamp_min(1e-30)) / a
        return (u * M_E / e_total).clamp(max=math.pi)

    # ------------------------------------------------------------------ charged particles
    def _brems(self, p: Particles, q: Particles, rows: torch.Tensor) -> None:
        """Hard bremsstrahlung photon k > k_cut: y = k/E ~ 1/y on [y_c, T/E], accepted with Tsai's screened
        bracket (eq. 3.9) times the dielectric suppression over its complete-screening maximum."""
        e_tot = p.energy + M_E
        mat = self.g.slab_mat[p.slab]
        k_cut = self.t.k_cut[mat]
        z = self.t.brems_z[mat]
        const, fmax = self.brems_const[mat], self.brems_max[mat]
        k_p = e_tot / M_E * self.t.plasma_mev[mat]
        yc = k_cut / e_tot
        ym = p.energy / e_tot
        ok = ym > yc
        y = torch.zeros_like(e_tot)

        def trial(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            m = idx.numel()
            ys = yc[idx] * torch.exp(torch.log(ym[idx] / yc[idx]) * self._u(m))
            e_i, z_i = e_tot[idx], z[idx]
            delta = 100.0 * M_E * ys / (e_i * (1.0 - ys).clamp_min(1e-12))
            phi1, phi1m2, psi1, psi1m2 = screening_functions(delta * z_i ** (-1.0 / 3.0), delta * z_i ** (-2.0 / 3.0))
            bracket = ((4.0 / 3.0 - 4.0 / 3.0 * ys + ys * ys) * (phi1 + psi1 / z_i + const[idx])
                       + 2.0 / 3.0 * (1.0 - ys) * (phi1m2 + psi1m2 / z_i))
            k_i = ys * e_i
            dielectric = k_i * k_i / (k_i * k_i + k_p[idx] * k_p[idx])
            return ys, self._u(m) * fmax[idx] <= bracket * dielectric

        self._rejection(ok.clone(), trial, y)
        k = torch.minimum(y * e_tot, p.energy)
        t_new = p.energy - k
        q.energy[rows] = t_new
        sel = k > 0
        if not bool(sel.any()):
            return
        theta = self._urban_angle(e_tot[sel])
        d = rotate(p.dir[sel], torch.cos(theta), 2.0 * math.pi * self._u(int(sel.sum())))
        self.push(Particles(p.pos[sel], d, k[sel], torch.zeros_like(k[sel]), p.slab[sel], p.shower[sel]))

    def _delta(self, p: Particles, q: Particles, rows: torch.Tensor) -> None:
        """Moller (e-) / Bhabha (e+) delta ray above T_cut (sampling as G4MollerBhabhaModel)."""
        n = len(p)
        T = p.energy
        t_cut = self.t.t_cut[self.g.slab_mat[p.slab]]
        positron = p.charge > 0
        xmin = t_cut / T.clamp_min(1e-12)
        xmax = torch.where(positron, 1.0, 0.5).to(self.dtype)
        ok = xmin < xmax
        gam = T / M_E + 1.0
        gamma2 = gam * gam
        beta2 = 1.0 - 1.0 / gamma2
        gg = (2.0 * gam - 1.0) / gamma2
        yb = 1.0 / (1.0 + gam)
        y2 = yb * yb
        y12 = 1.0 - 2.0 * yb
        b1 = 2.0 - y2
        b2 = y12 * (3.0 + y2)
        b4 = y12 * y12 * y12
        b3 = b4 + y12 * y12

        def z_of(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            yy = 1.0 - x
            moller = 1.0 - gg[idx] * x + x * x * (1.0 - gg[idx] + (1.0 - gg[idx] * yy) / (yy * yy).clamp_min(1e-30))
            x2 = x * x
            bhabha = 1.0 + (x2 * x2 * b4[idx] - x * x2 * b3[idx] + x2 * b2[idx] - x * b1[idx]) * beta2[idx]
            return torch.where(positron[idx], bhabha, moller)

        all_idx = torch.arange(n, device=self.device)
        xm_safe = torch.where(ok, xmin, 0.25 * xmax)
        # rejection envelopes (G4MollerBhabhaModel): Moller z(x_max);
        # Bhabha 1 + (b4 - x_min^3 b3 + b2 - x_min b1) beta^2
        grej_m = z_of(torch.full_like(T, 0.5), all_idx)
        grej_b = 1.0 + (b4 - xm_safe**3 * b3 + b2 - xm_safe * b1) * beta2
        grej = torch.where(positron, grej_b, grej_m)
        x = torch.zeros_like(T)

        def trial(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            m = idx.numel()
            r = self._u(m)
            lo, hi = xm_safe[idx], xmax[idx]
            xs = lo * hi / (lo * (1.0 - r) + hi * r)
            return xs, grej[idx] * self._u(m) <= z_of(xs, idx)

        self._rejection(ok.clone(), trial, x)
        t_d = x * T
        t_new = T - t_d
        q.energy[rows] = t_new
        sel = t_d > 0
        if not bool(sel.any()):
            return
        td, tt = t_d[sel], T[sel]
        cost = torch.sqrt((td * (tt + 2.0 * M_E) / (tt * (td + 2.0 * M_E))).clamp(0.0, 1.0))
        phi = 2.0 * math.pi * self._u(int(sel.sum()))
        d_d = rotate(p.dir[sel], cost, phi)
        p_tot = torch.sqrt(tt * (tt + 2.0 * M_E)).unsqueeze(1) * p.dir[sel]
        p_d = torch.sqrt(td * (td + 2.0 * M_E)).unsqueeze(1) * d_d
        q.dir[rows[sel]] = normalise(p_tot - p_d)
        self._push_electrons(Particles(p.pos[sel], d_d, td, torch.full_like(td, -1.0), p.slab[sel], p.shower[sel]))

    def _annihilate_in_flight(self, p: Particles) -> None:
        """e+ e- -> 2 photons in flight (Heitler; sampling as G4eeToTwoGammaModel)."""
        n = len(p)
        T = p.energy.clamp_min(1e-6)
        tau = T / M_E
        gam = tau + 1.0
        tau2 = tau + 2.0
        sqgrate = torch.sqrt(tau / tau2) * 0.5
        eps_min, eps_max = 0.5 - sqgrate, 0.5 + sqgrate
        eps = torch.full_like(T, 0.5)
        pending = torch.ones(n, dtype=torch.bool, device=self.device)
        for _ in range(100):
            idx = pending.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            m = idx.numel()
            e = eps_min[idx] * torch.exp(torch.log(eps_max[idx] / eps_min[idx]) * self._u(m))
            grej = 1.0 - e + (2.0 * gam[idx] * e - 1.0) / (e * tau2[idx] * tau2[idx])
            accept = grej >= self._u(m)
            eps[idx[accept]] = e[accept]
            pending[idx[accept]] = False
        e_total = T + 2.0 * M_E
        k1 = eps * e_total
        k2 = e_total - k1
        cost = ((eps * tau2 - 1.0) / (eps * torch.sqrt(tau * tau2))).clamp(-1.0, 1.0)
        d1 = rotate(p.dir, cost, 2.0 * math.pi * self._u(n))
        p_pos = torch.sqrt(T * (T + 2.0 * M_E)).unsqueeze(1) * p.dir
        d2 = normalise(p_pos - k1.unsqueeze(1) * d1)
        self.push(Particles(torch.cat((p.pos, p.pos)), torch.cat((d1, d2)), torch.cat((k1, k2)),
                            torch.zeros(2 * n, dtype=self.dtype, device=self.device),
                            torch.cat((p.slab, p.slab)), torch.cat((p.shower, p.shower))))

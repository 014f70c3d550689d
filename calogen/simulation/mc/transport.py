"""Vectorised analog transport of e-, e+ and photons through a layered detector (torch, CPU or CUDA).

All particles of many showers live in one table (:class:`Particles`) with a shower index. Photons are moved
in one shot to their next interaction point: the optical depth along z is a piecewise-linear function of z
(cumulative thickness per material times the attenuation per material), so the point where the sampled
number of mean free paths is used up is found with one ``searchsorted`` per photon, crossing any number of
slabs. Charged particles follow condensed-history steps that end at slab boundaries, at discrete
interactions (hard bremsstrahlung, Moller/Bhabha delta rays, annihilation in flight), at 0.1 X0, at 20% of the
residual range, at one transport mean free path lambda_1, or at the slab's face along the flight (at least a
quarter of the slab); where a face lies within the residual range the range and lambda_1 limits tighten to 10%
and 0.2 (a "distance to boundary" step limitation, as Geant4's). Along each step they lose the restricted
energy loss (in sensitive slabs with Landau's fluctuations, restricted to the soft collisions) and scatter
elastically.

Multiple scattering is a random-hinge condensed history (Fernandez-Varea et al., Nucl. Instrum. Meth. B 73
(1993) 447; the PENELOPE scheme): a step of true length s is flown as a straight segment of random length
xi s, one deflection, and the rest (1 - xi) s, each segment stopped at a slab boundary. This gives the
path-length correction and the lateral displacement, correlated with the deflection, without a separate
model; the hinge's mean position is set so that the mean advance along the initial direction is Lewis's.
The deflection is sampled by :class:`calogen.simulation.mc.multiple_scattering.MultipleScattering` with Lewis's
exact mean for any step length.

The particle queues, the scoring and the energy bookkeeping are in :mod:`calogen.simulation.mc.state`, the
secondaries of each interaction in :mod:`calogen.simulation.mc.interactions`. Units: MeV and mm inside.
"""

from __future__ import annotations

import math

import torch

from calogen.simulation.mc.constants import ELECTRON_TRACKING_CUT_MEV, PHOTON_TRACKING_CUT_MEV
from calogen.simulation.mc.fluctuations import restricted_landau_loss
from calogen.simulation.mc.interactions import Interactions
from calogen.simulation.mc.particles import Geometry, Particles, rotate
from calogen.simulation.mc.state import BACK, BELOW_CUT, BOOK_COLUMNS, FRONT, M_E, PASSIVE, SIDE

__all__ = ["BOOK_COLUMNS", "Cascade", "Geometry", "Particles"]

_MAX_STEP_X0 = 0.1  # e+- steps at most 0.1 X0 (PDG 34.4: the brems and pair scale)
_RANGE_FRACTION = 0.2  # and at most 20% of the residual range (Geant4's dRoverRange)
_SLAB_FRACTION = 0.25  # near a slab's face, steps may still be a quarter of the slab (no Zeno's paradox)
_MAX_TAU = 1.0  # and e+- steps at most one transport mean free path long,
# where a face is within the residual range (Geant4's "distance to boundary" step limitation), tighter limits:
_MAX_TAU_NEAR_FACE = 0.2  # transport mean free paths
_RANGE_FRACTION_NEAR_FACE = 0.1  # of the residual range
_MIN_STEP_MM = 1e-3
_MIN_PHOTON_PASS = 2048  # photons are moved in passes of at least this many while charged particles run


class Cascade(Interactions):
    """Simulate a batch of showers (one chunk) in one particle table; see the module docstring."""

    def run(self) -> None:
        """Transport until every particle has stopped or left the detector."""
        active: Particles | None = None
        while True:
            n_active = 0 if active is None else len(active)
            if n_active < self.charged_batch // 2 and self.pending_charged:
                parts = ([active] if active is not None and n_active else []) + self.pending_charged
                merged = Particles.cat(parts)
                self.pending_charged = []
                if len(merged) > self.charged_batch:
                    self.pending_charged = [merged.take(slice(self.charged_batch, None))]
                    merged = merged.take(slice(0, self.charged_batch))
                active = merged
                n_active = len(active)
            n_photons = sum(len(p) for p in self.pending_photons)
            if active is None or n_active == 0:
                if n_photons == 0:
                    break
                self._photons_all()
                continue
            active = self._step_charged(active)
            # photons wait until their queue is as long as the charged batch (or the batch has run dry): one
            # vectorised pass over many photons costs about as much as one over a few
            if n_photons >= min(self.photon_batch, max(len(active), _MIN_PHOTON_PASS)):
                self._photons_all()

    # ------------------------------------------------------------------ photons
    def _photons_all(self) -> None:
        """Move every queued photon to its next interaction (or out of the volume) and interact it."""
        batch = Particles.cat(self.pending_photons)
        self.pending_photons = []
        for start in range(0, len(batch), self.photon_batch):
            self._photon_interact(batch.take(slice(start, start + self.photon_batch)))

    def _photon_interact(self, p: Particles) -> None:
        """Photons p: absorb those below the tracking cut, move the rest to their interaction point (scoring what
        leaves the volume) and interact them (photo-effect, Compton, pair)."""
        g, t = self.g, self.t
        low = p.energy < PHOTON_TRACKING_CUT_MEV
        if bool(low.any()):
            q = p.take(low)
            self._deposit(q.shower, q.slab, q.pos[:, 0], q.pos[:, 1], q.energy, BELOW_CUT)
            p = p.take(~low)
        n = len(p)
        if n == 0:
            return
        ar = torch.arange(n, device=self.device)
        mu_all = t.lookup_all(self.mu_total, p.energy)  # (M, N) 1/mm
        tau_b = mu_all.T @ self.thick_cum_t  # (N, S+1) optical depth at each boundary
        i = p.slab
        z = p.pos[:, 2]
        mu_i = mu_all[g.slab_mat[i], ar]
        tau_z = tau_b[ar, i] + mu_i * (z - g.z_bounds[i])
        r = self._exp(n)
        uz = p.dir[:, 2]
        parallel = uz.abs() < 1e-6
        tau_star = tau_z + r * uz
        front = (tau_star < 0) & ~parallel
        back = (tau_star >= tau_b[:, -1]) & ~parallel
        j = (torch.searchsorted(tau_b, tau_star.unsqueeze(1), right=True).squeeze(1) - 1).clamp(0, g.n_slabs - 1)
        j = torch.where(parallel, i, j)
        mu_j = mu_all[g.slab_mat[j], ar]
        z_new = g.z_bounds[j] + (tau_star - tau_b[ar, j]) / mu_j.clamp_min(1e-30)
        z_new = torch.minimum(torch.maximum(z_new, g.z_bounds[j]), g.z_bounds[j + 1])
        path = torch.where(parallel, r / mu_i.clamp_min(1e-30), (z_new - z) / torch.where(parallel, 1.0, uz))
        pos = p.pos + path.unsqueeze(1) * p.dir
        pos[:, 2] = torch.where(parallel, z, z_new)
        side = (pos[:, 0].abs() > g.half_width_mm) | (pos[:, 1].abs() > g.half_width_mm)
        e = p.energy
        self._book_add(p.shower[front], FRONT, e[front])
        self._book_add(p.shower[back], BACK, e[back])
        side = side & ~front & ~back
        self._book_add(p.shower[side], SIDE, e[side])
        live = ~(front | back | side)
        p = Particles(pos, p.dir, e, p.charge, j, p.shower).take(live)
        n = len(p)
        if n == 0:
            return
        mat = g.slab_mat[p.slab]
        mus = t.lookup_rows(self.photon_table, mat, p.energy)  # (N, 3)
        mu_pair, mu_comp, mu_photo = mus[:, 0], mus[:, 1], mus[:, 2]
        u = self._u(n) * (mu_pair + mu_comp + mu_photo)
        is_pair = u < mu_pair
        is_comp = ~is_pair & (u < mu_pair + mu_comp)
        is_photo = ~is_pair & ~is_comp
        if bool(is_photo.any()):
            self._photo(p.take(is_photo))
        if bool(is_comp.any()):
            self._compton(p.take(is_comp))
        if bool(is_pair.any()):
            self._pair(p.take(is_pair))

    # ------------------------------------------------------------------ charged particles
    def _boundary_distance(self, z: torch.Tensor, uz: torch.Tensor, z_lo: torch.Tensor,
                           z_hi: torch.Tensor) -> torch.Tensor:
        """Distance (mm) along a direction with z-cosine uz from depth z to the slab's faces z_lo / z_hi."""
        big = torch.full_like(z, 1e30)
        return torch.where(uz > 1e-12, (z_hi - z) / uz.clamp_min(1e-12),
                           torch.where(uz < -1e-12, (z_lo - z) / uz.clamp(max=-1e-12), big)).clamp_min(0.0)

    def _step_charged(self, p: Particles) -> Particles:
        """One condensed-history step for every e+- in p (random hinge, see the module docstring); returns the
        survivors."""
        g, t = self.g, self.t
        self.n_steps += 1
        n = len(p)
        slab = p.slab
        mat = g.slab_mat[slab]
        positron = p.charge > 0
        mq = mat + self._n_mat * positron.long()
        T = p.energy
        cols = t.lookup_rows(self.charged_table, mq, T)  # (N, 5)
        rng = cols[:, 0]
        z = p.pos[:, 2]
        z_lo, z_hi = g.z_bounds[slab], g.z_bounds[slab + 1]
        safety = torch.minimum(z - z_lo, z_hi - z)
        # tracking cut and range rejection (the particle cannot leave its slab; Geant4 "range rejection")
        stop = (T < ELECTRON_TRACKING_CUT_MEV) | ((rng < safety) & (T < t.t_cut[mat]))
        if bool(stop.any()):
            self._stop(p.take(stop), BELOW_CUT)
            keep = (~stop).nonzero().squeeze(1)
            p = p.take(keep)
            slab, mat, positron, mq = slab[keep], mat[keep], positron[keep], mq[keep]
            cols = cols[keep]
            T, rng, z, z_lo, z_hi = p.energy, cols[:, 0], p.pos[:, 2], z_lo[keep], z_hi[keep]
            n = len(p)
            if n == 0:
                return p
        dedx, mu_b, mu_d = cols[:, 1], cols[:, 2], cols[:, 3]
        mu_tot = cols[:, 2:].sum(dim=1)
        s_int = self._exp(n) / mu_tot.clamp_min(1e-30)
        # step limits (all scaled by step_scale): 0.1 X0, 20% of the range, and no further than the slab's face
        # along the flight direction or, near the face, a quarter of the slab: the hinge's deflection belongs to
        # the planned path, so a step much longer than what is flown before the face would over-scatter there
        # and at most _MAX_TAU transport mean free paths (beyond, one deflection per step is a poor model of the
        # diffusion); tighter where the particle could reach a face before it stops
        d_face = self._boundary_distance(z, p.dir[:, 2], z_lo, z_hi)
        near = torch.maximum(d_face, _SLAB_FRACTION * self.slab_thickness[slab])
        inv_l1 = t.lookup(t.inv_lambda1, mat, T)
        safety = torch.minimum(z - z_lo, z_hi - z)
        near_face = safety < rng
        max_tau = torch.where(near_face, _MAX_TAU_NEAR_FACE, _MAX_TAU)
        range_fraction = torch.where(near_face, _RANGE_FRACTION_NEAR_FACE, _RANGE_FRACTION)
        s_lim = torch.minimum(torch.minimum(_MAX_STEP_X0 * t.x0_mm[mat], near),
                              torch.minimum(range_fraction * rng, max_tau / inv_l1).clamp_min(_MIN_STEP_MM))
        s = torch.minimum(s_int, torch.minimum(s_lim * self.step_scale, rng))
        # (1) first straight segment of the random hinge, stopped at the slab boundary. The hinge lies at xi s
        # with xi uniform on [0, 2 <xi>], <xi> chosen so that the mean advance along the initial direction is
        # Lewis's lambda_1 (1 - exp(-tau)): <xi> + (1 - <xi>) exp(-tau) = (1 - exp(-tau)) / tau, tau = s/lambda_1
        # (a uniform hinge, <xi> = 1/2, is right only to first order in tau)
        u0 = p.dir
        tau = (s * inv_l1).clamp_min(1e-6)
        e_tau = torch.exp(-tau)
        xi_mean = (-torch.expm1(-tau) / tau - e_tau) / (-torch.expm1(-tau))
        xi_mean = torch.where(tau < 1e-3, 0.5 - tau / 12.0, xi_mean)
        hinge = 2.0 * xi_mean * self._u(n) * s
        d1 = d_face
        hit1 = d1 <= hinge
        len1 = torch.where(hit1, d1, hinge)
        pos1 = p.pos + len1.unsqueeze(1) * u0
        # (2) the deflection, with the energy at the middle of the planned step
        t_mid = (T - 0.5 * s * dedx).clamp_min(1e-4)
        cos_t = self.msc.cos_theta(s, mat, t_mid, self._u)
        u1 = rotate(u0, cos_t, 2.0 * math.pi * self._u(n))
        u1 = torch.where(hit1.unsqueeze(1), u0, u1)
        # (3) second segment, stopped at the boundary
        rest = s - hinge
        d2 = self._boundary_distance(pos1[:, 2], u1[:, 2], z_lo, z_hi)
        hit2 = ~hit1 & (d2 <= rest)
        len2 = torch.where(hit1, 0.0, torch.where(hit2, d2, rest))
        pos = pos1 + len2.unsqueeze(1) * u1
        travelled = len1 + len2
        hit = hit1 | hit2
        ends = (rng <= s) & ~hit
        interact = (s_int <= s) & ~hit & ~ends
        # continuous energy loss over the travelled path, stopping power at the path's middle
        dedx_mid = t.lookup(self.dedx_pm, mq, (T - 0.5 * travelled * dedx).clamp_min(1e-4))
        de = torch.minimum(travelled * dedx_mid, T)
        de = torch.where(ends, T, de)
        layer = g.slab_layer[slab]
        sens = (layer >= 0) & ~ends
        si = sens.nonzero().squeeze(1)
        if si.numel():
            # Landau fluctuation of the deposit in the sensitive slabs (restricted Landau distribution, mean
            # preserved; calogen.simulation.mc.fluctuations): xi = (K/2)(Z/A) rho s / beta^2 (PDG eq. 34.11),
            # truncated at the largest soft transfer: the delta-ray threshold, or T/2 (Moller) / T (Bhabha)
            ts, ms, des = T[si], mat[si], de[si]
            gam = ts / M_E + 1.0
            beta2 = 1.0 - 1.0 / (gam * gam)
            xi = t.xi_per_mm[ms] * travelled[si] / beta2
            largest = torch.where(p.charge[si] < 0, 0.5 * ts, ts)
            t_up = torch.minimum(t.t_cut[ms], largest)
            de_f = restricted_landau_loss(t.landau, des, xi, t_up, self._u(si.numel())).clamp_min(0.0)
            de[si] = torch.minimum(de_f, ts)
        T_new = T - de
        de = T - T_new
        # the loss is scored at the hinge (inside the slab, on the path)
        self._deposit(p.shower, slab, pos1[:, 0], pos1[:, 1], de, PASSIVE)
        u_exit = torch.where(hit1, u0[:, 2], u1[:, 2])
        new_slab = slab + torch.where(hit, torch.where(u_exit > 0, 1, -1), 0)
        z_in = torch.minimum(torch.maximum(pos[:, 2], z_lo), z_hi)
        pos[:, 2] = torch.where(hit & (u_exit > 0), z_hi, torch.where(hit & (u_exit < 0), z_lo, z_in))
        q = Particles(pos, u1, T_new, p.charge, new_slab, p.shower)
        # discrete interactions at the end of the step
        alive = ~ends
        if bool(interact.any()):
            ii = interact.nonzero().squeeze(1)
            r = self._u(ii.numel()) * mu_tot[ii]
            is_b = r < mu_b[ii]  # annihilation (e+ only) is the remainder
            is_d = ~is_b & (r < mu_b[ii] + mu_d[ii])
            is_a = ~is_b & ~is_d
            base = Particles(pos[ii], u1[ii], T_new[ii], p.charge[ii], slab[ii], p.shower[ii])
            if bool(is_b.any()):
                self._brems(base.take(is_b), q, ii[is_b])
            if bool(is_d.any()):
                self._delta(base.take(is_d), q, ii[is_d])
            if bool(is_a.any()):
                self._annihilate_in_flight(base.take(is_a))
                alive[ii[is_a]] = False
        if bool(ends.any()):
            self._stop(q.take(ends & ~hit), PASSIVE)
        # leakage
        front = alive & (q.slab < 0)
        back = alive & (q.slab >= g.n_slabs)
        side = alive & ~front & ~back & ((q.pos[:, 0].abs() > g.half_width_mm) | (q.pos[:, 1].abs() > g.half_width_mm))
        content = self._content(q)
        self._book_add(q.shower[front], FRONT, content[front])
        self._book_add(q.shower[back], BACK, content[back])
        self._book_add(q.shower[side], SIDE, content[side])
        alive = alive & ~front & ~back & ~side
        return q.take(alive)

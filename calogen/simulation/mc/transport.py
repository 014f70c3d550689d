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
energy loss (Landau-fluctuated in sensitive slabs, Moyal approximation) and scatter elastically.

Multiple scattering is a random-hinge condensed history (Fernandez-Varea et al., Nucl. Instrum. Meth. B 73
(1993) 447; the PENELOPE scheme): a step of true length s is flown as a straight segment of random length
xi s, one deflection, and the rest (1 - xi) s, each segment stopped at a slab boundary. This gives the
path-length correction and the lateral displacement, correlated with the deflection, without a separate
model; the hinge's mean position is set so that the mean advance along the initial direction is Lewis's.
The deflection's distribution has Lewis's exact mean <1 - cos theta> = 1 - exp(-s / lambda_1) for any step
(Lewis, Phys. Rev. 78 (1950) 526), so its mean does not depend on how the path is cut into steps: as in
Geant4's Urban model (Geant4 Physics Reference Manual, "Multiple scattering"), a Gaussian core (the
Lynch-Dahl width of Moliere's distribution, Nucl. Instrum. Meth. B 58 (1991) 6) mixed with a single-scattering
tail of the screened-Rutherford shape, the mixture weight fixed by the exact mean; where the core alone is
already as wide as the mean allows (few collisions) or the mean is beyond any core (diffusion), a
screened-Rutherford (Wentzel) distribution whose screening parameter gives the exact mean.

Units: MeV and mm inside. Energy bookkeeping per shower (float64, MeV) closes exactly up to float rounding:
a positron carries T + 2 m_e (its own rest energy and that of the electron it annihilates with).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

from calogen.detector import Detector
from calogen.simulation.mc.physics import (
    ELECTRON_MASS_MEV,
    ELECTRON_TRACKING_CUT_MEV,
    PHOTON_TRACKING_CUT_MEV,
    PhysicsTables,
    screening_functions,
)

__all__ = ["BOOK_COLUMNS", "Cascade", "Geometry", "Particles"]

M_E = ELECTRON_MASS_MEV
BOOK_COLUMNS = ("deposited_sensitive", "deposited_passive", "below_cut", "leak_front", "leak_back", "leak_side")
_SI, _PASSIVE, _BELOW, _FRONT, _BACK, _SIDE = range(6)
_MAX_STEP_X0 = 0.1  # e+- steps at most 0.1 X0 (PDG 34.4: the brems and pair scale)
_RANGE_FRACTION = 0.2  # and at most 20% of the residual range (Geant4's dRoverRange)
_SLAB_FRACTION = 0.25  # near a slab's face, steps may still be a quarter of the slab (no Zeno's paradox)
_MAX_TAU = 1.0  # and e+- steps at most one transport mean free path long,
# where a face is within the residual range (Geant4's "distance to boundary" step limitation), tighter limits:
_MAX_TAU_NEAR_FACE = 0.2  # transport mean free paths
_RANGE_FRACTION_NEAR_FACE = 0.1  # of the residual range
_MIN_STEP_MM = 1e-3
_LYNCH_DAHL_F = 0.98  # fraction of the single scatters kept in the Gaussian width (Lynch and Dahl 1991)
_MIN_PHOTON_PASS = 2048  # photons are moved in passes of at least this many while charged particles run
_SAUTER_MAX_MEV = 100.0  # photoelectrons above this keep the photon's direction (as Geant4)
_MOYAL_MEAN = 0.5772156649 + math.log(2.0)  # mean of the Moyal distribution


@dataclass
class Particles:
    """A table of particles. pos, dir: (N, 3) mm / unit; energy: (N,) MeV (kinetic for e+-);
    charge: (N,) -1, 0, +1 (float); slab, shower: (N,) int64."""

    pos: torch.Tensor
    dir: torch.Tensor
    energy: torch.Tensor
    charge: torch.Tensor
    slab: torch.Tensor
    shower: torch.Tensor

    def __len__(self) -> int:
        return int(self.energy.shape[0])

    def take(self, index: torch.Tensor | slice) -> Particles:
        """Rows selected by a boolean mask, an index tensor or a slice."""
        if isinstance(index, slice):
            return Particles(*(getattr(self, f.name)[index] for f in fields(self)))
        if index.dtype == torch.bool:
            index = index.nonzero().squeeze(1)
        return Particles(*(getattr(self, f.name).index_select(0, index) for f in fields(self)))

    @staticmethod
    def cat(parts: list[Particles]) -> Particles:
        """Concatenate particle tables."""
        return Particles(*(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Particles)))


@dataclass
class Geometry:
    """Detector as tensors: z boundaries (S+1,), material of each slab (S,), readout layer of each slab (S,)
    (-1 passive), cumulative thickness per material at each boundary (S+1, M)."""

    z_bounds: torch.Tensor
    slab_mat: torch.Tensor
    slab_layer: torch.Tensor
    thick_cum: torch.Tensor
    n_slabs: int
    n_materials: int
    n_layers: int
    cell_size_mm: float
    half_width_mm: float

    @staticmethod
    def from_detector(det: Detector, device: torch.device, dtype: torch.dtype) -> Geometry:
        names = [m.name for m in det.materials]
        mat_idx = [names.index(s.material.name) for s in det.slabs]
        n_s, n_m = len(det.slabs), len(names)
        cum = torch.zeros(n_s + 1, n_m, dtype=torch.float64)
        for k, (s, mi) in enumerate(zip(det.slabs, mat_idx)):
            cum[k + 1] = cum[k]
            cum[k + 1, mi] += s.thickness_mm
        return Geometry(
            z_bounds=torch.tensor(det.boundaries_mm, dtype=dtype, device=device),
            slab_mat=torch.tensor(mat_idx, dtype=torch.long, device=device),
            slab_layer=torch.tensor(det.layer_of_slab, dtype=torch.long, device=device),
            thick_cum=cum.to(device=device, dtype=dtype),
            n_slabs=n_s,
            n_materials=n_m,
            n_layers=det.n_layers,
            cell_size_mm=det.cell_size_mm,
            half_width_mm=det.half_width_mm,
        )


def _rotate(u: torch.Tensor, cos_t: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Turn unit vectors u (N, 3) by polar angle (cos_t) and azimuth phi around themselves (rotateUz)."""
    sin_t = torch.sqrt((1.0 - cos_t * cos_t).clamp_min(0.0))
    ux, uy, uz = u[:, 0], u[:, 1], u[:, 2]
    perp = torch.sqrt((ux * ux + uy * uy).clamp_min(1e-30))
    cp, sp = torch.cos(phi), torch.sin(phi)
    nx = (ux * uz * cp - uy * sp) / perp * sin_t + ux * cos_t
    ny = (uy * uz * cp + ux * sp) / perp * sin_t + uy * cos_t
    nz = -perp * cp * sin_t + uz * cos_t
    along = perp < 1e-7
    sgn = torch.where(uz >= 0, 1.0, -1.0).to(u.dtype)
    nx = torch.where(along, sin_t * cp, nx)
    ny = torch.where(along, sin_t * sp, ny)
    nz = torch.where(along, sgn * cos_t, nz)
    out = torch.stack((nx, ny, nz), dim=1)
    return out / out.norm(dim=1, keepdim=True).clamp_min(1e-30)


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
        m = mean.clamp(1e-15, 1.0 - 1e-6)
        x = (torch.log(m) - torch.log1p(-m)).clamp(self.x0, self.x1)
        u = (x - self.x0) * self.inv_dx
        i = u.floor().long().clamp(0, self.n - 2)
        f = u - i
        return torch.exp(self.table[i] * (1.0 - f) + self.table[i + 1] * f)


def _normalise(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=1, keepdim=True).clamp_min(1e-30)


class Cascade:
    """Simulate a batch of showers (one chunk) in one particle table; see the module docstring."""

    def __init__(
        self,
        geometry: Geometry,
        tables: PhysicsTables,
        n_showers: int,
        grid_cells: int,
        generator: torch.Generator,
        *,
        charged_batch: int = 262144,
        photon_batch: int = 65536,
        step_scale: float = 1.0,
    ) -> None:
        self.g = geometry
        self.t = tables
        self.gen = generator
        self.device = geometry.z_bounds.device
        self.dtype = geometry.z_bounds.dtype
        self.n_showers = n_showers
        self.grid_cells = grid_cells
        self.grid = torch.zeros(n_showers * grid_cells * grid_cells * geometry.n_layers,
                                dtype=torch.float32, device=self.device)
        self.book = torch.zeros(n_showers * len(BOOK_COLUMNS), dtype=torch.float64, device=self.device)
        self.charged_batch = charged_batch
        self.photon_batch = photon_batch
        self.pending_charged: list[Particles] = []
        self.pending_photons: list[Particles] = []
        m = geometry.n_materials
        t = tables
        self.dedx_pm = torch.cat((t.dedx_em, t.dedx_ep))  # (2M, G)
        self.mu_total = t.mu_pair + t.mu_compton + t.mu_photo  # (M, G)
        self._n_mat = m
        self.thick_cum_t = geometry.thick_cum.T.contiguous()  # (M, S+1)
        # charged tables gathered at once: (2M, G, 5) = range, dedx, brems, delta, annihilation
        zero = torch.zeros_like(t.mu_annihil)
        self.charged_table = torch.cat((
            torch.stack((t.range_em, t.dedx_em, t.mu_brems, t.mu_moller, zero), dim=2),
            torch.stack((t.range_ep, t.dedx_ep, t.mu_brems, t.mu_bhabha, t.mu_annihil), dim=2),
        )).contiguous()
        self.photon_table = torch.stack((t.mu_pair, t.mu_compton, t.mu_photo), dim=2).contiguous()  # (M, G, 3)
        self.n_steps = 0
        if not step_scale > 0:
            raise ValueError(f"step_scale={step_scale} must be positive (1 = the default step limits)")
        self.step_scale = float(step_scale)
        self.wentzel_inverse = _WentzelInverse(self.device, self.dtype)
        # elastic-scattering tables of e+- (the same for both charges): (M, G, 3)
        self.elastic_table = torch.stack((t.inv_lambda1, t.chi_c2, t.ln_chi_a2), dim=2).contiguous()
        self.slab_thickness = geometry.z_bounds[1:] - geometry.z_bounds[:-1]  # (S,) mm
        # Coulomb correction f(Z) and the complete-screening maximum of Tsai's bracket, per material (M,)
        z = t.brems_z.double()
        a2 = (z / 137.035999) ** 2
        f_c = a2 * (1.0 / (1.0 + a2) + 0.20206 - 0.0369 * a2 + 0.0083 * a2**2 - 0.002 * a2**3)
        ln_z = torch.log(z)
        self.brems_const = (-4.0 / 3.0 * ln_z - 4.0 * f_c - 8.0 / 3.0 * ln_z / z).to(self.dtype)
        self.brems_max = (4.0 / 3.0 * (20.863 + 28.340 / z - 4.0 / 3.0 * ln_z - 4.0 * f_c - 8.0 / 3.0 * ln_z / z)
                          + 4.0 / 9.0 * (1.0 + 1.0 / z)).to(self.dtype)

    # ------------------------------------------------------------------ random numbers
    def _u(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.gen, device=self.device, dtype=self.dtype)

    def _n(self, n: int) -> torch.Tensor:
        return torch.randn(n, generator=self.gen, device=self.device, dtype=self.dtype)

    def _exp(self, n: int) -> torch.Tensor:
        return -torch.log(self._u(n).clamp_min(1e-30))

    def _rejection(self, pending: torch.Tensor, trial: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                   out: torch.Tensor, candidates: int = 4) -> None:
        """Rejection sampling for the rows flagged in ``pending`` (N,) bool, written into ``out`` (N,).

        ``trial(rows)`` proposes one value per entry of ``rows`` and says which are accepted; each round tries
        ``candidates`` proposals per pending row and keeps the first accepted (the same distribution as trying
        them one after another, in fewer rounds). Rows never accepted keep their value in ``out``.
        """
        for _ in range(60):
            idx = pending.nonzero().squeeze(1)
            m = idx.numel()
            if m == 0:
                break
            values, accept = trial(idx.repeat(candidates))
            acc = accept.view(candidates, m)
            hit = acc.any(dim=0)
            first = acc.to(torch.int8).argmax(dim=0)
            chosen = values.view(candidates, m)[first, torch.arange(m, device=self.device)]
            out[idx[hit]] = chosen[hit]
            pending[idx[hit]] = False

    # ------------------------------------------------------------------ scoring
    def _book_add(self, shower: torch.Tensor, column: torch.Tensor | int, energy: torch.Tensor) -> None:
        if shower.numel() == 0:
            return
        idx = shower * len(BOOK_COLUMNS) + column
        self.book.index_add_(0, idx, energy.to(torch.float64))

    def _deposit(self, p_shower: torch.Tensor, slab: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                 energy: torch.Tensor, passive_column: int) -> None:
        """Deposit energy (N,) MeV at (x, y) in slab; sensitive slabs are scored in the cell grid."""
        if energy.numel() == 0:
            return
        layer = self.g.slab_layer[slab]
        sens = layer >= 0
        col = torch.where(sens, _SI, passive_column)
        self._book_add(p_shower, col, energy)
        if bool(sens.any()):
            half = self.grid_cells // 2
            ix = torch.floor(x[sens] / self.g.cell_size_mm).long() + half
            iy = torch.floor(y[sens] / self.g.cell_size_mm).long() + half
            ok = (ix >= 0) & (ix < self.grid_cells) & (iy >= 0) & (iy < self.grid_cells)
            flat = ((p_shower[sens] * self.grid_cells + ix) * self.grid_cells + iy) * self.g.n_layers + layer[sens]
            self.grid.index_add_(0, flat[ok], energy[sens][ok].to(torch.float32))

    def _content(self, p: Particles) -> torch.Tensor:
        """Energy a particle carries for the bookkeeping: E (photon), T (e-), T + 2 m_e (e+)."""
        return p.energy + torch.where(p.charge > 0, 2.0 * M_E, 0.0)

    # ------------------------------------------------------------------ queue
    def push(self, p: Particles) -> None:
        """Queue particles for transport (photons and e+- in separate queues)."""
        if len(p) == 0:
            return
        photon = p.charge == 0
        if bool(photon.all()):
            self.pending_photons.append(p)
        elif not bool(photon.any()):
            self.pending_charged.append(p)
        else:
            self.pending_photons.append(p.take(photon))
            self.pending_charged.append(p.take(~photon))

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
            if n_active == 0:
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
        g, t = self.g, self.t
        low = p.energy < PHOTON_TRACKING_CUT_MEV
        if bool(low.any()):
            q = p.take(low)
            self._deposit(q.shower, q.slab, q.pos[:, 0], q.pos[:, 1], q.energy, _BELOW)
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
        self._book_add(p.shower[front], _FRONT, e[front])
        self._book_add(p.shower[back], _BACK, e[back])
        side = side & ~front & ~back
        self._book_add(p.shower[side], _SIDE, e[side])
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
        d_new = _rotate(p.dir, cost, phi)
        t_e = p.energy - k_new
        p_e = p.energy.unsqueeze(1) * p.dir - k_new.unsqueeze(1) * d_new
        d_e = _normalise(p_e)
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
        self._deposit(p.shower, p.slab, p.pos[:, 0], p.pos[:, 1], binding, _PASSIVE)
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
        d = _rotate(p.dir, (1.0 - tsam).clamp(-1.0, 1.0), 2.0 * math.pi * self._u(n))
        self._push_electrons(Particles(p.pos, d, t_pe, torch.full_like(t_pe, -1.0), p.slab, p.shower))

    def _push_electrons(self, e: Particles) -> None:
        """Queue new e+-; electrons below the tracking cut deposit where they are (positrons are queued:
        they stop and annihilate in the next step)."""
        low = (e.energy < ELECTRON_TRACKING_CUT_MEV) & (e.charge < 0)
        if bool(low.any()):
            q = e.take(low)
            self._deposit(q.shower, q.slab, q.pos[:, 0], q.pos[:, 1], q.energy, _BELOW)
            e = e.take(~low)
        self.push(e)

    def _urban_angle(self, e_total: torch.Tensor) -> torch.Tensor:
        """Polar angle of pair leptons / bremsstrahlung photons: u m/E with Urban's universal u (Geant3 PHYS211)."""
        n = e_total.numel()
        a = torch.where(self._u(n) < 9.0 / 36.0, 0.625, 1.875).to(self.dtype)
        u = -torch.log((self._u(n) * self._u(n)).clamp_min(1e-30)) / a
        return (u * M_E / e_total).clamp(max=math.pi)

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
        d1 = _rotate(p.dir, torch.cos(theta1), phi)
        d2 = _rotate(p.dir, torch.cos(theta2), phi + math.pi)
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

    def _annihilate_at_rest(self, p: Particles) -> None:
        """Positrons at rest: two back-to-back photons of m_e, isotropic."""
        n = len(p)
        if n == 0:
            return
        cost = 2.0 * self._u(n) - 1.0
        phi = 2.0 * math.pi * self._u(n)
        sint = torch.sqrt((1 - cost * cost).clamp_min(0.0))
        d = torch.stack((sint * torch.cos(phi), sint * torch.sin(phi), cost), dim=1)
        e = torch.full((2 * n,), M_E, dtype=self.dtype, device=self.device)
        self.push(Particles(torch.cat((p.pos, p.pos)), torch.cat((d, -d)), e, torch.zeros_like(e),
                            torch.cat((p.slab, p.slab)), torch.cat((p.shower, p.shower))))

    # ------------------------------------------------------------------ charged particles
    def _stop(self, p: Particles, column: int) -> None:
        """Stop e+-: deposit the kinetic energy where they are; positrons annihilate at rest."""
        if len(p) == 0:
            return
        self._deposit(p.shower, p.slab, p.pos[:, 0], p.pos[:, 1], p.energy, column)
        self._annihilate_at_rest(p.take(p.charge > 0))

    def _msc_cos_theta(self, s: torch.Tensor, mat: torch.Tensor, t_mid: torch.Tensor) -> torch.Tensor:
        """cos of the multiple-scattering deflection after a true path s (mm) at kinetic energy t_mid (MeV).

        Lewis's mean m = 1 - exp(-s / lambda_1) is kept exactly (see the module docstring): a mixture
        p core + (1 - p) tail of an exponential in u = 1 - cos theta with the Lynch-Dahl Gaussian width (u ~
        theta^2 / 2, mean theta_0^2) and a Wentzel tail whose screening equals that width, p from the mean;
        outside the mixture's reach a Wentzel distribution with the screening that gives m.
        """
        n = s.numel()
        el = self.t.lookup_rows(self.elastic_table, mat, t_mid)  # (N, 3)
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
        a_single = self.wentzel_inverse(mean)
        use_core = mixture & (self._u(n) < p_core)
        a = torch.where(mixture, width, a_single)
        r = self._u(n)
        u_core = -width * torch.log1p(-r * -torch.expm1(-2.0 / width))
        u_tail = 2.0 * a * r / (1.0 + a - r)
        u = torch.where(use_core, u_core, u_tail).clamp(0.0, 2.0)
        return 1.0 - u

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
            self._stop(p.take(stop), _BELOW)
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
        cos_t = self._msc_cos_theta(s, mat, t_mid)
        u1 = _rotate(u0, cos_t, 2.0 * math.pi * self._u(n))
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
            # Landau fluctuation of the deposit in the sensitive slabs (Moyal form, mean preserved):
            # Delta = <Delta> + xi (lambda - <lambda>), xi = (K/2)(Z/A) rho s / beta^2 (PDG eq. 34.11)
            ts, ms, des = T[si], mat[si], de[si]
            gam = ts / M_E + 1.0
            beta2 = 1.0 - 1.0 / (gam * gam)
            xi = t.xi_per_mm[ms] * travelled[si] / beta2
            zn = self._n(si.numel())
            lam = -torch.log((zn * zn).clamp_min(1e-30))
            de_f = (des + xi * (lam - _MOYAL_MEAN)).clamp_min(0.0)
            de[si] = torch.minimum(torch.minimum(de_f, ts), des + t.t_cut[ms])
        T_new = T - de
        de = T - T_new
        # the loss is scored at the hinge (inside the slab, on the path)
        self._deposit(p.shower, slab, pos1[:, 0], pos1[:, 1], de, _PASSIVE)
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
            self._stop(q.take(ends & ~hit), _PASSIVE)
        # leakage
        front = alive & (q.slab < 0)
        back = alive & (q.slab >= g.n_slabs)
        side = alive & ~front & ~back & ((q.pos[:, 0].abs() > g.half_width_mm) | (q.pos[:, 1].abs() > g.half_width_mm))
        content = self._content(q)
        self._book_add(q.shower[front], _FRONT, content[front])
        self._book_add(q.shower[back], _BACK, content[back])
        self._book_add(q.shower[side], _SIDE, content[side])
        alive = alive & ~front & ~back & ~side
        return q.take(alive)

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
        d = _rotate(p.dir[sel], torch.cos(theta), 2.0 * math.pi * self._u(int(sel.sum())))
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
        d_d = _rotate(p.dir[sel], cost, phi)
        p_tot = torch.sqrt(tt * (tt + 2.0 * M_E)).unsqueeze(1) * p.dir[sel]
        p_d = torch.sqrt(td * (td + 2.0 * M_E)).unsqueeze(1) * d_d
        q.dir[rows[sel]] = _normalise(p_tot - p_d)
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
        d1 = _rotate(p.dir, cost, 2.0 * math.pi * self._u(n))
        p_pos = torch.sqrt(T * (T + 2.0 * M_E)).unsqueeze(1) * p.dir
        d2 = _normalise(p_pos - k1.unsqueeze(1) * d1)
        self.push(Particles(torch.cat((p.pos, p.pos)), torch.cat((d1, d2)), torch.cat((k1, k2)),
                            torch.zeros(2 * n, dtype=self.dtype, device=self.device),
                            torch.cat((p.slab, p.slab)), torch.cat((p.shower, p.shower))))

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(grid (B, G, G, L) float32 MeV, bookkeeping (B, 6) float64 MeV)."""
        gc = self.grid_cells
        return (self.grid.view(self.n_showers, gc, gc, self.g.n_layers),
                self.book.view(self.n_showers, len(BOOK_COLUMNS)))

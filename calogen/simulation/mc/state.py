"""The state of one chunk of showers in the cascade: particle queues, the scored cell grid, the energy
bookkeeping, the tables gathered for the transport, and the random-number stream (torch, MeV, mm).

Energy bookkeeping per shower (float64, MeV) closes exactly up to float rounding: a positron carries
T + 2 m_e (its own rest energy and that of the electron it annihilates with).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from calogen.simulation.mc.constants import ELECTRON_MASS_MEV, ELECTRON_TRACKING_CUT_MEV
from calogen.simulation.mc.multiple_scattering import MultipleScattering
from calogen.simulation.mc.particles import Geometry, Particles
from calogen.simulation.mc.physics import PhysicsTables

__all__ = ["BACK", "BELOW_CUT", "BOOK_COLUMNS", "FRONT", "M_E", "PASSIVE", "SENSITIVE", "SIDE", "CascadeState"]

M_E = ELECTRON_MASS_MEV
# where the energy goes, one bookkeeping column each (MeV per shower)
BOOK_COLUMNS = ("deposited_sensitive", "deposited_passive", "below_cut", "leak_front", "leak_back", "leak_side")
SENSITIVE, PASSIVE, BELOW_CUT, FRONT, BACK, SIDE = range(6)


class CascadeState:
    """The particle queues, scoring and random numbers of a batch of showers (one chunk); the transport
    (:class:`calogen.simulation.mc.transport.Cascade`) and the interactions build on it."""

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
        self.msc = MultipleScattering(tables, self.device, self.dtype)
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
        """n uniform numbers in [0, 1), (n,) in the cascade's dtype and on its device."""
        return torch.rand(n, generator=self.gen, device=self.device, dtype=self.dtype)

    def _n(self, n: int) -> torch.Tensor:
        """n standard normal numbers, (n,)."""
        return torch.randn(n, generator=self.gen, device=self.device, dtype=self.dtype)

    def _exp(self, n: int) -> torch.Tensor:
        """n exponential numbers of mean 1 (numbers of mean free paths), (n,)."""
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
        """Add energy (N,) MeV to the bookkeeping column(s) of the showers (N,)."""
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
        col = torch.where(sens, SENSITIVE, passive_column)
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

    def _push_electrons(self, e: Particles) -> None:
        """Queue new e+-; electrons below the tracking cut deposit where they are (positrons are queued:
        they stop and annihilate in the next step)."""
        low = (e.energy < ELECTRON_TRACKING_CUT_MEV) & (e.charge < 0)
        if bool(low.any()):
            q = e.take(low)
            self._deposit(q.shower, q.slab, q.pos[:, 0], q.pos[:, 1], q.energy, BELOW_CUT)
            e = e.take(~low)
        self.push(e)

    # ------------------------------------------------------------------ stopping e+-
    def _stop(self, p: Particles, column: int) -> None:
        """Stop e+-: deposit the kinetic energy where they are; positrons annihilate at rest."""
        if len(p) == 0:
            return
        self._deposit(p.shower, p.slab, p.pos[:, 0], p.pos[:, 1], p.energy, column)
        self._annihilate_at_rest(p.take(p.charge > 0))

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

    # ------------------------------------------------------------------ results
    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(grid (B, G, G, L) float32 MeV, bookkeeping (B, 6) float64 MeV)."""
        gc = self.grid_cells
        return (self.grid.view(self.n_showers, gc, gc, self.g.n_layers),
                self.book.view(self.n_showers, len(BOOK_COLUMNS)))

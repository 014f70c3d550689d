"""The physics of the cascade Monte Carlo tabulated per material, as torch tensors (MeV, mm).

Everything is tabulated once per detector on a logarithmic energy grid (1 keV - 1 TeV, 40 points per
decade) in float64 with numpy and then moved to torch (see :class:`PhysicsTables`). The models and their
sources:

- :mod:`calogen.simulation.mc.cross_sections`: pair production, Compton scattering and the photo-effect;
  bremsstrahlung (Tsai's screened cross section with dielectric suppression); Moller and Bhabha delta rays;
  positron annihilation in flight; elastic scattering of e+- (screened Rutherford, Moliere's screening).
- :mod:`calogen.simulation.mc.stopping`: restricted collision stopping power (Berger-Seltzer with the
  Sternheimer-Peierls density effect), CSDA ranges and the production cuts.
- :mod:`calogen.simulation.mc.fluctuations`: Landau's distribution of the loss in thin sensitive slabs.
- :mod:`calogen.simulation.mc.constants`: physical constants, the energy grid, tracking and production cuts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from calogen.detector import Detector
from calogen.simulation.mc.constants import ELECTRON_MASS_MEV, energy_grid_mev
from calogen.simulation.mc.cross_sections import (
    annihilation_per_mm,
    bhabha_per_mm,
    brems_integrals,
    brems_shape,
    brems_z,
    elastic_tables,
    moller_per_mm,
    photo_binding_mev,
    photon_cross_sections_per_mm,
    plasma_energy_mev,
    screening_functions,
)
from calogen.simulation.mc.fluctuations import LandauTable, landau_table
from calogen.simulation.mc.stopping import csda_range, cuts_for, density_effect_parameters, restricted_dedx_mev_per_mm

# the physics functions most callers need, importable from here as well as from their modules
__all__ = [
    "ELECTRON_MASS_MEV",
    "PhysicsTables",
    "brems_shape",
    "build_tables",
    "cuts_for",
    "density_effect_parameters",
    "elastic_tables",
    "photon_cross_sections_per_mm",
    "restricted_dedx_mev_per_mm",
    "screening_functions",
]


@dataclass
class PhysicsTables:
    """Tabulated physics for the materials of a detector, as torch tensors on one device.

    Tables are (M, G) over materials M and the log energy grid G (kinetic energy for e+-, energy for
    photons). Per-material scalars are (M,).
    """

    log_e_min: float
    inv_dlog: float
    n_grid: int
    mu_pair: torch.Tensor  # (M, G) 1/mm
    mu_compton: torch.Tensor  # (M, G) 1/mm
    mu_photo: torch.Tensor  # (M, G) 1/mm
    dedx_em: torch.Tensor  # (M, G) restricted loss e-, MeV/mm (ionisation + soft brems)
    dedx_ep: torch.Tensor  # (M, G) restricted loss e+, MeV/mm
    range_em: torch.Tensor  # (M, G) range with the restricted loss e-, mm
    range_ep: torch.Tensor  # (M, G) mm
    mu_brems: torch.Tensor  # (M, G) 1/mm, photons above k_cut
    mu_moller: torch.Tensor  # (M, G) 1/mm
    mu_bhabha: torch.Tensor  # (M, G) 1/mm
    mu_annihil: torch.Tensor  # (M, G) 1/mm
    x0_mm: torch.Tensor  # (M,)
    t_cut: torch.Tensor  # (M,) MeV
    k_cut: torch.Tensor  # (M,) MeV
    xi_per_mm: torch.Tensor  # (M,) Landau xi * beta^2 per mm, MeV/mm
    inv_lambda1: torch.Tensor  # (M, G) inverse transport mean free path of e+-, 1/mm
    chi_c2: torch.Tensor  # (M, G) Moliere chi_c^2 per unit path, rad^2/mm
    ln_chi_a2: torch.Tensor  # (M, G) ln of Moliere's screening angle squared
    brems_z: torch.Tensor  # (M,) Z of the bremsstrahlung spectrum shape
    plasma_mev: torch.Tensor  # (M,) plasma energy hbar omega_p, MeV
    binding_k: torch.Tensor  # (M,) K-shell binding energy of the heaviest element, MeV
    binding_l: torch.Tensor  # (M,) L1-shell binding energy, MeV
    t_cut_list: list[float]
    landau: LandauTable  # Landau's distribution for the loss fluctuations in sensitive slabs

    def lookup(self, table: torch.Tensor, mat: torch.Tensor, energy_mev: torch.Tensor) -> torch.Tensor:
        """Linear interpolation in ln E of table[mat] at energy_mev; mat, energy (N,) -> (N,)."""
        u = (torch.log(energy_mev.clamp_min(1e-6)) - self.log_e_min) * self.inv_dlog
        u = u.clamp(0.0, self.n_grid - 1.001)
        i = u.floor().long()
        f = (u - i).to(table.dtype)
        flat = mat * self.n_grid + i
        tab = table.reshape(-1)
        return tab[flat] * (1 - f) + tab[flat + 1] * f

    def lookup_rows(self, table: torch.Tensor, mat: torch.Tensor, energy_mev: torch.Tensor) -> torch.Tensor:
        """Several tables at once: table (M, G, K) -> (N, K) interpolated in ln E at rows mat (N,)."""
        u = (torch.log(energy_mev.clamp_min(1e-6)) - self.log_e_min) * self.inv_dlog
        u = u.clamp(0.0, self.n_grid - 1.001)
        i = u.floor().long()
        f = (u - i).to(table.dtype).unsqueeze(1)
        flat = mat * self.n_grid + i
        tab = table.reshape(-1, table.shape[-1])
        lo = tab.index_select(0, flat)
        hi = tab.index_select(0, flat + 1)
        return lo + (hi - lo) * f

    def lookup_all(self, table: torch.Tensor, energy_mev: torch.Tensor) -> torch.Tensor:
        """table at energy for every material: (N,) -> (M, N)."""
        u = (torch.log(energy_mev.clamp_min(1e-6)) - self.log_e_min) * self.inv_dlog
        u = u.clamp(0.0, self.n_grid - 1.001)
        i = u.floor().long()
        f = (u - i).to(table.dtype)
        return table[:, i] * (1 - f) + table[:, i + 1] * f


def build_tables(detector: Detector, device: torch.device, dtype: torch.dtype = torch.float32) -> PhysicsTables:
    """Tabulate the physics of the detector's materials (in the order of detector.materials)."""
    grid = energy_grid_mev()
    rows: dict[str, list[np.ndarray]] = {k: [] for k in (
        "mu_pair", "mu_compton", "mu_photo", "dedx_em", "dedx_ep", "range_em", "range_ep", "mu_brems",
        "mu_moller", "mu_bhabha", "mu_annihil", "inv_lambda1", "chi_c2", "ln_chi_a2")}
    x0, tcut, kcut, xi, bz, plasma, bind_k, bind_l = [], [], [], [], [], [], [], []
    for mat in detector.materials:
        ph = photon_cross_sections_per_mm(mat, grid)
        t_c, k_c = cuts_for(mat)
        hard, soft = brems_integrals(mat, grid, k_c)
        dedx_em = restricted_dedx_mev_per_mm(mat, grid, t_c) + soft
        dedx_ep = restricted_dedx_mev_per_mm(mat, grid, t_c, positron=True) + soft
        rows["mu_pair"].append(ph["pair"])
        rows["mu_compton"].append(ph["compton"])
        rows["mu_photo"].append(ph["photo"])
        rows["dedx_em"].append(dedx_em)
        rows["dedx_ep"].append(dedx_ep)
        rows["range_em"].append(csda_range(grid, dedx_em))
        rows["range_ep"].append(csda_range(grid, dedx_ep))
        rows["mu_brems"].append(hard)
        inv_l1, chi_c2, ln_chi_a2 = elastic_tables(mat, grid)
        rows["inv_lambda1"].append(inv_l1)
        rows["chi_c2"].append(chi_c2)
        rows["ln_chi_a2"].append(ln_chi_a2)
        bz.append(brems_z(mat))
        plasma.append(plasma_energy_mev(mat))
        b_k, b_l = photo_binding_mev(mat)
        bind_k.append(b_k)
        bind_l.append(b_l)
        rows["mu_moller"].append(moller_per_mm(mat, grid, t_c))
        rows["mu_bhabha"].append(bhabha_per_mm(mat, grid, t_c))
        rows["mu_annihil"].append(annihilation_per_mm(mat, grid))
        x0.append(mat.radiation_length_mm)
        tcut.append(t_c)
        kcut.append(k_c)
        # Landau xi = (K/2) <Z/A> rho x / beta^2, K = 0.307075 MeV cm^2/mol (PDG eq. 34.11)
        xi.append(0.5 * 0.307075 * mat.z_over_a * mat.density_g_cm3 / 10.0)

    def t(a: list[np.ndarray] | list[float]) -> torch.Tensor:
        return torch.tensor(np.asarray(a), dtype=dtype, device=device)

    return PhysicsTables(
        log_e_min=math.log(grid[0]),
        inv_dlog=1.0 / (math.log(grid[1]) - math.log(grid[0])),
        n_grid=len(grid),
        **{k: t(v) for k, v in rows.items()},
        x0_mm=t(x0),
        t_cut=t(tcut),
        k_cut=t(kcut),
        xi_per_mm=t(xi),
        brems_z=t(bz),
        plasma_mev=t(plasma),
        binding_k=t(bind_k),
        binding_l=t(bind_l),
        t_cut_list=tcut,
        landau=landau_table(device),
    )


"""GFlash sampling: each shower's profile parameters, its energy spots and their deposit into the readout cells.

Reference: Grindhammer and Peters, hep-ex/0001020 ("GP"), and the Geant4 GFlash implementation ("G4"); see
:mod:`calogen.simulation.gflash.parameters` for the constants. Tensors live on the device of the energies; every
random number comes from the ``torch.Generator`` passed in, so a seed gives the same showers.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import torch

from calogen.detector import Detector
from calogen.simulation.gflash.parameters import GFlashParams, SamplingConstants, longitudinal_parameters

__all__ = ["Spots", "deposit_spots", "sample_longitudinal", "sample_spots", "spot_counts"]

_U_MARGIN = 1e-6  # keeps uniform variates off 0 and 1 (the radius r = R sqrt(U / (1 - U)) stays finite)


def sample_longitudinal(
    energy_gev: torch.Tensor,
    constants: SamplingConstants,
    params: GFlashParams | None = None,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Individual profile parameters (T, alpha), each float64 (B,), T in radiation lengths.

    ln T = <ln T> + sigma_T (c1 z1 + c2 z2), ln alpha = <ln alpha> + sigma_a (c1 z1 - c2 z2) with
    c1 = sqrt((1 + rho) / 2), c2 = sqrt((1 - rho) / 2) and standard normal z1, z2: correlation rho (G4).
    T and alpha are floored at params.t_min and params.alpha_min.
    """
    p = params or GFlashParams()
    dev = energy_gev.device
    lp = longitudinal_parameters(energy_gev.detach().cpu().numpy(), constants, p)
    as_t = {k: torch.as_tensor(v, dtype=torch.float64, device=dev) for k, v in lp._asdict().items()}
    normals = torch.randn((2, energy_gev.shape[0]), generator=generator, device=dev, dtype=torch.float64)
    c1 = torch.sqrt((1.0 + as_t["rho"]) / 2.0)
    c2 = torch.sqrt((1.0 - as_t["rho"]) / 2.0)
    ln_t = as_t["mean_ln_t"] + as_t["sigma_ln_t"] * (c1 * normals[0] + c2 * normals[1])
    ln_a = as_t["mean_ln_alpha"] + as_t["sigma_ln_alpha"] * (c1 * normals[0] - c2 * normals[1])
    return torch.exp(ln_t).clamp_min(p.t_min), torch.exp(ln_a).clamp_min(p.alpha_min)


class Spots(NamedTuple):
    """Energy spots of a batch of B showers (S spots in all), on one device.

    shower: int64 (S,) index of the shower; t_x0: (S,) depth along the axis, radiation lengths;
    r_rm: (S,) distance from the axis, effective Moliere radii; phi: (S,) azimuth, rad;
    energy_gev: (S,) deposited energy, GeV (before the sampling fraction);
    tmax_x0, alpha: float64 (B,) the individual profile parameters of each shower.
    """

    shower: torch.Tensor
    t_x0: torch.Tensor
    r_rm: torch.Tensor
    phi: torch.Tensor
    energy_gev: torch.Tensor
    tmax_x0: torch.Tensor
    alpha: torch.Tensor


def spot_counts(
    energy_gev: npt.NDArray[np.float64], constants: SamplingConstants, p: GFlashParams
) -> npt.NDArray[np.int64]:
    """Number of spots per shower (at least one), int64 of the energies' shape."""
    if constants.homogeneous:
        n = p.spot_hom_1 * math.log(constants.z_eff) * energy_gev**p.spot_hom_2  # GP eq. 32
    else:
        n = p.spot_sam_1 / p.sampling_resolution * energy_gev**p.spot_sam_2  # GP eq. 33
    return np.maximum(np.rint(n), 1).astype(np.int64)


def _radial_parameters(
    tau: torch.Tensor, ln_e: torch.Tensor, constants: SamplingConstants, p: GFlashParams
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(R_C, R_T, p) in Moliere radii at tau = t / T for log energies ln_e (GeV) (GP eq. 18-20, 29-31)."""
    z = constants.z_eff
    r_core = (p.rc_1 + p.rc_2 * ln_e) + (p.rc_3 + p.rc_4 * z) * tau
    k1, k2, k3, k4 = p.rt_1 + p.rt_2 * z, p.rt_3, p.rt_4, p.rt_5 + p.rt_6 * ln_e
    r_tail = k1 * (torch.exp(k3 * (tau - k2)) + torch.exp(k4 * (tau - k2)))
    p1, p2, p3 = p.pw_1 + p.pw_2 * z, p.pw_3 + p.pw_4 * z, p.pw_5 + p.pw_6 * ln_e
    x = (p2 - tau) / p3
    weight = p1 * torch.exp(x - torch.exp(x))
    if not constants.homogeneous:
        one_minus_ehat = 1.0 - constants.e_hat
        r_core = r_core + p.rc_sam_1 * one_minus_ehat + p.rc_sam_2 / constants.f_s * torch.exp(-tau)
        r_tail = r_tail + p.rt_sam_1 * one_minus_ehat + p.rt_sam_2 / constants.f_s * torch.exp(-tau)
        weight = weight + one_minus_ehat * (p.pw_sam_1 + p.pw_sam_2 / constants.f_s * torch.exp(-(tau - 1.0) ** 2))
    return r_core.clamp_min(p.radius_min), r_tail.clamp_min(p.radius_min), weight.clamp(0.0, 1.0)


def _gamma(shape: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Gamma(shape, scale 1) variates, same shape and device; seeded by ``generator``.

    torch.distributions.Gamma draws from the global stream only; its sampler ``torch._standard_gamma``
    takes a generator, which keeps every shower reproducible from its seed.
    """
    return torch._standard_gamma(shape, generator=generator)


def sample_spots(
    energy_gev: torch.Tensor,
    constants: SamplingConstants,
    params: GFlashParams | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Spots:
    """Spots of B showers of primary energies ``energy_gev`` (B,) GeV, on the energies' device.

    Depth: gamma(alpha_i) / beta_i of the shower's own profile. Radius: core with probability p(tau),
    else tail; r = R sqrt(U / (1 - U)) (inverse of the cumulative of f_i). tau = t / <t>_i x <t> / T
    (the individual centre of gravity <t>_i = T_i alpha_i / (alpha_i - 1) scaled to the mean shape, G4
    ComputeTau). Energy: E / N each, gamma-smeared with variance c^2 E / N (sampling calorimeters).
    """
    p = params or GFlashParams()
    dev = energy_gev.device
    energy64 = energy_gev.to(torch.float64)
    tmax, alpha = sample_longitudinal(energy64, constants, p, generator=generator)
    beta = (alpha - 1.0) / tmax
    e_np = energy64.cpu().numpy()
    n_spots = torch.as_tensor(spot_counts(e_np, constants, p), device=dev)
    shower = torch.repeat_interleave(torch.arange(energy_gev.shape[0], device=dev), n_spots)
    n_total = int(shower.shape[0])
    f32 = torch.float32

    alpha_s = alpha[shower].to(f32)
    t = _gamma(alpha_s, generator) / beta[shower].to(f32)
    mean_alpha = torch.as_tensor(np.exp(longitudinal_parameters(e_np, constants, p).mean_ln_alpha), device=dev)
    tau_scale = ((alpha - 1.0) / (alpha * tmax) * mean_alpha / (mean_alpha - 1.0)).to(f32)
    tau = t * tau_scale[shower]
    ln_e = torch.log(energy64).to(f32)[shower]
    r_core, r_tail, weight = _radial_parameters(tau, ln_e, constants, p)
    u = torch.rand((3, n_total), generator=generator, device=dev, dtype=f32)
    radius_scale = torch.where(u[0] < weight, r_core, r_tail)
    u_r = u[1].clamp(_U_MARGIN, 1.0 - _U_MARGIN)
    r = radius_scale * torch.sqrt(u_r / (1.0 - u_r))
    phi = 2.0 * math.pi * u[2]

    e_spot = (energy64 / n_spots.to(torch.float64)).to(f32)[shower]
    if not constants.homogeneous:
        c2 = p.sampling_resolution**2  # GeV: gamma(shape dE / c^2) x c^2 has mean dE, variance c^2 dE
        e_spot = _gamma(e_spot / c2, generator) * c2
    return Spots(shower, t, r, phi, e_spot, tmax, alpha)


# ---------------------------------------------------------------- deposit and window


def deposit_spots(
    spots: Spots,
    theta_rad: torch.Tensor,
    constants: SamplingConstants,
    det: Detector,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Score spots of B showers into (B, nx, ny, n_layers) float32 silicon energies, GeV, window centred
    on each shower's barycentre cell."""
    dev = spots.t_x0.device
    f32 = torch.float32
    b = theta_rad.shape[0]
    nx, ny = det.n_cells
    n_layers = det.n_layers
    cell = det.cell_size_mm
    t_b = torch.as_tensor(constants.slab_bounds_x0, device=dev, dtype=f32)
    z_b = torch.as_tensor(constants.slab_bounds_mm, device=dev, dtype=f32)
    x0_slab = (z_b[1:] - z_b[:-1]) / (t_b[1:] - t_b[:-1]).clamp_min(1e-12)  # mm per radiation length
    z_edges = torch.as_tensor(constants.layer_edges_mm, device=dev, dtype=f32)
    layer_sf = torch.as_tensor(constants.layer_sampling_fraction, device=dev, dtype=f32)

    sin_t = torch.sin(theta_rad).to(f32)
    cos_t = torch.cos(theta_rad).to(f32)
    cot_t = cos_t / sin_t
    entry = torch.rand((b, 2), generator=generator, device=dev, dtype=f32) * cell  # uniform within a cell
    s = spots.shower
    sin_s, cos_s = sin_t[s], cos_t[s]
    # axis point: radiation lengths along the axis -> normal-incidence radiation lengths -> z through the stack
    t_normal = spots.t_x0 * sin_s
    slab = (torch.searchsorted(t_b, t_normal, right=True) - 1).clamp_(0, t_b.shape[0] - 2)
    z_axis = z_b[slab] + (t_normal - t_b[slab]) * x0_slab[slab]
    # lateral offset in the plane normal to the axis u = (0, cos, sin): e1 = (1, 0, 0), e2 = (0, sin, -cos)
    r_mm = spots.r_rm * constants.rm_eff_mm
    off1 = r_mm * torch.cos(spots.phi)
    off2 = r_mm * torch.sin(spots.phi)
    ix = torch.floor((entry[:, 0][s] + off1) / cell)
    iy = torch.floor((entry[:, 1][s] + z_axis * cot_t[s] + off2 * sin_s) / cell)
    z = (z_axis - off2 * cos_s).clamp_min_(0.0)
    layer = torch.searchsorted(z_edges, z, right=True) - 1
    inside = layer < n_layers  # beyond the stack: leaked out of the back
    visible = spots.energy_gev * layer_sf[layer.clamp_(max=n_layers - 1)]
    visible = torch.where(inside, visible, torch.zeros_like(visible))

    # window centred on the energy barycentre cell (rounded mean cell index, as calogen.simulation.mc)
    e_sum = torch.zeros(b, device=dev, dtype=f32).index_add_(0, s, visible)
    bx = torch.zeros(b, device=dev, dtype=f32).index_add_(0, s, visible * ix)
    by = torch.zeros(b, device=dev, dtype=f32).index_add_(0, s, visible * iy)
    safe = e_sum.clamp_min(1e-30)
    cx = torch.where(e_sum > 0, torch.round(bx / safe), torch.zeros_like(bx)) - nx // 2
    cy = torch.where(e_sum > 0, torch.round(by / safe), torch.zeros_like(by)) - ny // 2
    wx = (ix - cx[s]).long()
    wy = (iy - cy[s]).long()
    keep = inside & (wx >= 0) & (wx < nx) & (wy >= 0) & (wy < ny)
    flat = ((s * nx + wx) * ny + wy) * n_layers + layer
    grid = torch.zeros(b * nx * ny * n_layers, device=dev, dtype=f32)
    grid.index_add_(0, flat[keep], visible[keep])
    return grid.view(b, nx, ny, n_layers)  # (B, X, Y, L)

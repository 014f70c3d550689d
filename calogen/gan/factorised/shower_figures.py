"""Differentiable per-shower figures of (B, X, Y, Z) showers in GeV that the factorised campaign's generator
loss compares with the Monte Carlo's: layer barycentres and widths, hit counts (soft, through a sigmoid in ln E
around the 0.2 MeV threshold of the 3DGAN analyses, Khattak et al., arXiv:2103.08497), hits in rings around the
layer barycentre, core containment, and batch means compared within incidence-angle groups. Distances are in
cells (5.1 mm pitch)."""

from __future__ import annotations

import itertools
import math

import torch

__all__ = [
    "ANGLE_GROUP_EDGES_DEG",
    "HIT_THRESHOLD_GEV",
    "RING_EDGES_CELLS",
    "angle_groups",
    "axis_angle",
    "axis_distance",
    "axis_residuals",
    "condition_groups",
    "core_fraction",
    "grouped_gap",
    "layer_axis",
    "layer_widths",
    "ring_hits",
    "soft_hits",
    "spread_gap",
]

HIT_THRESHOLD_GEV = 2e-4  # a hit is a cell above 0.2 MeV (the 3DGAN analyses' threshold)
ANGLE_GROUP_EDGES_DEG = (80.0, 100.0)
"""The generator's batch-mean constraints compare showers within these incidence-angle groups (deg)."""
RING_EDGES_CELLS = (1.5, 3.0, 6.0, 12.0)
"""Edges of the rings around each layer's barycentre, cells, in which hits are counted (core, near, halo, far,
the rest of the window)."""

def layer_widths(showers_gev: torch.Tensor, *, per_axis: bool = False) -> torch.Tensor:
    """Energy-weighted RMS transverse distance from each layer's barycentre, cells; showers (B, X, Y, Z).

    (B, Z) the radial one; with ``per_axis`` (B, Z, 2) the x and the y one, as the validation's layer widths
    (:func:`calogen.validation.features.width`): the incidence angle tilts the shower in y only, so a shape can have
    the right radial width with y too narrow and x too wide."""
    _, nx, ny, _ = showers_gev.shape
    x = torch.arange(nx, dtype=showers_gev.dtype, device=showers_gev.device)[None, :, None, None]
    y = torch.arange(ny, dtype=showers_gev.dtype, device=showers_gev.device)[None, None, :, None]
    total = showers_gev.sum(dim=(1, 2)).clamp(min=1e-12)  # (B, Z)
    axis = layer_axis(showers_gev)  # (B, Z, 2)
    x_mean, y_mean = axis[:, None, None, :, 0], axis[:, None, None, :, 1]
    var_x = (showers_gev * (x - x_mean) ** 2).sum(dim=(1, 2)) / total
    var_y = (showers_gev * (y - y_mean) ** 2).sum(dim=(1, 2)) / total
    if per_axis:
        return torch.sqrt(torch.stack([var_x, var_y], dim=2).clamp(min=1e-6))
    return torch.sqrt((var_x + var_y).clamp(min=1e-6))


def _soft_hit(showers_gev: torch.Tensor, width: float = 0.25) -> torch.Tensor:
    """(B, X, Y, Z) differentiable hit indicator of each cell: sigmoid((ln cell - ln 0.2 MeV) / width)."""
    return torch.sigmoid((torch.log(showers_gev.clamp(min=1e-12)) - math.log(HIT_THRESHOLD_GEV)) / width)


def soft_hits(showers_gev: torch.Tensor, width: float = 0.25) -> torch.Tensor:
    """(B, Z) differentiable hit counts per layer: sum over cells of sigmoid((ln cell - ln 0.2 MeV) / width)."""
    return _soft_hit(showers_gev, width).sum(dim=(1, 2))


def ring_hits(showers_gev: torch.Tensor, *, soft: bool = True, width: float = 0.25,
              edges_cells: tuple[float, ...] = RING_EDGES_CELLS) -> torch.Tensor:
    """(B, Z, R) hit counts per layer in R = len(edges) + 1 rings around the layer's barycentre (cells; the last
    ring is the rest of the window): where the hits are, not only how many. ``soft``: the differentiable count of
    :func:`soft_hits` (sigmoid of ``width`` in ln E); otherwise cells above 0.2 MeV. showers (B, X, Y, Z) GeV."""
    _, nx, ny, _ = showers_gev.shape
    axis = layer_axis(showers_gev).detach()  # (B, Z, 2)
    x = torch.arange(nx, dtype=showers_gev.dtype, device=showers_gev.device)[None, :, None, None]
    y = torch.arange(ny, dtype=showers_gev.dtype, device=showers_gev.device)[None, None, :, None]
    distance = torch.sqrt((x - axis[:, None, None, :, 0]) ** 2 + (y - axis[:, None, None, :, 1]) ** 2)
    if soft:
        hit = _soft_hit(showers_gev, width)
    else:
        hit = (showers_gev > HIT_THRESHOLD_GEV).to(showers_gev.dtype)
    bounds = (0.0, *edges_cells, math.inf)
    return torch.stack([(hit * ((distance >= lo) & (distance < hi)).to(hit.dtype)).sum(dim=(1, 2))
                        for lo, hi in itertools.pairwise(bounds)], dim=2)


def core_fraction(showers_gev: torch.Tensor) -> torch.Tensor:
    """(B,) fraction of each shower's energy within one cell pitch (5.1 mm) of its transverse barycentre, all
    layers projected (as :func:`calogen.validation.features.core_containment` at 5.1 mm); differentiable in the
    cell energies (the cell selection itself is not)."""
    projection = showers_gev.sum(dim=3)  # (B, X, Y)
    _, nx, ny = projection.shape
    total = projection.sum(dim=(1, 2)).clamp(min=1e-12)
    x = torch.arange(nx, dtype=projection.dtype, device=projection.device)
    y = torch.arange(ny, dtype=projection.dtype, device=projection.device)
    bx = (projection.sum(dim=2) * x).sum(dim=1) / total
    by = (projection.sum(dim=1) * y).sum(dim=1) / total
    d2 = (x[None, :, None] - bx[:, None, None]) ** 2 + (y[None, None, :] - by[:, None, None]) ** 2
    return (projection * (d2 <= 1.0).detach().to(projection.dtype)).sum(dim=(1, 2)) / total


def layer_axis(showers_gev: torch.Tensor) -> torch.Tensor:
    """(B, Z, 2) energy-weighted x and y barycentre of each layer, cells; showers (B, X, Y, Z)."""
    _, nx, ny, _ = showers_gev.shape
    total = showers_gev.sum(dim=(1, 2)).clamp(min=1e-12)  # (B, Z)
    dtype, device = showers_gev.dtype, showers_gev.device
    x = (showers_gev.sum(dim=2) * torch.arange(nx, dtype=dtype, device=device)[None, :, None]).sum(dim=1) / total
    y = (showers_gev.sum(dim=1) * torch.arange(ny, dtype=dtype, device=device)[None, :, None]).sum(dim=1) / total
    return torch.stack([x, y], dim=2)


def _line_fit(values: torch.Tensor, weight: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Slope (B,) and residuals (B, Z) of the straight line fitted to values (B, Z) against depth (Z,), each layer
    weighted by weight (B, Z)."""
    total = weight.sum(dim=1, keepdim=True).clamp(min=1e-12)
    dz = depth - (weight * depth).sum(dim=1, keepdim=True) / total
    centred = values - (weight * values).sum(dim=1, keepdim=True) / total
    spread = (weight * dz**2).sum(dim=1, keepdim=True).clamp(min=1e-12)
    slope = (weight * dz * centred).sum(dim=1, keepdim=True) / spread
    return slope[:, 0], centred - slope * dz


def axis_angle(showers_gev: torch.Tensor, layer_depth_mm: torch.Tensor, cell_size_mm: float = 5.1) -> torch.Tensor:
    """(B,) polar angle of each shower's axis, radians (pi/2 at normal incidence): a straight line fitted through
    the layers' y barycentres against their depth, each layer weighted by its energy, as
    :func:`calogen.validation.features.measured_angle` measures it, differentiable in the cell energies.
    showers (B, X, Y, Z) GeV; layer_depth_mm (Z,) depth of each layer behind the front, mm."""
    slope, _ = _line_fit(layer_axis(showers_gev)[:, :, 1] * cell_size_mm, showers_gev.sum(dim=(1, 2)), layer_depth_mm)
    return 0.5 * math.pi - torch.atan(slope)


def axis_residuals(showers_gev: torch.Tensor, layer_depth_mm: torch.Tensor) -> torch.Tensor:
    """(B, Z, 2) distance in cells of each layer's x and y barycentre from the shower's own straight axis (lines
    fitted as in :func:`axis_angle`, in x and in y); 0 in empty layers. How far single layers stray from the axis:
    in the Monte Carlo's early layers, a few particles wide, 1.6 cells rms at 2-4 GeV and 0.7 at 40-80 GeV.
    showers (B, X, Y, Z) GeV; layer_depth_mm (Z,) mm."""
    weight = showers_gev.sum(dim=(1, 2))
    axis = layer_axis(showers_gev)
    residuals = torch.stack([_line_fit(axis[:, :, k], weight, layer_depth_mm)[1] for k in range(2)], dim=2)
    return torch.where((weight > 0.0)[:, :, None], residuals, torch.zeros_like(residuals))


def axis_distance(fake_gev: torch.Tensor, real_gev: torch.Tensor) -> torch.Tensor:
    """(B,) distance in cells between the layer barycentres of two showers with the same layer energies, averaged
    over the layers with the real shower's layer-energy fractions as weights: the shower axis, which the incident
    angle tilts (a low-noise form of the 3DGAN angle constraint)."""
    layers = real_gev.sum(dim=(1, 2))  # (B, Z)
    weights = layers / layers.sum(dim=1, keepdim=True).clamp(min=1e-12)
    gap = (layer_axis(fake_gev) - layer_axis(real_gev)).abs().sum(dim=2)  # (B, Z)
    return (weights * gap).sum(dim=1)


def angle_groups(theta_rad: torch.Tensor, edges_deg: tuple[float, ...] = ANGLE_GROUP_EDGES_DEG) -> list[torch.Tensor]:
    """Boolean masks (B,) of the showers in each incidence-angle group (radians in, group edges in degrees), the
    empty groups left out."""
    return condition_groups(theta_rad, angle_edges_deg=edges_deg)


def condition_groups(theta_rad: torch.Tensor, energy_gev: torch.Tensor | None = None, *,
                     angle_edges_deg: tuple[float, ...] = ANGLE_GROUP_EDGES_DEG,
                     energy_edges_gev: tuple[float, ...] = ()) -> list[torch.Tensor]:
    """Boolean masks (B,) of the showers in each group of incidence angle (edges in degrees) and, with
    ``energy_edges_gev``, of primary energy (GeV): every angle group split at those energies, the empty groups left
    out. Batch means compared over 2-500 GeV at once are dominated by the high energies, so a shape too wide at
    100 GeV and too narrow at 10 GeV can average out; within energy groups it cannot."""
    angle_bounds = (-math.inf, *(math.radians(e) for e in angle_edges_deg), math.inf)
    masks = [(theta_rad >= lo) & (theta_rad < hi) for lo, hi in itertools.pairwise(angle_bounds)]
    if energy_edges_gev:
        if energy_gev is None:
            raise ValueError("energy groups need the showers' energies (B,), GeV")
        energy_bounds = (-math.inf, *energy_edges_gev, math.inf)
        masks = [m & (energy_gev >= lo) & (energy_gev < hi) for m in masks
                 for lo, hi in itertools.pairwise(energy_bounds)]
    return [m for m in masks if bool(m.any())]


def spread_gap(fake: torch.Tensor, real: torch.Tensor, groups: list[torch.Tensor]) -> torch.Tensor:
    """Mean over the feature's entries of |ln s(fake) - ln s(real)|, s the within-group standard deviation pooled
    over the groups (each shower's deviation from its group's mean; groups of one shower left out): how much the
    feature varies from shower to shower at like conditions, which batch means do not constrain. fake, real
    (B, ...) per-shower features of showers at the same conditions; groups from :func:`condition_groups`."""
    fake_dev, real_dev = [], []
    for mask in groups:
        if int(mask.sum()) < 2:
            continue
        fake_dev.append(fake[mask] - fake[mask].mean(0))
        real_dev.append(real[mask] - real[mask].mean(0))
    if not fake_dev:
        return fake.new_zeros(())
    s_fake = torch.cat(fake_dev).pow(2).mean(0).clamp(min=1e-12).sqrt()
    s_real = torch.cat(real_dev).pow(2).mean(0).clamp(min=1e-12).sqrt()
    return (torch.log(s_fake) - torch.log(s_real)).abs().mean()


def grouped_gap(fake: torch.Tensor, real: torch.Tensor, groups: list[torch.Tensor], *,
                log1p: bool = False) -> torch.Tensor:
    """Mean over the groups and the feature's entries of |mean(fake) - mean(real)| within each group (batch
    means, feature matching); with ``log1p`` the means are compared as log(1 + mean) (counts). fake, real (B, ...)
    per-shower features of showers at the same conditions; groups from :func:`condition_groups`."""
    gaps = []
    for mask in groups:
        f, r = fake[mask].mean(0), real[mask].mean(0)
        gaps.append(((torch.log1p(f) - torch.log1p(r)) if log1p else (f - r)).abs().mean())
    return torch.stack(gaps).mean()

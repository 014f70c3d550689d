"""Where a shape generator's cells sit: the entry offset within the central cell and the shear onto the incidence
axis, both by linear interpolation between neighbouring cells, and the speckle field added before or after them.

Conventions: maps are (B, X, Y, Z), or (B, Z, X, Y) "layers first" (the Conv2D generator's layout, in which y is
the contiguous axis); shifts and offsets are in cells (5.1 mm), positive towards larger x or y.

With ``speckle_after_shear`` the shear, too, moves the mean logits and the spread, and the speckle field is added
on the sheared cells. Shearing the speckled logits instead interpolates the field between neighbouring cells:
``(1 - f) eps_i + f eps_(i+1)`` has the variance ``(1 - f)^2 + f^2``, 1 where a layer's shift is a whole number of
cells and 1/2 at half a cell. At 90 deg every shift is zero, so the field there is stronger than at every angle the
generator otherwise sees (2/3 on average over a uniform fraction), and generators trained so drew their halo twice
as full within ~2 deg of normal incidence (a Conv2D one at 100 GeV: 210 hits beyond 6 cells of the axis at 90 deg,
93 at 86 deg, where the Monte Carlo has about 100). Added after the shear, the field has unit variance in every
cell at every angle. The mean logits and the spread are interpolated too, which smooths them by an amount that
depends on the fraction of a cell they move: with the entry offset that fraction is made the same at every angle,
the offset's y part and each layer's shear moving the layer in one interpolation, so that the fraction is uniform
over a cell for every layer at every angle (moved by the offset and the shear one after the other, the layers at 90
deg are smoothed once and elsewhere twice: a Conv2D generator so trained had 9 % fewer hits at 90 deg than at 86).

Linear interpolation still smooths by an amount that depends on the fraction f moved: not at all at f = 0, most at
half a cell (a cell-to-cell pattern keeps (1 - f)^2 + f^2 of its variance). A generator's mean logits have such
patterns, and the hit count above 0.2 MeV follows the smoothing: a Conv2D generator trained so drew 522 hits at 100
GeV with its entry offset at the cell's centre and 797 at (0.45, 0.45) cells, the same showers otherwise (the Monte
Carlo's hit count varies by 7 % from shower to shower in all; the generator's by 18 %). With ``spline`` the maps
are moved by the quadratic B-spline instead (weights ((1/2 + f)^2 / 2, 3/4 - f^2, (1/2 - f)^2 / 2) on the
neighbours below, at and above the nearest cell, f within +-1/2; Unser, IEEE Signal Processing Magazine 16 (1999)
22): it moves by exactly f, sums to one, and its spread about the new position is 1/4 cell^2 for every f (a
B-spline of degree 2 reproduces polynomials up to degree 2), so every cell is smoothed alike wherever the shower
sits; at half a cell it is the linear interpolation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from calogen.validation.features import CELL_SIZE_MM, clic_layer_depth_mm

__all__ = ["AxisShear", "offset_within_cell", "placed_logits", "shift_weights", "speckled", "stencil_sum",
           "theta_from_conditions"]


def shift_weights(fraction: torch.Tensor, *, spline: bool = False) -> torch.Tensor:
    """(..., 3) weights of the neighbours (i - 1, i, i + 1) that give cell i of a map moved by ``fraction`` (...,)
    cells towards larger i: linear interpolation for |fraction| <= 1, or, with ``spline``, the quadratic B-spline
    for |fraction| <= 1/2 (module docstring)."""
    if spline:
        return torch.stack([0.5 * (0.5 + fraction) ** 2, 0.75 - fraction ** 2, 0.5 * (0.5 - fraction) ** 2], -1)
    return torch.stack([fraction.clamp(min=0.0), 1.0 - fraction.abs(), (-fraction).clamp(min=0.0)], -1)


class AxisShear(nn.Module):
    """Shifts each layer's logits along y to the shower axis of the incidence angle: a particle at angle theta
    crosses layer k at y = (d_k - d) cot(theta) from the shower's barycentre (d_k the layer's depth, d the
    energy-weighted mean depth; :mod:`calogen.gan.factorised.shape_nets`)."""

    def __init__(self, grid: tuple[int, int, int]) -> None:
        super().__init__()
        depth = torch.as_tensor(clic_layer_depth_mm(grid[2]), dtype=torch.float32)
        self.register_buffer("depth_cells", depth / CELL_SIZE_MM, persistent=False)  # (Z,) in cell sizes

    def shift_cells(self, theta_rad: torch.Tensor, layer_energy_gev: torch.Tensor) -> torch.Tensor:
        """(B, Z) shift of each layer along +y, cells: (d_k - d) cot(theta), d the energy-weighted mean depth."""
        depth: torch.Tensor = self.depth_cells  # type: ignore[assignment]
        weight = layer_energy_gev.detach().clamp(min=0.0)
        mean_depth = (weight * depth).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp(min=1e-12)
        cot = torch.cos(theta_rad) / torch.sin(theta_rad)
        return (depth[None, :] - mean_depth) * cot[:, None]

    def forward(self, logits: torch.Tensor, shift: torch.Tensor, *, layers_first: bool = False,
                spline: bool = False) -> torch.Tensor:
        """logits (B, X, Y, Z), or (B, Z, X, Y) with ``layers_first``, shift (B, Z) cells -> logits moved by
        ``shift`` along y (the edge values beyond), in the same layout. The work is done layers first, gathering along
        y as the last axis (for (B, X, Y, Z) logits too: the result then lies layers first in memory, as the softmax
        over each layer's cells wants it). ``spline``: the quadratic B-spline instead of linear interpolation."""
        return self.move((logits,), shift, layers_first=layers_first, spline=spline)[0]

    def move(self, maps: tuple[torch.Tensor, ...], shift: torch.Tensor, *,
             layers_first: bool = False, spline: bool = False) -> list[torch.Tensor]:
        """Each of ``maps`` (all of one shape and layout, see :meth:`forward`) moved by ``shift`` (B, Z) cells along
        y. A layer's shift is the same for all its cells, so one gather of Y + 1 cells per row holds both
        neighbours of every target cell (the whole-cell part), and the fraction interpolates between them; with
        ``spline`` a gather of Y + 2 cells holds the three neighbours of the quadratic B-spline."""
        if not layers_first:
            moved = self.move(tuple(m.permute(0, 3, 1, 2) for m in maps), shift, layers_first=True, spline=spline)
            return [m.permute(0, 2, 3, 1) for m in moved]
        b, nz, nx, ny = maps[0].shape
        dtype = maps[0].dtype
        shift = shift.to(dtype)
        if spline:
            nearest = torch.round(shift)  # (B, Z): cell y takes its value around y - nearest
            weights = shift_weights(shift - nearest, spline=True)[:, :, None, None, :]  # (B, Z, 1, 1, 3)
            y = torch.arange(ny + 2, device=maps[0].device)
            index = (y[None, None, :] - nearest.long()[:, :, None] - 1).clamp(0, ny - 1)
            index = index[:, :, None].expand(b, nz, nx, ny + 2)
            out = []
            for m in maps:
                window = m.gather(3, index)  # (B, Z, X, Y + 2): cell y's three neighbours at y, y + 1, y + 2
                out.append(weights[..., 0] * window[..., :-2] + weights[..., 1] * window[..., 1:-1]
                           + weights[..., 2] * window[..., 2:])
            return out
        whole = torch.floor(-shift)  # (B, Z): the cell y - shift falls in, relative to y
        frac = (-shift - whole)[:, :, None, None]  # (B, Z, 1, 1)
        y = torch.arange(ny + 1, device=maps[0].device)
        index = (y[None, None, :] + whole.long()[:, :, None]).clamp(0, ny - 1)[:, :, None].expand(b, nz, nx, ny + 1)
        moved = []
        for m in maps:
            both = m.gather(3, index)  # (B, Z, X, Y + 1): the lower neighbour of cell y at y, the upper at y + 1
            moved.append(torch.lerp(both[..., :-1], both[..., 1:], frac))
        return moved


def offset_within_cell(maps: torch.Tensor, offset: torch.Tensor, *, layers_first: bool = False,
                       spline: bool = False, x_only: bool = False) -> torch.Tensor:
    """maps (B, X, Y, Z), or (B, Z, X, Y) with ``layers_first``, moved by offset (B, 2) cells in x and y, each
    within [-0.5, 0.5], by linear interpolation with the neighbouring cells (the edge values beyond), or with
    ``spline`` by the quadratic B-spline (module docstring); with ``x_only`` along x alone (y as it is: the B-spline
    smooths at a zero offset too).

    Along an axis with shift s a cell becomes ``(1 - |s|) m[i] + s m[i - 1]`` for s > 0 and ``- s m[i + 1]`` for
    s < 0 (linear): a 3 x 3 stencil per shower, the outer product of the two axes', applied as one depthwise
    convolution.
    """
    b = maps.shape[0]
    s = offset.to(maps.dtype)
    stencil = shift_weights(s, spline=spline)  # (B, 2, 3): m[i-1], m[i], m[i+1]
    if x_only:
        stencil = torch.stack([stencil[:, 0], torch.tensor([0.0, 1.0, 0.0], dtype=s.dtype, device=s.device)
                               .expand(b, 3)], 1)
    kernel = stencil[:, 0, :, None] * stencil[:, 1, None, :]  # (B, 3, 3) over (x, y)
    if torch.onnx.is_in_onnx_export():  # ONNX has no convolution with a per-shower kernel: the same sum, unrolled
        return stencil_sum(maps, kernel, layers_first=layers_first)
    if layers_first:
        _, nz, nx, ny = maps.shape
        weight = kernel.repeat_interleave(nz, 0)[:, None]  # (B Z, 1, 3, 3)
        padded = F.pad(maps.reshape(1, b * nz, nx, ny), (1, 1, 1, 1), mode="replicate")
        return F.conv2d(padded, weight, groups=b * nz).view(b, nz, nx, ny)
    _, nx, ny, nz = maps.shape  # y and the layers flattened: y-neighbours are Z apart, a dilated 2D stencil
    padded = F.pad(maps[None], (0, 0, 1, 1, 1, 1), mode="replicate").view(1, b, nx + 2, (ny + 2) * nz)
    return F.conv2d(padded, kernel[:, None], groups=b, dilation=(1, nz)).view(b, nx, ny, nz)


def stencil_sum(maps: torch.Tensor, kernel: torch.Tensor, *, layers_first: bool = False) -> torch.Tensor:
    """The stencil of :func:`offset_within_cell` as a sum of nine shifted copies of the edge-padded maps (the same
    values; what an ONNX graph can express). maps (B, X, Y, Z) or (B, Z, X, Y) with ``layers_first``; kernel
    (B, 3, 3) over (x, y): entry [i, j] weights the neighbour at (x + i - 1, y + j - 1), as a convolution does."""
    grid = maps if layers_first else maps.permute(0, 3, 1, 2)  # (B, Z, X, Y)
    _, _, nx, ny = grid.shape
    padded = F.pad(grid, (1, 1, 1, 1), mode="replicate")
    out = torch.zeros_like(grid)
    for i in range(3):
        for j in range(3):
            out = out + kernel[:, i, j, None, None, None] * padded[:, :, i:i + nx, j:j + ny]
    return out if layers_first else out.permute(0, 2, 3, 1)


def speckled(mean: torch.Tensor, spread: torch.Tensor | None, eps: torch.Tensor | None,
              offset: torch.Tensor | None, *, layers_first: bool = False) -> torch.Tensor:
    """Cell logits ``mean + spread x eps`` (all in one layout, see :func:`offset_within_cell`), the mean logits and
    the spread first moved by the entry offset (B, 2) when there is one; without a speckle field, the mean."""
    if offset is not None:
        mean = offset_within_cell(mean, offset, layers_first=layers_first)
        spread = None if spread is None else offset_within_cell(spread, offset, layers_first=layers_first)
    return mean if spread is None or eps is None else mean + spread * eps


def theta_from_conditions(conditions: torch.Tensor) -> torch.Tensor:
    """(B,) incidence angle, radians, from the conditions' second column ((theta - pi/2) / 0.5 rad)."""
    return 0.5 * conditions[:, 1] + 0.5 * math.pi


def _shift(shear: AxisShear, conditions: torch.Tensor, layer_energy_gev: torch.Tensor | None) -> torch.Tensor:
    """(B, Z) shift of each layer along y, cells, for the conditions' angles and the layer energies (B, Z) GeV."""
    if layer_energy_gev is None:
        raise ValueError("a shape generator with axis_shear needs the layer energies (B, Z) to place the axis")
    return shear.shift_cells(theta_from_conditions(conditions), layer_energy_gev)


def placed_logits(shear: AxisShear | None, mean: torch.Tensor, spread: torch.Tensor | None, eps: torch.Tensor | None,
                  offset: torch.Tensor | None, conditions: torch.Tensor, layer_energy_gev: torch.Tensor | None, *,
                  speckle_after_shear: bool = False, layers_first: bool = False, spline: bool = False
                  ) -> torch.Tensor:
    """Cell logits on the shower axis (all in one layout, (B, X, Y, Z) or (B, Z, X, Y) with ``layers_first``):
    the mean logits and the spread moved by the entry offset, the speckle field added, and the axis shear applied
    to the result; or, with ``speckle_after_shear``, the mean and the spread moved by the entry offset in x
    and by the shear plus the offset's y part in y (one interpolation per layer), then the field added (module
    docstring). ``spline`` (with ``speckle_after_shear``): the quadratic B-spline for every move."""
    if spline and not (shear is not None and speckle_after_shear):
        raise ValueError("spline placement moves the mean logits and the spread: it needs the axis shear with the "
                         "speckle field added after it")
    if shear is None or not speckle_after_shear:
        logits = speckled(mean, spread, eps, offset, layers_first=layers_first)
        if shear is None:
            return logits
        return shear(logits, _shift(shear, conditions, layer_energy_gev), layers_first=layers_first)
    shift = _shift(shear, conditions, layer_energy_gev)
    if offset is not None:  # the offset's y part joins the shear: one interpolation along y per layer
        shift = shift + offset[:, 1:2].to(shift.dtype)
        mean = offset_within_cell(mean, offset, layers_first=layers_first, spline=spline, x_only=True)
        spread = None if spread is None else offset_within_cell(spread, offset, layers_first=layers_first,
                                                                spline=spline, x_only=True)
    if spread is None or eps is None:
        return shear(mean, shift, layers_first=layers_first, spline=spline)
    mean, spread = shear.move((mean, spread), shift, layers_first=layers_first, spline=spline)
    return torch.addcmul(mean, spread, eps)

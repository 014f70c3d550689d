"""Shape generators and their critic: per-layer normalised images given energy, angle and layer energies.

Two generators with one interface, after the Conv2D-versus-Conv3D comparison of Rehm et al. (2021, "Reduced
precision strategies for deep learning: a high energy physics generative adversarial network use case",
arXiv:2103.10142, and the 3DGAN's 2D variant): :class:`ShapeGenerator3D` grows the shower as a 3D volume with 3D
convolutions; :class:`ShapeGenerator2D` treats the 25 layers as the channels of 2D convolutions. Both end in a
softmax over each layer's cells followed by a ReLU below a floor, so cells can be exactly empty (the 3DGAN's
sparsity) while no layer can die, and each layer sums to one; the shower is the shape times the layer energies
from the energy model.

Monte Carlo showers are speckled: about 1 % of the cells are hit, and a cell is either empty or holds at least the
deposit of a few crossing particles. Two things let a generator draw that rather than a smooth mean shape (with
``speckle_dim > 0`` and ``threshold_gev > 0``): the logits are ``mean + spread x eps``, both maps produced by the
network and ``eps`` a per-cell standard normal field (a fixed random projection of ``speckle_dim`` noise values, so a
seed gives the same shower on every device, like the noise inputs of StyleGAN, Karras et al. arXiv:1812.04948); and
the sparsity floor is an energy, ``threshold_gev`` per cell, instead of a fraction of the layer.

With ``axis_shear`` the network draws the shower in its own frame and a fixed shear puts it on its axis: a
particle at angle theta crosses layer k at y = (d_k - d) cot(theta) from the shower's barycentre (d_k the layer's
depth in the stack, d the energy-weighted mean depth, both from the layer energies), so each layer's logits are
shifted by that many cells along y (linear interpolation) before the softmax. The tilt, which the convolutions
otherwise have to learn from the angle alone, is then exact, and the network only learns what the angle does
to the shape around the axis.

With ``entry_offset`` the shower's position within its central cell is drawn too: the particle enters the
calorimeter at a point uniform over one 5.1 mm cell, and the 51 x 51 window is centred on the cell that holds the
barycentre, so the barycentre lies anywhere within +-0.5 cells of the window's centre. The last two latent values
give that offset, ``Phi(z) - 0.5`` cells in x and y (``Phi`` the standard normal distribution function, so the
offset is uniform), and the mean logits and the speckle spread are moved by it (linear interpolation with the
neighbouring cells) before the speckle field is added, so the field keeps its per-cell amplitude; the axis shear
then acts as without the offset. Without it the network has to learn the offset from its latent, and learns it too
narrow: the barycentres of its showers scatter by ~0.15 cells about the centre, the Monte Carlo's by ~0.25.

With ``speckle_after_shear`` the shear moves the mean logits and the spread, and the speckle field is added
after it (:mod:`calogen.gan.factorised.placement` says why). With ``spline_placement`` the offset and the shear move
them by the quadratic B-spline, which smooths every cell alike wherever the shower sits (linear interpolation does
not: the hit count then follows the entry offset; the same module says how much).

With ``speckle_cap`` c > 0 the field is bounded, ``c tanh(eps / c)``: equal to eps where |eps| is well below c,
never beyond +-c. The unbounded log-normal tail of ``exp(spread x eps)`` puts, in every shower, a few cells far
from the axis at many times their mean (about 15 of the 65,025 cells have eps > 3.5), and those few dominate the
energy-weighted widths: models/conv3d's layer widths fell from 1.4-2.7 to 0.8-1.9 times the Monte Carlo's when its
field was cut at c = 2, without retraining. Bounded, the field lets a cell far out be either empty or near
``exp(mean + c spread)`` when the spread is large (a hit of about one particle's deposit, as the Monte Carlo's
halo) and still behaves as the normal field when the spread is small.

The critic (:class:`ShapeCritic`) sees ``log1p(cell / 0.1 MeV)`` with the layers as channels and the conditions
through a projection term (Miyato & Koyama, arXiv:1802.05637), with spectral normalisation on every layer
(Miyato et al., arXiv:1802.05957) for the hinge loss.

Shapes: showers float32 (B, 51, 51, 25) GeV (x, y, layer); conditions float32 (B, 27) =
``(log(E/100 GeV), (theta - pi/2)/0.5 rad, 25 standardised layer-energy variables)``.
"""

from __future__ import annotations

import abc
import contextlib
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from calogen.gan.factorised.placement import AxisShear, placed_logits
from calogen.gan.nets.layers import set_weight_layout

__all__ = [
    "CELL_SCALE_GEV",
    "OFFSET_DIM",
    "ShapeConfig",
    "ShapeCritic",
    "ShapeGenerator",
    "ShapeGenerator2D",
    "ShapeGenerator3D",
    "build_shape_generator",
    "cells_from_view",
    "critic_input",
]

CELL_SCALE_GEV = 1e-4  # the critic sees log1p(cell / 0.1 MeV): the 3DGAN hit threshold region is resolved
SPARSITY_FLOOR = 1e-5  # a cell holding less than this fraction of its layer is empty (10 keV of a 1 GeV layer)


@dataclass(frozen=True)
class ShapeConfig:
    """Sizes of a shape generator (channels at the coarse, middle and full resolution) and its inputs."""

    kind: Literal["conv2d", "conv3d"] = "conv2d"
    latent_dim: int = 64
    n_conditions: int = 27  # log energy, angle, 25 layer-energy variables
    grid: tuple[int, int, int] = (51, 51, 25)  # cells x, y, layers
    channels: tuple[int, int, int] = (64, 32, 8)  # conv3d uses all three, conv2d the first two
    speckle_dim: int = 0  # noise values projected onto the per-cell field eps (0: a smooth shape, no eps)
    threshold_gev: float = 0.0  # cells below this energy are empty (0: the floor is SPARSITY_FLOOR of the layer)
    axis_shear: bool = False  # draw the shower along its axis: each layer's logits shifted in y by the incidence
    entry_offset: bool = False  # the last 2 latent values place the shower within its central cell (+-0.5 cells)
    speckle_cap: float = 0.0  # > 0: the speckle field is bounded, c tanh(eps / c) (0: the unbounded normal field)
    speckle_after_shear: bool = False  # the shear moves the mean logits and the spread, then the field is added
    spline_placement: bool = False  # the entry offset and the shear move by the quadratic B-spline (placement.py)


def _layer_shapes(logits: torch.Tensor, floor: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, X, Y, Z) logits -> (B, X, Y, Z) non-negative shapes, each layer summing to one, and the density they
    were cut from.

    A softmax over the cells of each layer (the density), then renormalised after the cells below a floor are
    emptied (the shapes). Without ``floor`` the cut is ``relu(p - SPARSITY_FLOOR)`` (the 3DGAN's sparsity through
    a ReLU). With ``floor`` ((B, Z) fractions of each layer, an energy threshold over the layer energy) cells below
    it are set to zero and the others kept, so every non-empty cell holds at least the threshold. Either floor is
    capped at half the layer's largest cell, so a layer can never die. The density is differentiable in every
    cell, also in those the floor empties.
    """
    b, nx, ny, nz = logits.shape
    # layers first in memory, so that the softmax and the sums run over contiguous cells (on a CPU 5x faster
    # than across the strided last axis); the result is the same (B, X, Y, Z) tensor, laid out (B, Z, X, Y)
    p = torch.softmax(logits.permute(0, 3, 1, 2).reshape(b, nz, nx * ny), dim=2)
    cap = 0.5 * p.amax(dim=2, keepdim=True).detach()  # (B, Z, 1)
    if floor is None:
        sparse = F.relu(p - torch.minimum(torch.full_like(cap, SPARSITY_FLOOR), cap))
    else:
        sparse = p * (p >= torch.minimum(floor[:, :, None], cap)).to(p.dtype)
    shapes = (sparse / sparse.sum(dim=2, keepdim=True)).reshape(b, nz, nx, ny).permute(0, 2, 3, 1)
    return shapes, p.reshape(b, nz, nx, ny).permute(0, 2, 3, 1)


def _upsampled_conv(h: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv`` (3 x 3, padding 1) of the nearest-neighbour x2 upsampling of h (B, C, H, W) -> (B, O, 2H, 2W),
    computed on the coarse grid: each of the four output phases reads two coarse rows and two coarse columns, so
    it is a 2 x 2 convolution whose taps sum the 3 x 3 taps that fall on the same coarse cell (2.25 times fewer
    operations, half the time here; the same values to float rounding)."""
    w = conv.weight
    b, _, height, width = h.shape
    # phase 0 reads coarse offsets (-1, 0) with taps (w0, w1 + w2); phase 1 reads (0, +1) with (w0 + w1, w2)
    row_taps = (torch.stack([w[:, :, 0], w[:, :, 1] + w[:, :, 2]], 2),
                torch.stack([w[:, :, 0] + w[:, :, 1], w[:, :, 2]], 2))  # (O, C, 2, 3) each
    phases = []
    for a, rows in enumerate(row_taps):
        for c in range(2):
            kernel = (torch.stack([rows[..., 0], rows[..., 1] + rows[..., 2]], 3) if c == 0
                      else torch.stack([rows[..., 0] + rows[..., 1], rows[..., 2]], 3))  # (O, C, 2, 2)
            padding = ((1, 0) if c == 0 else (0, 1)) + ((1, 0) if a == 0 else (0, 1))  # columns, then rows
            phases.append(F.conv2d(F.pad(h, padding), kernel, conv.bias))
    out = torch.stack(phases, 2).view(b, -1, 2, 2, height, width)  # (B, O, row phase, column phase, H, W)
    return out.permute(0, 1, 4, 2, 5, 3).reshape(b, -1, 2 * height, 2 * width)


def _phased_deconv(h: torch.Tensor, up: nn.ConvTranspose2d, size: tuple[int, int]) -> torch.Tensor:
    """``up`` (a 4 x 4 transposed convolution, stride 2, padding 1) of h (B, C, H, W), cropped to ``size`` (at most
    (2H, 2W)) -> contiguous (B, O, *size), computed as four 2 x 2 convolutions, one per output phase, written straight
    into the cropped grid (one pass instead of the transposed convolution, the crop and a copy out of the
    channels-last layout: half the time here; the same values to float rounding).

    Output row 2m reads input rows (m - 1, m) with kernel rows (3, 1); row 2m + 1 reads (m, m + 1) with (2, 0); and
    the same for columns.
    """
    w = up.weight  # (C, O, 4, 4)
    b, _, height, width = h.shape
    padded = F.pad(h, (1, 1, 1, 1))
    out = h.new_empty(b, w.shape[1], *size)
    taps = ([3, 1], [2, 0])
    for a in range(2):
        for c in range(2):
            kernel = w[:, :, taps[a]][:, :, :, taps[c]].transpose(0, 1)  # (O, C, 2, 2)
            phase = F.conv2d(padded[:, :, a:a + height + 1, c:c + width + 1], kernel, up.bias)  # (B, O, H, W)
            rows, cols = out[:, :, a::2, c::2].shape[2:]
            out[:, :, a::2, c::2] = phase[:, :, :rows, :cols]
    return out


class _Speckle(nn.Module):
    """A per-cell standard normal field eps (B, X, Y, Z) from ``speckle_dim`` noise values (B, k).

    ``eps = noise @ W / |noise|`` with W (k, X Y Z) standard normal, drawn once from a fixed seed (not trained, not
    stored): over the cells of a shower eps is a unit normal field whatever the noise's norm, nearby cells are
    uncorrelated, and the field is a pure function of the noise, so a seeded sample is reproducible on any device
    and in any batch.
    """

    def __init__(self, k: int, grid: tuple[int, int, int], cap: float = 0.0) -> None:
        super().__init__()
        if cap < 0.0:
            raise ValueError(f"speckle_cap={cap} must not be negative (0: the unbounded field)")
        self.cap = cap
        generator = torch.Generator().manual_seed(20261202)
        weight = torch.randn(k, grid[0] * grid[1] * grid[2], generator=generator)
        self.register_buffer("weight", weight, persistent=False)
        self.grid = grid
        self._weight_zxy: torch.Tensor | None = None  # the columns in (Z, X, Y) order, made on first use

    def forward(self, noise: torch.Tensor, *, layers_first: bool = False) -> torch.Tensor:
        """noise (B, k) -> eps (B, X, Y, Z); with ``layers_first`` the same field as (B, Z, X, Y); bounded by
        ``cap tanh(eps / cap)`` when the cap is positive."""
        weight: torch.Tensor = self.weight  # type: ignore[assignment]
        direction = noise / noise.norm(dim=1, keepdim=True).clamp(min=1e-12)
        if self.cap > 0.0:  # cap tanh(eps / cap) with the 1 / cap folded into the direction (exact for a power of 2)
            direction = direction / self.cap
        if not layers_first:
            eps = (direction @ weight.to(noise.dtype)).view(-1, *self.grid)
        else:
            nx, ny, nz = self.grid
            if self._weight_zxy is None or self._weight_zxy.device != weight.device:
                self._weight_zxy = weight.view(-1, nx, ny, nz).permute(0, 3, 1, 2).reshape(weight.shape[0], -1)
            eps = (direction @ self._weight_zxy.to(noise.dtype)).view(-1, nz, nx, ny)
        if self.cap <= 0.0:
            return eps
        # in place: the field is a fixed function of the noise, never part of a gradient
        return eps.tanh_().mul_(self.cap) if not eps.requires_grad else self.cap * torch.tanh(eps)


OFFSET_DIM = 2  # latent values of the entry offset (x, y)


def _offset_dim(config: ShapeConfig) -> int:
    return OFFSET_DIM if config.entry_offset else 0


def _split_latent(config: ShapeConfig, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(B, latent_dim) -> the network's latent (B, latent_dim - speckle_dim - offset values), the speckle noise
    (B, speckle_dim) and, with ``entry_offset``, the offset within the central cell (B, 2) in cells, x and y."""
    k, o = config.speckle_dim, _offset_dim(config)
    end = config.latent_dim - o
    # the standard normal's cumulative distribution, 0.5 (1 + erf(x / sqrt 2)), written with erf so that ONNX exports it
    offset = 0.5 * torch.erf(latent[:, end:] * math.sqrt(0.5)) if o else None
    return latent[:, :end - k], latent[:, end - k:end], offset


def _floor(config: ShapeConfig, layer_energy_gev: torch.Tensor | None) -> torch.Tensor | None:
    """(B, Z) floor fractions for an absolute cell threshold, or None for the default fraction."""
    if config.threshold_gev <= 0.0 or layer_energy_gev is None:
        return None
    return config.threshold_gev / layer_energy_gev.clamp(min=1e-12)


class ShapeGenerator(nn.Module, abc.ABC):
    """What both shape generators share: ``forward`` gives the shapes, ``shapes_and_density`` also the density
    before the cell threshold (for losses that need a gradient in the cells the threshold empties)."""

    config: ShapeConfig
    _bf16: bool = False

    def use_bf16(self, enabled: bool = True) -> ShapeGenerator:
        """Run the network (dense layer and convolutions) in bfloat16 on CPUs that have it (AVX512-BF16, AMX) or on
        a GPU; the speckle field, the entry offset, the shear, the softmax and the cell threshold stay float32. Not
        exact: the logits carry bfloat16's 8-bit mantissa, so cells move by about a per cent of their energy, and
        the showers need their own validation. Returns self."""
        self._bf16 = enabled
        return self

    def _net_precision(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """The autocast context of the network's layers: bfloat16 with :meth:`use_bf16`, else nothing."""
        if not self._bf16:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    @abc.abstractmethod
    def _logits(self, latent: torch.Tensor, conditions: torch.Tensor,
                layer_energy_gev: torch.Tensor | None) -> torch.Tensor:
        """(B, X, Y, Z) cell logits; each architecture gives its own."""

    def shapes_and_density(self, latent: torch.Tensor, conditions: torch.Tensor,
                           layer_energy_gev: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """latent (B, latent_dim), conditions (B, 27), layer energies (B, Z) GeV (for the cell threshold) ->
        shapes (B, X, Y, Z), each layer summing to one, and the softmax density (B, X, Y, Z) they were cut from."""
        return _layer_shapes(self._logits(latent, conditions, layer_energy_gev), _floor(self.config, layer_energy_gev))

    def forward(self, latent: torch.Tensor, conditions: torch.Tensor,
                layer_energy_gev: torch.Tensor | None = None) -> torch.Tensor:
        """latent (B, latent_dim), conditions (B, 27), layer energies (B, Z) GeV (for the cell threshold) ->
        shapes (B, X, Y, Z), each layer summing to one."""
        return self.shapes_and_density(latent, conditions, layer_energy_gev)[0]


class ShapeGenerator2D(ShapeGenerator):
    """Layers as channels: dense -> (C0, 13, 13) -> conv at (26, 26) -> transposed conv to (51, 51) x 25 layers."""

    def __init__(self, config: ShapeConfig) -> None:
        super().__init__()
        self.config = config
        c0, c1, _ = config.channels
        nx, ny, nz = config.grid
        self._coarse = (c0, (nx + 3) // 4, (ny + 3) // 4)
        n_in = config.latent_dim - config.speckle_dim - _offset_dim(config) + config.n_conditions
        self.dense = nn.Linear(n_in, c0 * self._coarse[1] * self._coarse[2])
        self.conv = nn.Conv2d(c0 + 2, c1, 3, padding=1)
        self.up = nn.ConvTranspose2d(c1, nz * (2 if config.speckle_dim else 1), 4, stride=2, padding=1)
        self.speckle = _Speckle(config.speckle_dim, config.grid, config.speckle_cap) if config.speckle_dim else None
        self.shear = AxisShear(config.grid) if config.axis_shear else None
        self._channels_last = False

    def use_fast_path(self, enabled: bool = True) -> ShapeGenerator2D:
        """Switch the inference speed-ups on or off: the channels-last layout of the convolutions (oneDNN
        convolves (N, H, W, C) faster on CPUs: ~20 % less time per shower here), the upsampling convolution
        computed on the coarse grid (:func:`_upsampled_conv`) and the transposed convolution phase by phase
        (:func:`_phased_deconv`). Weights and state-dict keys are unchanged; outputs
        agree to ~1e-5. Returns self."""
        self._channels_last = enabled
        set_weight_layout(self, torch.channels_last if enabled else torch.contiguous_format)
        return self

    def _logits(self, latent: torch.Tensor, conditions: torch.Tensor,
                layer_energy_gev: torch.Tensor | None) -> torch.Tensor:
        """(B, X, Y, Z) cell logits."""
        nx, ny, nz = self.config.grid
        c0, cx, cy = self._coarse
        z, speckle, offset = _split_latent(self.config, latent)
        with self._net_precision(latent.device):
            h = F.leaky_relu(self.dense(torch.cat([z, conditions], 1)), 0.2).view(-1, c0, cx, cy)  # (B, C, 13, 13)
            planes = conditions[:, :2, None, None]  # the energy and angle as constant planes beside the features
            if self._channels_last:  # the fast path: nearest x2 upsampling and the 3 x 3 convolution on the coarse grid
                h = _upsampled_conv(torch.cat([h, planes.expand(-1, -1, cx, cy).to(h.dtype)], 1), self.conv)
                h = h.contiguous(memory_format=torch.channels_last)
            else:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (B, C, 26, 26)
                h = self.conv(torch.cat([h, planes.expand(-1, -1, 2 * cx, 2 * cy).to(h.dtype)], 1))
            h = F.leaky_relu(h, 0.2)  # (B, C1, 26, 26)
            # kept layers-first (B, Z or 2Z, X, Y) until the end: elementwise work on contiguous cells is 5x faster
            if self._channels_last:
                out = _phased_deconv(h, self.up, (nx, ny))  # (B, Z or 2Z, X, Y)
            else:
                out = self.up(h)[:, :, :nx, :ny]  # (B, Z or 2Z, 52, 52) -> (B, Z or 2Z, X, Y)
        out = out.float().contiguous()
        spread, eps = ((F.softplus(out[:, nz:]), self.speckle(speckle, layers_first=True))
                       if self.speckle is not None else (None, None))
        # (B, Z, X, Y): sheared along y where it is the contiguous axis, then seen as (B, X, Y, Z) (the softmax over
        # each layer's cells then runs over contiguous memory)
        logits = placed_logits(self.shear, out[:, :nz], spread, eps, offset, conditions, layer_energy_gev,
                               speckle_after_shear=self.config.speckle_after_shear, layers_first=True,
                               spline=self.config.spline_placement)
        return logits.permute(0, 2, 3, 1)


class ShapeGenerator3D(ShapeGenerator):
    """A 3D volume: dense -> (C0, 13, 13, 7) -> 3D conv -> transposed 3D convs to (26, 26, 14), (51, 51, 25)."""

    def __init__(self, config: ShapeConfig) -> None:
        super().__init__()
        self.config = config
        c0, c1, c2 = config.channels
        nx, ny, nz = config.grid
        self._coarse = (c0, (nx + 3) // 4, (ny + 3) // 4, (nz + 3) // 4)
        n_in = config.latent_dim - config.speckle_dim - _offset_dim(config) + config.n_conditions
        self.dense = nn.Linear(n_in, c0 * self._coarse[1] * self._coarse[2] * self._coarse[3])
        self.conv = nn.Conv3d(c0 + 2, c1, 3, padding=1)
        self.up1 = nn.ConvTranspose3d(c1, c2, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose3d(c2, 2 if config.speckle_dim else 1, 4, stride=2, padding=1)
        self.speckle = _Speckle(config.speckle_dim, config.grid, config.speckle_cap) if config.speckle_dim else None
        self.shear = AxisShear(config.grid) if config.axis_shear else None

    def _logits(self, latent: torch.Tensor, conditions: torch.Tensor,
                layer_energy_gev: torch.Tensor | None) -> torch.Tensor:
        """(B, X, Y, Z) cell logits."""
        nx, ny, nz = self.config.grid
        c0, cx, cy, cz = self._coarse
        z, speckle, offset = _split_latent(self.config, latent)
        with self._net_precision(latent.device):
            h = F.leaky_relu(self.dense(torch.cat([z, conditions], 1)), 0.2).view(-1, c0, cx, cy, cz)
            h = torch.cat([h, conditions[:, :2, None, None, None].expand(-1, -1, cx, cy, cz).to(h.dtype)], 1)
            h = F.leaky_relu(self.conv(h), 0.2)  # (B, C1, 13, 13, 7)
            h = F.leaky_relu(self.up1(h), 0.2)  # (B, C2, 26, 26, 14)
            out = self.up2(h)[:, :, :nx, :ny, :nz]  # (B, 1 or 2, 52, 52, 28) -> (B, 1 or 2, X, Y, Z)
        out = out.float().contiguous()
        spread, eps = (F.softplus(out[:, 1]), self.speckle(speckle)) if self.speckle is not None else (None, None)
        return placed_logits(self.shear, out[:, 0], spread, eps, offset, conditions, layer_energy_gev,
                             speckle_after_shear=self.config.speckle_after_shear,
                             spline=self.config.spline_placement)


def build_shape_generator(config: ShapeConfig) -> ShapeGenerator:
    """The generator of ``config.kind``."""
    if not 0 <= config.speckle_dim < config.latent_dim - _offset_dim(config):
        raise ValueError(f"speckle_dim={config.speckle_dim} must be at least 0 and below "
                         f"latent_dim={config.latent_dim}" + (f" less the {OFFSET_DIM} values of the entry offset"
                                                             if config.entry_offset else ""))
    if config.threshold_gev < 0.0:
        raise ValueError(f"threshold_gev={config.threshold_gev} must not be negative")
    if config.speckle_cap < 0.0 or (config.speckle_cap > 0.0 and config.speckle_dim == 0):
        raise ValueError(f"speckle_cap={config.speckle_cap}: use 0 (an unbounded field) or a positive bound of a "
                         "speckle field (speckle_dim > 0)")
    if config.spline_placement and not config.speckle_after_shear:
        raise ValueError("spline_placement moves the mean logits and the spread by the quadratic B-spline: it needs "
                         "speckle_after_shear (and with it axis_shear and a speckle field)")
    if config.speckle_after_shear and not (config.axis_shear and config.speckle_dim):
        raise ValueError("speckle_after_shear orders the speckle field and the axis shear: it needs axis_shear and "
                         "a speckle field (speckle_dim > 0)")
    if config.kind == "conv2d":
        return ShapeGenerator2D(config)
    if config.kind == "conv3d":
        return ShapeGenerator3D(config)
    raise ValueError(f"shape generator kind {config.kind!r} is not one of 'conv2d', 'conv3d'")


def critic_input(showers_gev: torch.Tensor) -> torch.Tensor:
    """(B, X, Y, Z) GeV -> (B, Z, X, Y) ``log1p(cell / CELL_SCALE_GEV)``, the critic's view of a shower."""
    return torch.log1p(showers_gev.clamp(min=0.0) / CELL_SCALE_GEV).permute(0, 3, 1, 2)


def cells_from_view(view: torch.Tensor) -> torch.Tensor:
    """(B, Z, X, Y) critic view (:func:`critic_input`, float16 storage: ~1e-3 relative) -> (B, X, Y, Z) GeV."""
    return (torch.expm1(view.float()) * CELL_SCALE_GEV).permute(0, 2, 3, 1)


class ShapeCritic(nn.Module):
    """Hinge-loss critic with a projection of the conditions; input (B, Z, X, Y) from :func:`critic_input`."""

    def __init__(self, config: ShapeConfig, width: int = 24) -> None:
        super().__init__()
        nz = config.grid[2]
        self.features = nn.Sequential(
            spectral_norm(nn.Conv2d(nz, width, 3, stride=2, padding=1)), nn.LeakyReLU(0.2),  # (B, w, 26, 26)
            spectral_norm(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)), nn.LeakyReLU(0.2),  # 13 x 13
            spectral_norm(nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1)), nn.LeakyReLU(0.2),  # 7 x 7
            nn.AdaptiveAvgPool2d(3),
            nn.Flatten(),
            spectral_norm(nn.Linear(4 * width * 9, 256)), nn.LeakyReLU(0.2),
        )
        self.out = spectral_norm(nn.Linear(256, 1))
        self.embed = spectral_norm(nn.Linear(config.n_conditions, 256))

    def forward(self, image: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """(B,) critic scores: higher means more like the Monte Carlo."""
        h = self.features(image)  # (B, 256)
        return self.out(h)[:, 0] + (self.embed(conditions) * h).sum(1)


def config_json(config: ShapeConfig) -> dict[str, object]:
    """The generator's architecture as written into a model card."""
    return asdict(config)

"""The 3DGAN angle architecture (Khattak et al., "Fast Simulation of a High Granularity Calorimeter by
Generative Adversarial Networks", IEEE Access 2021; public Keras code ``AngleArch3dGAN.py``), in PyTorch.

Generator (1,365,047 parameters counted as Keras does, i.e. including batch-norm running statistics;
1,364,983 trainable): input 256 = [E/100, theta, 254 Gaussian]; Dense(5184) -> 8 channels on a 9x9x8 grid ->
nearest upsampling x6 (54x54x48) -> Conv3D 8 (6,6,8) valid (49x49x41) -> [pad (2,2,1) + Conv3D 6 (4,4,6)] x3
(50x50x38, 51x51x35, 52x52x32) -> pad (1,1,0) + Conv3D 6 (3,3,5) (52x52x28) -> pad (1,1,0) + Conv3D 6 (3,3,3)
(52x52x26) -> Conv3D 1 (2,2,2) (51x51x25). ReLU after every layer, batch norm (eps 1e-6) after the activation
of the first five convolutions.

``fast_upsample=True`` (or :meth:`Conv3dGenerator.use_fast_path`, which also switches to a channels-last
layout) computes "nearest upsampling x6 then Conv3D (6,6,8)" exactly as a convolution on the
coarse 9x9x8 grid with 6*6*6 phase-specific kernels followed by a 3D pixel shuffle. The weights (and the
state dict) are the same as the published layer; only the arithmetic order changes (equal to ~1e-5).

Discriminator: four Conv3D with kernel (5,6,6) on the (x, y, layer) axes (16, 8, 8, 8 filters), LeakyReLU,
dropout 0.2, batch norm (eps 1e-6) on layers 2-4; the first convolution uses Keras 'same' padding and the
other three 'valid', as the public code does; then AvgPool3D(2) and flatten (size computed from a dry run).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from calogen.gan.nets.layers import (
    DiscriminatorOutput,
    ShowerHeads,
    conditioning_input,
    same_padding_3d,
    set_weight_layout,
)
from calogen.gan.preprocess import DEFAULT_POWER, DEFAULT_SCALE

__all__ = ["Conv3dDiscriminator", "Conv3dFeatures", "Conv3dGenerator", "upsample_conv_as_pixel_shuffle"]

_BN_EPS = 1e-6  # Keras BatchNormalization(epsilon=1e-6) in the 3DGAN code
_UP = 6  # nearest-neighbour upsampling factor
_GRID = (9, 9, 8)  # coarse grid (x, y, layer) after the dense layer
_CHANNELS = 8


def _phase_matrix(kernel: int, factor: int) -> torch.Tensor:
    """M[r, j, k] = 1 if fine-grid tap k of an output at phase r reads coarse cell (offset j).

    An output at fine position o = factor * q + r reads upsampled cells o + k = coarse cell (r + k) // factor
    (relative to q), so the coarse kernel has (factor - 1 + kernel - 1) // factor + 1 taps.
    """
    taps = (factor - 1 + kernel - 1) // factor + 1
    m = torch.zeros(factor, taps, kernel)
    for r in range(factor):
        for k in range(kernel):
            m[r, (r + k) // factor, k] = 1.0
    return m


def upsample_conv_as_pixel_shuffle(
    coarse: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, factor: int
) -> torch.Tensor:
    """Exact rewrite of ``conv3d(upsample_nearest(coarse, factor), weight, bias)`` ('valid' padding).

    coarse: (B, Ci, X, Y, Z); weight: (Co, Ci, kx, ky, kz). The convolution is moved onto the coarse grid with
    factor**3 phase kernels (Co * factor**3 output channels), then a 3D pixel shuffle interleaves the phases
    and the result is cropped to the 'valid' size (factor * n - k + 1 per axis). Returns (B, Co, X', Y', Z').
    """
    co, ci, kx, ky, kz = weight.shape
    mx, my, mz = (_phase_matrix(k, factor).to(weight) for k in (kx, ky, kz))
    # W_eff[o, a, b, c, i, p, q, s] = sum_{x,y,z} Mx[a,p,x] My[b,q,y] Mz[c,s,z] W[o,i,x,y,z]
    w_eff = torch.einsum("apx,bqy,csz,oixyz->oabcipqs", mx, my, mz, weight)
    tx, ty, tz = mx.shape[1], my.shape[1], mz.shape[1]
    w_eff = w_eff.reshape(co * factor**3, ci, tx, ty, tz)
    b_eff = None if bias is None else bias.repeat_interleave(factor**3)
    # one zero cell at the far end lets the last phases read past the grid (their weights there are zero)
    padded = F.pad(coarse, (0, tz - 1, 0, ty - 1, 0, tx - 1))
    out = F.conv3d(padded, w_eff, b_eff)  # (B, Co*f^3, Qx, Qy, Qz)
    b, _, qx, qy, qz = out.shape
    out = out.view(b, co, factor, factor, factor, qx, qy, qz)
    out = out.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, co, qx * factor, qy * factor, qz * factor)
    nx, ny, nz = (factor * n - k + 1 for n, k in zip(coarse.shape[2:], (kx, ky, kz)))
    return out[:, :, :nx, :ny, :nz]  # (B, Co, X', Y', Z')


@dataclass(frozen=True)
class _ConvSpec:
    out_channels: int
    kernel: tuple[int, int, int]
    pad: tuple[int, int, int]  # symmetric zero padding (x, y, layer) applied before the convolution
    batch_norm: bool


# Khattak et al. 2021, AngleArch3dGAN.generator (layers after the first, upsampled convolution)
_GENERATOR_STACK = (
    _ConvSpec(6, (4, 4, 6), (2, 2, 1), True),
    _ConvSpec(6, (4, 4, 6), (2, 2, 1), True),
    _ConvSpec(6, (4, 4, 6), (2, 2, 1), True),
    _ConvSpec(6, (3, 3, 5), (1, 1, 0), True),
    _ConvSpec(6, (3, 3, 3), (1, 1, 0), False),
    _ConvSpec(1, (2, 2, 2), (0, 0, 0), False),
)


class Conv3dGenerator(nn.Module):
    """3DGAN angle generator: (energy_gev (B,), theta_rad (B,), noise (B, 254)) -> (B, 51, 51, 25) network units.

    Network units are (50 * E_cell / GeV) ** 0.85 (``calogen.gan.preprocess.to_network``).
    """

    def __init__(self, latent_dim: int = 254, fast_upsample: bool = False, final_activation: str = "relu") -> None:
        super().__init__()
        if final_activation not in ("relu", "linear"):
            raise ValueError(f"final_activation={final_activation!r} is unknown; use 'relu' or 'linear'")
        self.latent_dim = latent_dim
        self.fast_upsample = fast_upsample
        self.final_activation = final_activation
        gx, gy, gz = _GRID
        self.dense = nn.Linear(latent_dim + 2, _CHANNELS * gx * gy * gz)
        self.conv_up = nn.Conv3d(_CHANNELS, 8, (6, 6, 8))
        self.bn_up = nn.BatchNorm3d(8, eps=_BN_EPS)
        convs, norms = [], []
        in_ch = 8
        for spec in _GENERATOR_STACK:
            convs.append(nn.Conv3d(in_ch, spec.out_channels, spec.kernel))
            norms.append(nn.BatchNorm3d(spec.out_channels, eps=_BN_EPS) if spec.batch_norm else nn.Identity())
            in_ch = spec.out_channels
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)
        self._pads = [(s.pad[2], s.pad[2], s.pad[1], s.pad[1], s.pad[0], s.pad[0]) for s in _GENERATOR_STACK]
        self._channels_last = False
        self._keras_init()

    def use_fast_path(self, enabled: bool = True) -> Conv3dGenerator:
        """Switch the exact speed-ups on or off: the pixel-shuffle rewrite of the upsampled convolution and a
        channels-last (N, X, Y, Z, C) activation layout, which oneDNN convolves faster on CPUs. Weights and
        state-dict keys are unchanged; outputs agree to ~1e-5. Returns self."""
        self.fast_upsample = enabled
        self._channels_last = enabled
        set_weight_layout(self, torch.channels_last_3d if enabled else torch.contiguous_format)
        return self

    def _keras_init(self) -> None:
        """Initialise as the Keras code does: Dense glorot_uniform, Conv3D he_uniform, last Conv3D glorot_normal,
        zero biases (PyTorch's defaults shrink the activations layer after layer)."""
        nn.init.xavier_uniform_(self.dense.weight)
        nn.init.zeros_(self.dense.bias)
        for conv in [self.conv_up, *self.convs[:-1]]:
            nn.init.kaiming_uniform_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        last = self.convs[-1]
        assert isinstance(last, nn.Conv3d) and last.bias is not None
        nn.init.xavier_normal_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, energy_gev: torch.Tensor, theta_rad: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        h = self.dense(conditioning_input(energy_gev, theta_rad, noise))
        # Keras reshapes to (9, 9, 8, 8) channels-last; channels-first here (a fixed permutation of the
        # dense outputs, equivalent for training from scratch)
        h = h.view(-1, _CHANNELS, *_GRID)  # (B, 8, 9, 9, 8)
        if self._channels_last:
            h = h.contiguous(memory_format=torch.channels_last_3d)
        if self.fast_upsample:
            h = upsample_conv_as_pixel_shuffle(h, self.conv_up.weight, self.conv_up.bias, _UP)
            if self._channels_last:
                h = h.contiguous(memory_format=torch.channels_last_3d)  # the pixel shuffle returns a view
        else:
            h = F.interpolate(h, scale_factor=_UP, mode="nearest")  # (B, 8, 54, 54, 48)
            h = self.conv_up(h)  # (B, 8, 49, 49, 41)
        h = self.bn_up(F.relu(h))
        last = len(self.convs) - 1
        for i, (pad, conv, norm) in enumerate(zip(self._pads, self.convs, self.norms)):
            h = conv(F.pad(h, pad) if any(pad) else h)
            if i < last or self.final_activation == "relu":
                h = F.relu(h)
            h = norm(h)
        return h.squeeze(1).contiguous()  # (B, 51, 51, 25)


class Conv3dFeatures(nn.Module):
    """The 3DGAN discriminator body: (B, X, Y, Z) -> (B, n_features) flattened features.

    Four Conv3D (kernel (5,6,6) on x, y, layer; 16, 8, 8, 8 filters) with LeakyReLU (Keras default slope 0.3)
    and dropout; batch norm (eps 1e-6) after the activation of layers 2-4 when ``batch_norm``; the first
    convolution pads as Keras 'same' (the extra cell of the even kernel at the end), the others are 'valid';
    then AvgPool3D(2) and flatten. For 51x51x25: 51x51x25 -> 47x46x20 -> 43x41x15 -> 39x36x10 -> 19x18x5,
    13,680 features (computed by a dry run, never hard-coded).
    """

    def __init__(
        self,
        shape: tuple[int, int, int] = (51, 51, 25),
        *,
        filters: tuple[int, ...] = (16, 8, 8, 8),
        kernel: tuple[int, int, int] = (5, 6, 6),
        dropout: float = 0.2,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self._same_pad = same_padding_3d(kernel)
        layers: list[nn.Module] = []
        in_ch = 1
        for i, out_ch in enumerate(filters):
            block: list[nn.Module] = [nn.Conv3d(in_ch, out_ch, kernel), nn.LeakyReLU(0.3)]
            if batch_norm and i > 0:
                block.append(nn.BatchNorm3d(out_ch, eps=_BN_EPS))
            if dropout > 0:
                block.append(nn.Dropout(dropout))
            layers.append(nn.Sequential(*block))
            in_ch = out_ch
        self.blocks = nn.ModuleList(layers)
        self.pool = nn.AvgPool3d(2)
        with torch.no_grad():
            self.n_features = int(self.forward(torch.zeros(1, *self.shape)).shape[1])

    def forward(self, showers_net: torch.Tensor) -> torch.Tensor:
        h = showers_net.unsqueeze(1)  # (B, 1, X, Y, Z)
        for i, block in enumerate(self.blocks):
            h = block(F.pad(h, self._same_pad) if i == 0 else h)
        return self.pool(h).flatten(1)  # (B, F)


class Conv3dDiscriminator(nn.Module):
    """3DGAN angle discriminator: showers (B, 51, 51, 25) network units -> :class:`DiscriminatorOutput`."""

    def __init__(
        self,
        shape: tuple[int, int, int] = (51, 51, 25),
        *,
        filters: tuple[int, ...] = (16, 8, 8, 8),
        kernel: tuple[int, int, int] = (5, 6, 6),
        dropout: float = 0.2,
        power: float = DEFAULT_POWER,
        scale: float = DEFAULT_SCALE,
    ) -> None:
        super().__init__()
        self.features = Conv3dFeatures(shape, filters=filters, kernel=kernel, dropout=dropout, batch_norm=True)
        self.heads = ShowerHeads(self.features.n_features, power=power, scale=scale)

    def forward(self, showers_net: torch.Tensor, energy_gev: torch.Tensor, theta_rad: torch.Tensor,
                ) -> DiscriminatorOutput:
        """showers_net (B, 51, 51, 25) network units; the conditions (B,) are part of the one discriminator
        signature and not used: the 3DGAN discriminator sees only the image, the conditions enter through the
        losses of its energy and angle heads (Khattak et al. 2021)."""
        return self.heads(self.features(showers_net), showers_net)

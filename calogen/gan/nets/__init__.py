"""Network architectures, registered by name.

Every generator maps ``(energy_gev (B,), theta_rad (B,), noise (B, latent_dim))`` to showers
``(B, X, Y, Z)`` in network units (see ``calogen.gan.preprocess``) and has a ``latent_dim`` attribute. Nets only
map tensors: losses live in ``calogen.gan.objectives`` and the loop in ``calogen.gan.train``.

========================  ===========================================================================
name                      what
========================  ===========================================================================
``conv3d``                3DGAN angle generator/discriminator (Khattak et al., IEEE Access 2021)
``conv2d``                three permuted 2D-convolution paths (after Rehm et al. 2021)
``wgan-gp-lhcb``          conv3d body without batch norm in the critic; Box-Cox units (after Chekalina
                          et al. 2019)
``wgan-gp-atlas``         dense 3x128 generator ending in softmax x energy, linear critic (after ATLAS
                          FastCaloGAN); for small flat geometries
========================  ===========================================================================

Every architecture also names a condition regressor (showers -> energy, angle), which the ``wgan-gp`` recipe
pre-trains on the training showers and then uses, frozen, in the generator loss (Chekalina et al. 2019):
:class:`~calogen.gan.nets.wgan_gp.ConditionRegressor` (the 3DGAN convolution body) for the 51 x 51 x 25
architectures, :class:`~calogen.gan.nets.wgan_gp.DenseConditionRegressor` for ``wgan-gp-atlas``.

Every discriminator is called as ``discriminator(showers_net (B, X, Y, Z), energy_gev (B,), theta_rad (B,))`` and
returns a :class:`DiscriminatorOutput` (3DGAN heads) or a (B,) critic score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from calogen.gan.nets.conv2d import Conv2dDiscriminator, Conv2dGenerator
from calogen.gan.nets.conv3d import Conv3dDiscriminator, Conv3dGenerator
from calogen.gan.nets.layers import DiscriminatorOutput, measured_angle
from calogen.gan.nets.wgan_gp import (
    AtlasCritic,
    AtlasGenerator,
    ConditionRegressor,
    DenseConditionRegressor,
    LhcbCritic,
    LhcbGenerator,
)

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "DiscriminatorOutput",
    "build_discriminator",
    "build_generator",
    "build_regressor",
    "count_parameters",
    "measured_angle",
]


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: how to build its networks and what its discriminator returns."""

    name: str
    generator: Callable[..., nn.Module]
    discriminator: Callable[..., nn.Module]
    description: str
    # "heads": the discriminator returns DiscriminatorOutput (3DGAN objective);
    # "critic": it returns a (B,) Wasserstein score and takes the conditions (WGAN-GP objective)
    discriminator_kind: str = "heads"
    # the condition regressor of the wgan-gp recipe: showers (B, X, Y, Z) -> (energy_gev (B,), theta_rad (B,))
    regressor: Callable[..., nn.Module] = ConditionRegressor
    # units of the generator output, see calogen.gan.preprocess.from_network_card: "power" (3DGAN x**0.85),
    # "boxcox" (lambda fitted on the training data) or "identity" (GeV)
    preprocessing_kind: str = "power"


ARCHITECTURES: dict[str, Architecture] = {
    "conv3d": Architecture(
        "conv3d",
        Conv3dGenerator,
        Conv3dDiscriminator,
        "3DGAN angle GAN (Khattak et al. 2021), 1.365 M generator parameters",
    ),
    "conv2d": Architecture(
        "conv2d",
        Conv2dGenerator,
        Conv2dDiscriminator,
        "three permuted 2D-convolution paths (after Rehm et al. 2021), ~2 M parameters",
    ),
    "wgan-gp-lhcb": Architecture(
        "wgan-gp-lhcb",
        LhcbGenerator,
        LhcbCritic,
        "WGAN-GP, conv3d body, Box-Cox cells, pre-trained condition regressor (after Chekalina et al. 2019)",
        discriminator_kind="critic",
        preprocessing_kind="boxcox",
    ),
    "wgan-gp-atlas": Architecture(
        "wgan-gp-atlas",
        AtlasGenerator,
        AtlasCritic,
        "WGAN-GP, dense 3x128, softmax x energy, for small flat geometries (after ATLAS FastCaloGAN)",
        discriminator_kind="critic",
        regressor=DenseConditionRegressor,
        preprocessing_kind="identity",
    ),
}


def _lookup(arch: str) -> Architecture:
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"architecture {arch!r} is unknown; choose one of {known}") from None


def _build(factory: Callable[..., nn.Module], arch: str, role: str, config: dict[str, Any]) -> nn.Module:
    try:
        return factory(**config)
    except (TypeError, RuntimeError) as exc:  # unknown option; a geometry too small for the convolutions
        raise ValueError(f"cannot build the {role} of {arch!r} with config {config}: {exc}") from None


def build_generator(arch: str, **config: Any) -> nn.Module:
    """Generator of architecture ``arch`` built with keyword ``config`` (stored as a card's ``config``)."""
    return _build(_lookup(arch).generator, arch, "generator", config)


def build_discriminator(arch: str, **config: Any) -> nn.Module:
    """Discriminator (or WGAN critic) of architecture ``arch``."""
    return _build(_lookup(arch).discriminator, arch, "discriminator", config)


def build_regressor(arch: str, **config: Any) -> nn.Module:
    """Condition regressor of architecture ``arch``: showers (B, X, Y, Z) network units -> (energy_gev (B,),
    theta_rad (B,)); the ``wgan-gp`` recipe pre-trains it and keeps it frozen."""
    return _build(_lookup(arch).regressor, arch, "regressor", config)


def count_parameters(module: nn.Module, *, trainable_only: bool = False, include_buffers: bool = False) -> int:
    """Number of parameters; ``include_buffers=True`` adds batch-norm running statistics (as Keras counts)."""
    n = sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
    if include_buffers:
        n += sum(b.numel() for name, b in module.named_buffers() if not name.endswith("num_batches_tracked"))
    return n

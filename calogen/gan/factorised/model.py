"""A factorised generator: the energy flow's layer energies times a shape generator's normalised layers.

:class:`FactorisedGenerator` maps (energy GeV (B,), angle rad (B,), noise (B, 25 + latent)) to showers float32
(B, 51, 51, 25) in GeV, so a model folder loads and samples like every other calogen generator: the first 25
noise values are the flow's base draw, the rest the shape generator's latent vector. Sampling truncates the flow's
base draw (:meth:`FactorisedGenerator.truncate_noise`, :data:`calogen.gan.factorised.energy_flow.BASE_TRUNCATION`).
A model folder may also hold a fitted :class:`~calogen.gan.factorised.cell_map.CellEnergyMap` (card
``config["cell_map"]``), which :meth:`FactorisedGenerator.forward` applies to the product.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

import torch
from torch import nn

from calogen.gan.factorised.cell_map import CellEnergyMap, CellMapConfig
from calogen.gan.factorised.energy_flow import EnergyFlowConfig, LayerEnergyFlow, context_features, redraw_beyond
from calogen.gan.factorised.shape_nets import ShapeConfig, build_shape_generator

__all__ = ["FACTORISED_ARCHITECTURES", "FactorisedGenerator", "build_factorised", "shape_conditions"]

FACTORISED_ARCHITECTURES = {"factorised-conv2d": "conv2d", "factorised-conv3d": "conv3d"}
"""Architecture name in a card -> kind of shape generator."""


def shape_conditions(flow: LayerEnergyFlow, energy_gev: torch.Tensor, theta_rad: torch.Tensor,
                     layer_energy_gev: torch.Tensor) -> torch.Tensor:
    """float32 (B, 27): the shape generator's conditions from energy (B,), angle (B,) and layer energies (B, 25),
    GeV; the layer energies enter as the flow's standardised variables, so they have unit scale."""
    return torch.cat([context_features(energy_gev, theta_rad), flow.standardised(layer_energy_gev, energy_gev)], 1)


class FactorisedGenerator(nn.Module):
    """Energy flow + shape generator; ``forward(energy_gev, theta_rad, noise)`` -> (B, X, Y, Z) GeV."""

    def __init__(self, flow_config: EnergyFlowConfig, shape_config: ShapeConfig,
                 cell_map_config: CellMapConfig | None = None) -> None:
        super().__init__()
        self.energy_flow = LayerEnergyFlow(flow_config)
        self.shape = build_shape_generator(shape_config)
        self.shape_config = shape_config
        self.latent_dim = flow_config.n_layers + shape_config.latent_dim
        self.cell_map = CellEnergyMap(cell_map_config) if cell_map_config is not None else None

    def use_fast_path(self, enabled: bool = True) -> FactorisedGenerator:
        """Switch the shape generator's exact speed-ups on or off, where it has them (the Conv2D net's
        channels-last convolutions). Returns self."""
        use = getattr(self.shape, "use_fast_path", None)
        if callable(use):
            use(enabled)
        return self

    def use_bf16(self, enabled: bool = True) -> FactorisedGenerator:
        """Run the shape generator's network in bfloat16 (see
        :meth:`calogen.gan.factorised.shape_nets.ShapeGenerator.use_bf16`); the energy flow, and so every layer's
        energy, stays float32. Returns self."""
        self.shape.use_bf16(enabled)
        return self

    def showers(self, energy_gev: torch.Tensor, theta_rad: torch.Tensor, layer_energy_gev: torch.Tensor,
                latent: torch.Tensor) -> torch.Tensor:
        """(B, X, Y, Z) GeV: the shape generator's layers scaled to the given layer energies (B, 25), GeV."""
        conditions = shape_conditions(self.energy_flow, energy_gev, theta_rad, layer_energy_gev)
        return self.shape(latent, conditions, layer_energy_gev) * layer_energy_gev[:, None, None, :]

    def forward(self, energy_gev: torch.Tensor, theta_rad: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """energy_gev (B,), theta_rad (B,), noise (B, latent_dim) standard normal -> showers (B, X, Y, Z), GeV;
        with a cell map, its cells mapped onto the Monte Carlo's cell-energy distribution (layer energies kept)."""
        energy_gev, theta_rad = energy_gev.float(), theta_rad.float()
        n_layers = self.energy_flow.config.n_layers
        layers = self.energy_flow.from_base(energy_gev, theta_rad, noise[:, :n_layers])
        showers = self.showers(energy_gev, theta_rad, layers, noise[:, n_layers:])
        return showers if self.cell_map is None else self.cell_map(showers, energy_gev, theta_rad)

    def attach_cell_map(self, cell_map: CellEnergyMap | None) -> FactorisedGenerator:
        """Use ``cell_map`` (fitted to this generator's showers) from now on, or none; returns self."""
        self.cell_map = cell_map
        return self

    def truncate_noise(self, noise: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """noise (B, latent_dim), standard normal on the CPU, with the flow's base values (the first 25) beyond
        :data:`~calogen.gan.factorised.energy_flow.BASE_TRUNCATION` drawn again from ``generator``; the shape
        generator's latent values are kept. Samplers call it before :meth:`forward`."""
        out = noise.clone()
        n_layers = self.energy_flow.config.n_layers
        out[:, :n_layers] = redraw_beyond(noise[:, :n_layers], generator)
        return out

    def config_json(self) -> dict[str, Any]:
        """The card's ``config`` entry, from which :func:`build_factorised` rebuilds the module."""
        shape = asdict(self.shape_config)
        shape["grid"], shape["channels"] = list(shape["grid"]), list(shape["channels"])
        out: dict[str, Any] = {"energy_flow": asdict(self.energy_flow.config), "shape": shape}
        if self.cell_map is not None:
            out["cell_map"] = self.cell_map.config.to_json()
        return out


def build_factorised(arch: str, config: dict[str, Any] | None = None) -> FactorisedGenerator:
    """The generator of a card: ``arch`` one of :data:`FACTORISED_ARCHITECTURES`, ``config`` its ``config``."""
    if arch not in FACTORISED_ARCHITECTURES:
        raise ValueError(f"{arch!r} is not a factorised architecture ({', '.join(FACTORISED_ARCHITECTURES)})")
    kind: Literal["conv2d", "conv3d"] = "conv3d" if FACTORISED_ARCHITECTURES[arch] == "conv3d" else "conv2d"
    config = config or {}
    flow_config = EnergyFlowConfig(**config.get("energy_flow", {}))
    shape = dict(config.get("shape", {}))
    for key in ("grid", "channels"):
        if key in shape:
            shape[key] = tuple(shape[key])
    shape["kind"] = kind
    cell_map = config.get("cell_map")
    return FactorisedGenerator(flow_config, ShapeConfig(**shape),
                               CellMapConfig.from_json(cell_map) if cell_map is not None else None)

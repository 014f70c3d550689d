"""Export a generator for use outside Python: ONNX (for Geant4 fast-simulation hooks via ONNX Runtime, as the
Geant4 ``Par04`` example loads its model) and TorchScript (for LibTorch).

The exported graph takes

* ``energy_gev`` float32 (B,): primary energy, GeV;
* ``theta_rad``  float32 (B,): polar angle, radians (pi/2 = normal incidence);
* ``noise``      float32 (B, latent_dim): standard-normal latent vector;

and returns ``showers`` float32 (B, X, Y, Z) in **GeV** (the inverse pre-processing of the card is part of
the graph). The batch dimension is dynamic. The caller draws the noise, so the C++ side controls seeding. For a
factorised generator the first 25 noise values are its energy flow's base draw, which calogen's own sampler
truncates at +-3.5 (a value beyond is drawn again; ``calogen.gan.factorised.energy_flow.BASE_TRUNCATION``): the
ONNX metadata entry ``noise_truncation`` says so, and a caller should do the same.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any, Literal, cast

import torch
from torch import nn

from calogen.gan.generate import LoadedGenerator, load_generator
from calogen.gan.nets.conv3d import Conv3dGenerator
from calogen.gan.preprocess import from_network_card
from calogen.io import atomic_write

__all__ = ["INPUT_NAMES", "OUTPUT_NAME", "GevGenerator", "export_model", "export_onnx", "export_torchscript"]

INPUT_NAMES = ("energy_gev", "theta_rad", "noise")
OUTPUT_NAME = "showers"
DEFAULT_OPSET = 17


class GevGenerator(nn.Module):
    """A generator followed by the inverse pre-processing: (B,), (B,), (B, L) -> (B, X, Y, Z) GeV."""

    def __init__(self, generator: nn.Module, preprocessing: dict[str, Any] | None) -> None:
        super().__init__()
        self.generator = generator.eval()
        self.preprocessing = dict(preprocessing or {})
        self.latent_dim = int(cast(int, generator.latent_dim))  # every calogen generator has one

    def forward(self, energy_gev: torch.Tensor, theta_rad: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return from_network_card(self.generator(energy_gev, theta_rad, noise), self.preprocessing)


def _example_inputs(latent_dim: int, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return (
        torch.tensor([50.0, 200.0] * (batch // 2) + [100.0] * (batch % 2)),
        torch.full((batch,), 1.5),
        torch.randn(batch, latent_dim, generator=gen),
    )


def _export_copy(model: LoadedGenerator) -> GevGenerator:
    """A CPU copy of the generator in the default memory layout (the exporters cannot express a
    channels-last hint; ONNX Runtime chooses its own layout), wrapped with the inverse pre-processing."""
    module = copy.deepcopy(model.module).to("cpu").eval()
    if isinstance(module, Conv3dGenerator):
        module.use_fast_path(False)  # the published form: outputs agree with the fast path to ~1e-5
    return GevGenerator(module, model.preprocessing).eval()


def export_onnx(model: LoadedGenerator, out: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model`` as an ONNX graph (inputs energy_gev, theta_rad, noise; output showers in GeV).

    Uses the TorchScript-based exporter (``dynamo=False``), which needs no extra packages.
    """
    wrapper = _export_copy(model)

    def write(tmp: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer / deprecation chatter of the legacy exporter
            torch.onnx.export(
                wrapper,
                _example_inputs(wrapper.latent_dim),
                str(tmp),
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_axes={name: {0: "batch"} for name in (*INPUT_NAMES, OUTPUT_NAME)},
                opset_version=opset,
                dynamo=False,
            )
        _annotate_onnx(tmp, model)

    return atomic_write(out, write)


def _annotate_onnx(path: Path, model: LoadedGenerator) -> None:
    """Record the model name, architecture, latent size and units as ONNX metadata."""
    import json

    import onnx

    proto = onnx.load(str(path))
    meta = {
        "calogen_model": model.name,
        "calogen_arch": model.arch,
        "latent_dim": str(model.latent_dim),
        "units": "energy_gev: GeV; theta_rad: radians; noise: N(0,1); showers: GeV (B, X, Y, Z)",
        "condition_range": json.dumps(model.condition_range.to_json()),  # GeV, radians
    }
    from calogen.gan.factorised.model import FactorisedGenerator

    if isinstance(model.module, FactorisedGenerator):
        from calogen.gan.factorised.energy_flow import BASE_TRUNCATION

        n_flow = model.module.energy_flow.config.n_layers
        meta["noise_truncation"] = (f"noise[:, :{n_flow}] is the energy flow's base draw: N(0,1) truncated at "
                                    f"+-{BASE_TRUNCATION:g} (draw a value beyond again)")
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def export_torchscript(model: LoadedGenerator, out: str | os.PathLike[str]) -> Path:
    """Write ``model`` as a traced TorchScript module with the same inputs and output as the ONNX graph."""
    wrapper = _export_copy(model)

    def write(tmp: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(wrapper, _example_inputs(wrapper.latent_dim), check_trace=False)
            torch.jit.save(traced, str(tmp))

    return atomic_write(out, write)


def export_model(
    name_or_path: str | os.PathLike[str],
    fmt: Literal["onnx", "torchscript"],
    out: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Load a model by name or folder and export it in ``fmt``; returns the written file."""
    if fmt not in ("onnx", "torchscript"):
        raise ValueError(f"export format {fmt!r} is unknown; use 'onnx' or 'torchscript'")
    model = load_generator(name_or_path, device="cpu")
    if fmt == "onnx":
        return export_onnx(model, out, opset=opset)
    return export_torchscript(model, out)

"""Saving, finding, loading and sampling trained generators.

A model is a folder ``models/<name>/`` holding

* ``generator.safetensors`` — the generator's state dict (weights and batch-norm statistics); never pickles;
* ``card.json`` — ``name``, ``arch`` (a key of ``calogen.gan.nets.ARCHITECTURES``), ``config`` (keyword arguments of
  ``build_generator``), ``condition_ranges`` ``{"energy_gev": [lo, hi], "theta_deg": [lo, hi]}``,
  ``preprocessing`` (``{"kind": "power", "power": 0.85, "scale": 50.0}`` by default, see
  ``calogen.gan.preprocess.from_network_card``), ``training`` and ``validation`` records.

The models folder is ``<repository root>/models`` (the folder next to the ``calogen`` package), unless the
environment variable ``CALOGEN_MODELS`` names another one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

import calogen
from calogen.io import ShowerSet, atomic_write
from calogen.gan.nets import ARCHITECTURES, build_generator
from calogen.gan.preprocess import DEFAULT_POWER, DEFAULT_SCALE, from_network_card

__all__ = [
    "CARD_FILE",
    "WEIGHTS_FILE",
    "LoadedGenerator",
    "ModelLoadError",
    "list_models",
    "load_generator",
    "models_root",
    "resolve_model_dir",
    "save_model",
]

CARD_FILE = "card.json"
WEIGHTS_FILE = "generator.safetensors"
_DEFAULT_PREPROCESSING = {"kind": "power", "power": DEFAULT_POWER, "scale": DEFAULT_SCALE}
_DEFAULT_BATCH = 256


class ModelLoadError(ValueError):
    """A model folder cannot be used: missing files, an unreadable card, or weights that do not fit the
    architecture the card names. The message says which file or tensor and what to do."""


def models_root() -> Path:
    """The folder holding installed models: ``$CALOGEN_MODELS`` or ``<repository root>/models``."""
    env = os.environ.get("CALOGEN_MODELS")
    if env:
        return Path(env)
    return Path(calogen.__file__).resolve().parent.parent / "models"


def _state_dict_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def _check_tensors(
    expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], *, arch: str, source: str
) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshaped = [
        f"{k} (file {tuple(found[k].shape)}, architecture {tuple(expected[k].shape)})"
        for k in sorted(set(expected) & set(found))
        if tuple(found[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append("missing tensors: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected tensors: " + ", ".join(unexpected))
    if misshaped:
        problems.append("mis-shaped tensors: " + "; ".join(misshaped))
    if problems:
        raise ModelLoadError(
            f"{source} does not fit architecture {arch!r} as configured by the card: {'. '.join(problems)}. "
            "Check that card.json names the architecture and config the weights were trained with."
        )


def save_model(model_dir: str | os.PathLike[str], generator: nn.Module, card: dict[str, Any]) -> Path:
    """Write ``generator.safetensors`` and ``card.json`` into ``model_dir`` (created if needed); returns it.

    card: at least ``name``, ``arch`` and ``config``; ``condition_ranges`` is strongly advised (generation
    refuses conditions outside it). ``preprocessing`` defaults to the 3DGAN power transform and
    ``calogen_version`` to the running version. The weights are checked against ``build_generator(arch,
    **config)`` before anything is written, so a saved model always loads.
    """
    for key in ("name", "arch", "config"):
        if key not in card:
            raise ValueError(f"card has no {key!r}; a model card needs 'name', 'arch' and 'config'")
    if card["arch"] not in ARCHITECTURES:
        raise ValueError(f"card arch {card['arch']!r} is unknown; choose one of {', '.join(sorted(ARCHITECTURES))}")
    tensors = _state_dict_tensors(generator)
    reference = build_generator(card["arch"], **card["config"])
    _check_tensors(dict(reference.state_dict()), tensors, arch=card["arch"], source="the generator being saved")
    full_card = {"preprocessing": _card_preprocessing(card), "calogen_version": calogen.__version__, **card}
    text = json.dumps(full_card, indent=2, sort_keys=False, default=_json_default) + "\n"
    folder = Path(model_dir)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / WEIGHTS_FILE, lambda p: save_file(tensors, str(p), metadata={"arch": str(card["arch"])}))
    atomic_write(folder / CARD_FILE, lambda p: p.write_text(text, encoding="utf-8"))
    return folder


def _card_preprocessing(card: dict[str, Any]) -> dict[str, Any]:
    """The card's preprocessing, defaulted from the architecture and checked against it."""
    kind = ARCHITECTURES[card["arch"]].preprocessing_kind
    given = card.get("preprocessing")
    if given is None:
        if kind == "power":
            return dict(_DEFAULT_PREPROCESSING)
        if kind == "identity":
            return {"kind": "identity"}
        raise ValueError(
            f"architecture {card['arch']!r} works in Box-Cox units; give the card a preprocessing entry such as "
            "calogen.gan.preprocess.fit_boxcox(training_showers).to_card()"
        )
    if given.get("kind", "power") != kind:
        raise ValueError(
            f"card preprocessing kind {given.get('kind', 'power')!r} does not match architecture {card['arch']!r}, "
            f"whose generator outputs {kind!r} units"
        )
    return dict(given)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return list(np.asarray(value).tolist())
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"card value {value!r} of type {type(value).__name__} is not JSON-able")


def resolve_model_dir(
    name_or_path: str | os.PathLike[str], *, models_dir: str | os.PathLike[str] | None = None
) -> Path:
    """The folder of a model given its name (under the models folder) or a path to the folder or a file in it."""
    path = Path(name_or_path)
    if path.is_file() and path.name in (CARD_FILE, WEIGHTS_FILE):
        path = path.parent
    if path.is_dir() and (path / CARD_FILE).exists():
        return path
    root = Path(models_dir) if models_dir is not None else models_root()
    candidate = root / str(name_or_path)
    if candidate.is_dir() and (candidate / CARD_FILE).exists():
        return candidate
    if path.is_dir():
        raise ModelLoadError(f"{path} has no {CARD_FILE}; a model folder holds {CARD_FILE} and {WEIGHTS_FILE}")
    installed = [m["name"] for m in list_models(root) if "error" not in m]
    hint = f"installed models: {', '.join(installed)}" if installed else f"no models are installed in {root}"
    raise ModelLoadError(f"model {str(name_or_path)!r} not found (neither a folder nor a name under {root}); {hint}")


def _read_card(folder: Path) -> dict[str, Any]:
    path = folder / CARD_FILE
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing; a model folder holds {CARD_FILE} and {WEIGHTS_FILE}") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc}); restore it from the training run") from None
    if not isinstance(card, dict):
        raise ModelLoadError(f"{path} holds a {type(card).__name__}, not a JSON object")
    for key in ("arch", "config"):
        if key not in card:
            raise ModelLoadError(f"{path} has no {key!r} entry; the card must name the architecture and its config")
    if card["arch"] not in ARCHITECTURES:
        raise ModelLoadError(
            f"{path} names architecture {card['arch']!r}, which this calogen does not know "
            f"({', '.join(sorted(ARCHITECTURES))})"
        )
    card.setdefault("name", folder.name)
    return card


@dataclass(frozen=True)
class _Range:
    name: str
    unit: str
    lo: float
    hi: float

    def check(self, values: npt.NDArray[np.float64]) -> None:
        bad = values[(values < self.lo - 1e-9 * abs(self.lo)) | (values > self.hi + 1e-9 * abs(self.hi))]
        if bad.size:
            worst = float(bad[np.argmax(np.abs(bad - 0.5 * (self.lo + self.hi)))])
            raise ValueError(
                f"{self.name}={worst:.1f} {self.unit} is outside {self.lo:g}-{self.hi:g} {self.unit}, the range this "
                "model was trained on; pass allow_extrapolation=True to go beyond"
            )


class LoadedGenerator:
    """A generator with its card, ready to sample showers in GeV.

    Attributes: ``name``, ``path`` (model folder), ``card`` (dict), ``arch``, ``module`` (the torch generator in
    eval mode), ``device``.
    """

    def __init__(
        self, module: nn.Module, card: dict[str, Any], *, path: Path | None = None, device: str | torch.device = "cpu"
    ) -> None:
        self.module = module.eval()
        self.card = card
        self.name = str(card.get("name", path.name if path else "model"))
        self.arch = str(card["arch"])
        self.path = path
        self.device = torch.device(device)
        self.latent_dim = int(getattr(module, "latent_dim"))
        self.preprocessing = dict(card.get("preprocessing") or _DEFAULT_PREPROCESSING)

    def __repr__(self) -> str:
        return f"LoadedGenerator(name={self.name!r}, arch={self.arch!r}, device={str(self.device)!r})"

    def _ranges(self) -> list[_Range]:
        ranges = self.card.get("condition_ranges") or {}
        out = []
        if "energy_gev" in ranges:
            lo, hi = ranges["energy_gev"]
            out.append(_Range("energy", "GeV", float(lo), float(hi)))
        if "theta_deg" in ranges:
            lo, hi = ranges["theta_deg"]
            out.append(_Range("theta", "deg", float(lo), float(hi)))
        return out

    def check_conditions(self, energy_gev: npt.ArrayLike, theta_rad: npt.ArrayLike) -> None:
        """Raise ValueError if any condition lies outside the card's ``condition_ranges``."""
        energy = np.asarray(energy_gev, dtype=np.float64).reshape(-1)
        theta_deg = np.rad2deg(np.asarray(theta_rad, dtype=np.float64).reshape(-1))
        for r in self._ranges():
            r.check(energy if r.name == "energy" else theta_deg)

    def generate(
        self,
        energy_gev: float | npt.ArrayLike,
        theta_rad: float | npt.ArrayLike,
        n: int | None = None,
        *,
        seed: int | None = None,
        allow_extrapolation: bool = False,
        batch_size: int = _DEFAULT_BATCH,
        progress: Callable[[int, int], None] | None = None,
    ) -> ShowerSet:
        """Sample showers.

        energy_gev: GeV, a number or an array (n,); theta_rad: radians, a number or an array (n,). Scalars are
        repeated ``n`` times (n defaults to 1 then); arrays fix n. The noise is drawn on the CPU from a
        ``torch.Generator`` seeded with ``seed``, so a seed gives the same noise on every device and batch size.
        Returns a ShowerSet with showers float32 (N, X, Y, Z) in GeV and attrs source=<model name>.
        Raises ValueError for conditions outside the card's ``condition_ranges`` unless ``allow_extrapolation``.
        """
        energy, theta = _broadcast_conditions(energy_gev, theta_rad, n)
        if not np.all(np.isfinite(energy)) or np.any(energy <= 0):
            raise ValueError(
                f"energy_gev must be finite and > 0 GeV; got values from {energy.min():g} to {energy.max():g}"
            )
        if not np.all(np.isfinite(theta)):
            raise ValueError("theta_rad must be finite (radians, pi/2 = normal incidence)")
        if not allow_extrapolation:
            self.check_conditions(energy, theta)
        if batch_size <= 0:
            raise ValueError(f"batch_size={batch_size} must be a positive integer")
        total = energy.shape[0]
        cpu_gen = torch.Generator(device="cpu")
        if seed is None:
            cpu_gen.seed()
        else:
            cpu_gen.manual_seed(int(seed))
        noise = torch.randn((total, self.latent_dim), generator=cpu_gen, dtype=torch.float32)
        e_all = torch.from_numpy(energy.astype(np.float32))
        t_all = torch.from_numpy(theta.astype(np.float32))
        chunks: list[np.ndarray] = []
        self.module.eval()
        with torch.inference_mode():
            for start in range(0, total, batch_size):
                stop = min(start + batch_size, total)
                batch = (e_all[start:stop], t_all[start:stop], noise[start:stop])
                out = self.module(*(x.to(self.device) for x in batch))
                gev = from_network_card(out.float(), self.preprocessing)
                chunks.append(gev.to("cpu").numpy().astype(np.float32, copy=False))
                if progress is not None:
                    progress(stop, total)
        showers = np.concatenate(chunks) if chunks else np.zeros((0, *self._shape()), np.float32)
        attrs = {
            "source": self.name,
            "model": self.name,
            "arch": self.arch,
            "particle": self.card.get("particle", "e-"),
            "detector": self.card.get("detector", "clic_ecal"),
            "seed": -1 if seed is None else int(seed),
            "calogen_version": calogen.__version__,
            "extrapolated": bool(allow_extrapolation),
        }
        return ShowerSet(showers, energy.astype(np.float32), theta.astype(np.float32), attrs)

    def _shape(self) -> tuple[int, ...]:
        with torch.inference_mode():
            energy = torch.full((1,), 100.0, device=self.device)
            theta = torch.full((1,), math.pi / 2, device=self.device)
            out = self.module(energy, theta, torch.zeros(1, self.latent_dim, device=self.device))
        return tuple(out.shape[1:])


def _broadcast_conditions(
    energy_gev: float | npt.ArrayLike, theta_rad: float | npt.ArrayLike, n: int | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    energy = np.asarray(energy_gev, dtype=np.float64)
    theta = np.asarray(theta_rad, dtype=np.float64)
    sizes = {a.size for a in (energy, theta) if a.ndim > 0}
    if len(sizes) > 1:
        raise ValueError(f"energy_gev and theta_rad arrays have different lengths {sorted(sizes)}; give equal lengths")
    if sizes:
        length = sizes.pop()
        if n is not None and n != length:
            raise ValueError(f"n={n} but the condition arrays hold {length} values; leave n out or match it")
    else:
        length = 1 if n is None else int(n)
    if length < 0 or (n is not None and n < 0):
        raise ValueError(f"n={n} must be >= 0")
    return (np.broadcast_to(energy.reshape(-1) if energy.ndim else energy, (length,)).copy(),
            np.broadcast_to(theta.reshape(-1) if theta.ndim else theta, (length,)).copy())


def load_generator(
    name_or_path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    models_dir: str | os.PathLike[str] | None = None,
    fast: bool = False,
) -> LoadedGenerator:
    """Load a model by name (under :func:`models_root` or ``models_dir``) or by folder path.

    fast: switch on the generator's exact speed-ups where it has them (``use_fast_path``: conv3d's
    pixel-shuffle rewrite and channels-last layout; outputs agree with the published form to ~1e-5).

    Builds ``card["arch"]`` with ``card["config"]``, reads ``generator.safetensors`` (safetensors only, never a
    pickle) and checks every tensor's name and shape; raises :class:`ModelLoadError` naming the missing,
    unexpected or mis-shaped tensors and the architecture.
    """
    folder = resolve_model_dir(name_or_path, models_dir=models_dir)
    card = _read_card(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.exists():
        pickles = sorted(p.name for p in folder.glob("*.pt*"))
        extra = f" ({', '.join(pickles)} found, but pickled checkpoints are never loaded)" if pickles else ""
        raise ModelLoadError(f"{weights} is missing{extra}; save models with calogen.gan.generate.save_model")
    try:
        module = build_generator(card["arch"], **card["config"])
    except (ValueError, TypeError) as exc:
        raise ModelLoadError(f"{folder / CARD_FILE}: cannot build architecture {card['arch']!r}: {exc}") from None
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"{weights} is not a readable safetensors file ({exc})") from None
    expected = module.state_dict()
    _check_tensors(dict(expected), tensors, arch=card["arch"], source=str(weights))
    module.load_state_dict(tensors, strict=True)
    dev = torch.device(device)
    module.to(dev).eval()
    if fast and hasattr(module, "use_fast_path"):
        module.use_fast_path(True)
    return LoadedGenerator(module, card, path=folder, device=dev)


def _validation_summary(validation: Any) -> dict[str, Any]:
    """The scalar entries of a card's validation record (nested dicts flattened one level)."""
    if not isinstance(validation, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in validation.items():
        if isinstance(value, (int, float, str, bool)):
            out[key] = value
        elif isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, (int, float, str, bool)):
                    out[f"{key}.{sub}"] = v
    return out


def list_models(models_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Summaries of the models installed in ``models_dir`` (default :func:`models_root`), sorted by name.

    Each entry: name, arch, path, condition_ranges, validation (scalar figures), description; a folder whose
    card cannot be read gives name, path and ``error``.
    """
    root = Path(models_dir) if models_dir is not None else models_root()
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / CARD_FILE).exists()):
        try:
            card = _read_card(folder)
        except ModelLoadError as exc:
            out.append({"name": folder.name, "path": str(folder), "error": str(exc)})
            continue
        out.append(
            {
                "name": str(card.get("name", folder.name)),
                "arch": card["arch"],
                "path": str(folder),
                "condition_ranges": card.get("condition_ranges", {}),
                "validation": _validation_summary(card.get("validation")),
                "description": str(card.get("description", "")),
                "has_weights": (folder / WEIGHTS_FILE).exists(),
            }
        )
    return out

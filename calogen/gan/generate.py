"""Saving, finding, loading and sampling trained generators.

A model is a folder ``models/<name>/`` holding

* ``generator.safetensors`` — the generator's state dict (weights and batch-norm statistics); never pickles;
* ``card.json`` — ``name``, ``arch`` (a key of ``calogen.gan.nets.ARCHITECTURES``), ``config`` (keyword arguments of
  ``build_generator``), ``condition_range`` (:meth:`calogen.showers.ConditionRange.to_json`:
  ``{"energy_gev": [lo, hi], "theta_rad": [lo, hi]}``), ``preprocessing`` (``{"kind": "power", "power": 0.85,
  "scale": 50.0}`` by default, see ``calogen.gan.preprocess.from_network_card``), ``training`` and ``validation``
  records. Older cards hold ``condition_ranges`` in GeV and degrees, or no range; :func:`card_condition_range`
  reads them.

A loaded model (:class:`LoadedGenerator`) is a :class:`calogen.showers.Source`. The models folder is
:func:`calogen.paths.models_dir` (``$CALOGEN_MODELS`` or ``<repository root>/models``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from calogen.gan.factorised.model import FACTORISED_ARCHITECTURES, build_factorised
from calogen.gan.nets import ARCHITECTURES, build_generator
from calogen.gan.preprocess import DEFAULT_POWER, DEFAULT_SCALE, from_network_card
from calogen.io import atomic_write
from calogen.memory import keep_freed_memory
from calogen.paths import models_dir as default_models_dir
from calogen.showers import TRAINING_RANGE, ConditionRange, Conditions, OutOfRangeError, Progress, ShowerSet
from calogen.version import __version__

__all__ = [
    "CARD_FILE",
    "WEIGHTS_FILE",
    "LoadedGenerator",
    "ModelLoadError",
    "card_condition_range",
    "list_models",
    "load_generator",
    "resolve_model_dir",
    "save_model",
]

CARD_FILE = "card.json"
WEIGHTS_FILE = "generator.safetensors"
_DEFAULT_PREPROCESSING = {"kind": "power", "power": DEFAULT_POWER, "scale": DEFAULT_SCALE}
_DEFAULT_BATCH = 256  # showers per forward pass on a GPU
_CPU_BATCH = 64  # and on a CPU, where a batch's tensors then stay in the caches: a factorised conv2d shower costs
# half as much as in batches of 256 (2.9 against 6.0 ms on two cores, the sizes alternating in one run)


class ModelLoadError(ValueError):
    """A model folder cannot be used: missing files, an unreadable card, or weights that do not fit the
    architecture the card names. The message says which file or tensor and what to do."""


def card_condition_range(card: Mapping[str, Any]) -> ConditionRange:
    """The condition range a model card declares (GeV, radians).

    A card holds ``condition_range`` as written by :meth:`ConditionRange.to_json`. Older cards hold
    ``condition_ranges`` with ``energy_gev`` in GeV and ``theta_deg`` in degrees; they are interpreted here,
    once, when the card is read. An interval a card does not give is that of :data:`calogen.showers.TRAINING_RANGE`
    (2-500 GeV, 60-120 deg), the domain calogen's generators are trained on. Raises ValueError for a malformed
    entry.
    """
    if "condition_range" in card:
        return ConditionRange.from_json(dict(card["condition_range"]))
    legacy = card.get("condition_ranges") or {}
    try:
        energy = tuple(float(v) for v in legacy.get("energy_gev", TRAINING_RANGE.energy_gev))
        theta = (tuple(math.radians(float(v)) for v in legacy["theta_deg"]) if "theta_deg" in legacy
                 else TRAINING_RANGE.theta_rad)
        return ConditionRange((energy[0], energy[1]), (theta[0], theta[1]))
    except (AttributeError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"not a condition range: {legacy!r} ({exc})") from None


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

    card: at least ``name``, ``arch`` and ``config``; ``condition_range`` (:meth:`ConditionRange.to_json`) is
    strongly advised: generation refuses conditions outside it (:data:`calogen.showers.TRAINING_RANGE` when
    absent). ``preprocessing`` defaults to the 3DGAN power transform and ``calogen_version`` to the running
    version. The weights are checked against ``build_generator(arch, **config)`` before anything is written, so a
    saved model always loads.
    """
    for key in ("name", "arch", "config"):
        if key not in card:
            raise ValueError(f"card has no {key!r}; a model card needs 'name', 'arch' and 'config'")
    if card["arch"] not in _KNOWN_ARCHITECTURES:
        raise ValueError(f"card arch {card['arch']!r} is unknown; choose one of {', '.join(_KNOWN_ARCHITECTURES)}")
    tensors = _state_dict_tensors(generator)
    reference = _build(card["arch"], card["config"])
    _check_tensors(dict(reference.state_dict()), tensors, arch=card["arch"], source="the generator being saved")
    full_card = {"preprocessing": _card_preprocessing(card), "calogen_version": __version__, **card}
    text = json.dumps(full_card, indent=2, sort_keys=False, default=_json_default) + "\n"
    folder = Path(model_dir)
    folder.mkdir(parents=True, exist_ok=True)
    def write_card(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(folder / WEIGHTS_FILE, lambda p: save_file(tensors, str(p), metadata={"arch": str(card["arch"])}))
    atomic_write(folder / CARD_FILE, write_card)
    return folder


_KNOWN_ARCHITECTURES = sorted([*ARCHITECTURES, *FACTORISED_ARCHITECTURES])


def _build(arch: str, config: dict[str, Any]) -> nn.Module:
    """The generator module of a card: a factorised generator (energy flow x shape GAN) or a registered GAN."""
    if arch in FACTORISED_ARCHITECTURES:
        return build_factorised(arch, config)
    return build_generator(arch, **config)


def _card_preprocessing(card: dict[str, Any]) -> dict[str, Any]:
    """The card's preprocessing, defaulted from the architecture and checked against it."""
    kind = "identity" if card["arch"] in FACTORISED_ARCHITECTURES else ARCHITECTURES[card["arch"]].preprocessing_kind
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
    root = Path(models_dir) if models_dir is not None else default_models_dir()
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
    if card["arch"] not in _KNOWN_ARCHITECTURES:
        raise ModelLoadError(
            f"{path} names architecture {card['arch']!r}, which this calogen does not know "
            f"({', '.join(_KNOWN_ARCHITECTURES)})"
        )
    card.setdefault("name", folder.name)
    try:
        card_condition_range(card)
    except ValueError as exc:
        raise ModelLoadError(f"{path}: {exc}; write it as ConditionRange.to_json() gives it") from None
    return card


class LoadedGenerator:
    """A generator with its card, ready to sample showers in GeV: a :class:`calogen.showers.Source`.

    Attributes: ``name``, ``path`` (model folder), ``card`` (dict), ``arch``, ``module`` (the torch generator in
    eval mode), ``device``, ``condition_range`` (the card's, see :func:`card_condition_range`), ``batch_size``
    (showers per forward pass in :meth:`sample`: 64 on a CPU, 256 on a GPU).
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
        self.latent_dim = int(cast(int, module.latent_dim))  # every calogen generator has one (calogen.gan.nets)
        self.preprocessing = dict(card.get("preprocessing") or _DEFAULT_PREPROCESSING)
        self.condition_range = card_condition_range(card)
        self.batch_size = _CPU_BATCH if self.device.type == "cpu" else _DEFAULT_BATCH

    def __repr__(self) -> str:
        return f"LoadedGenerator(name={self.name!r}, arch={self.arch!r}, device={str(self.device)!r})"

    def sample(self, conditions: Conditions, seed: int | None = None, progress: Progress | None = None) -> ShowerSet:
        """One shower per condition, float32 (n, X, Y, Z) GeV; raises :class:`calogen.showers.OutOfRangeError`
        for conditions outside :attr:`condition_range`. The noise comes from a CPU ``torch.Generator`` seeded
        with ``seed``, so a seed gives the same showers on every device."""
        self.condition_range.check(conditions, f"model {self.name}")
        return self._draw(conditions, seed=seed, batch_size=self.batch_size, progress=progress, extrapolated=False)

    def generate(
        self,
        energy_gev: float | npt.ArrayLike,
        theta_rad: float | npt.ArrayLike,
        n: int | None = None,
        *,
        seed: int | None = None,
        allow_extrapolation: bool = False,
        batch_size: int | None = None,
        progress: Progress | None = None,
    ) -> ShowerSet:
        """Sample showers from numbers or arrays.

        energy_gev: GeV, a number or an array (n,); theta_rad: radians, a number or an array (n,), broadcast by
        :meth:`calogen.showers.Conditions.broadcast` (n defaults to the arrays' length, 1 for numbers). The
        noise is drawn on the CPU from a ``torch.Generator`` seeded with ``seed``, so a seed gives the same
        noise on every device and batch size. Returns a ShowerSet with showers float32 (N, X, Y, Z) in GeV and
        attrs source=<model name>. Raises :class:`calogen.showers.OutOfRangeError` for conditions outside the
        card's range unless ``allow_extrapolation``.
        """
        conditions = Conditions.broadcast(energy_gev, theta_rad, n)
        if not allow_extrapolation:
            try:
                self.condition_range.check(conditions, f"model {self.name}")
            except OutOfRangeError as exc:
                raise OutOfRangeError(f"{exc}; pass allow_extrapolation=True to go beyond") from None
        return self._draw(conditions, seed=seed, batch_size=self.batch_size if batch_size is None else batch_size,
                          progress=progress, extrapolated=allow_extrapolation)

    def _draw(self, conditions: Conditions, *, seed: int | None, batch_size: int, progress: Progress | None,
              extrapolated: bool) -> ShowerSet:
        if batch_size <= 0:
            raise ValueError(f"batch_size={batch_size} must be a positive integer")
        total = len(conditions)
        cpu_gen = torch.Generator(device="cpu")
        if seed is None:
            cpu_gen.seed()
        else:
            cpu_gen.manual_seed(int(seed))
        noise = torch.randn((total, self.latent_dim), generator=cpu_gen, dtype=torch.float32)
        truncate = getattr(self.module, "truncate_noise", None)
        if callable(truncate):  # a factorised generator's flow samples from a truncated base
            noise = truncate(noise, cpu_gen)
        e_all = torch.from_numpy(conditions.energy_gev.astype(np.float32))
        t_all = torch.from_numpy(conditions.theta_rad.astype(np.float32))
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
        attrs = {
            "source": self.name,
            "model": self.name,
            "arch": self.arch,
            "particle": self.card.get("particle", "e-"),
            "detector": self.card.get("detector", "clic_ecal"),
            "seed": -1 if seed is None else int(seed),
            "calogen_version": __version__,
            "extrapolated": extrapolated,
        }
        return ShowerSet(np.concatenate(chunks), e_all.numpy(), t_all.numpy(), attrs)


def load_generator(
    name_or_path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    models_dir: str | os.PathLike[str] | None = None,
    fast: bool = False,
    bf16: bool = False,
) -> LoadedGenerator:
    """Load a model by name (under :func:`calogen.paths.models_dir` or ``models_dir``) or by folder path.

    fast: switch on the generator's exact speed-ups where it has them (``use_fast_path``: conv3d's
    pixel-shuffle rewrite and channels-last layout; outputs agree with the published form to ~1e-5); on a CPU
    also :func:`calogen.memory.keep_freed_memory` (process-wide: freed tensors' memory is kept for the next batch).
    bf16: run a factorised generator's shape network in bfloat16 (``use_bf16``; not exact, cells move by ~1 % of
    their energy: validate that path with ``python -m calogen validate --model ... --bf16``); raises
    :class:`ModelLoadError` for a generator without it.

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
        module = _build(card["arch"], card["config"])
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
    use_fast_path = getattr(module, "use_fast_path", None)
    if fast and callable(use_fast_path):
        use_fast_path(True)
    if fast and dev.type == "cpu":
        keep_freed_memory()
    if bf16:
        use_bf16 = getattr(module, "use_bf16", None)
        if not callable(use_bf16):
            raise ModelLoadError(f"{folder}: a {card['arch']} generator has no bfloat16 path (the factorised "
                                 "generators have one)")
        use_bf16(True)
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
    """Summaries of the models installed in ``models_dir`` (default :func:`calogen.paths.models_dir`), sorted by
    name.

    Each entry: name, arch, path, condition_range (:meth:`ConditionRange.to_json`: GeV, radians), validation
    (scalar figures), description, has_weights; a folder whose card cannot be read gives name, path and ``error``.
    """
    root = Path(models_dir) if models_dir is not None else default_models_dir()
    if not root.is_dir():
        return []
    out: list[dict[str, Any]] = []
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
                "condition_range": card_condition_range(card).to_json(),
                "validation": _validation_summary(card.get("validation")),
                "description": str(card.get("description", "")),
                "has_weights": (folder / WEIGHTS_FILE).exists(),
            }
        )
    return out

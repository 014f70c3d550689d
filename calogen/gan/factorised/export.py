"""The model folder of a factorised-generator campaign: weights and a card written from the run's checkpoint, and
a run started again from such a folder.

    >>> from calogen.gan.factorised.export import checkpoint_from_model, export_model
    >>> export_model("runs/campaign2-conv3d", "models/conv3d")      # then: calogen validate --update-card
    >>> checkpoint_from_model("models/conv3d", "runs/campaign3-conv3d", config)   # on a machine with a new runs/

The folder holds ``generator.safetensors`` (what generation loads), ``critic.safetensors`` (the campaign's
critic, so that training goes on where it stopped) and ``card.json``, whose ``training`` block is the campaign's
account: steps, showers seen, CPU and wall hours, sessions, and the Monte Carlo physics the energy flow was
fitted on. The optimisers' moments are not kept (Adam with betas (0, 0.9) re-estimates them within ~20 steps).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from calogen.gan.factorised.averaging import averaged_state
from calogen.gan.factorised.campaign import BEST, CHECKPOINT, CampaignConfig
from calogen.gan.factorised.cell_map import CellMapConfig, fit_cell_map
from calogen.gan.factorised.data import data_files, describe_data
from calogen.gan.factorised.model import FACTORISED_ARCHITECTURES, FactorisedGenerator, build_factorised
from calogen.gan.factorised.shape_nets import OFFSET_DIM, ShapeConfig, ShapeCritic
from calogen.io import atomic_write, read_showers
from calogen.showers import TRAINING_RANGE
from calogen.version import __version__

__all__ = ["CRITIC_FILE", "checkpoint_from_model", "export_model", "export_with_cell_map"]

CRITIC_FILE = "critic.safetensors"


def _progress(run: Path) -> dict[str, Any]:
    """The run's progress.json ({} when absent)."""
    path = run / "progress.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def export_model(run_dir: str | Path, model_dir: str | Path, *, status: str | None = None,
                 name: str | None = None, best: bool = False) -> Path:
    """Write ``model_dir`` (generator.safetensors + card.json) from the campaign's checkpoint; returns the folder.

    The shape generator's weights are the moving average of the run's last session when it kept one
    (``CampaignConfig.ema_decay``; ``training["weights"]["from"]`` says so), else the last step's.
    ``best``: the generator's weights are those of the last session's best monitored point (``best.pt``, the
    lowest KPD against the monitoring showers) rather than the last ones; the card's steps and showers seen are
    that point's, ``training["weights"]`` says so, and CPU hours and sessions are the whole campaign's. Raises
    ValueError, writing nothing, when the run has no such file.

    The card records the command, the data's provenance, the device, CPU hours, sessions, steps and showers seen;
    The card's command is the one that ran the campaign's last session. ``status`` says how far the campaign got
    (default "in progress: N steps, M showers seen, H CPU hours"). The validation figures are added by
    ``python -m calogen validate --model ... --update-card``.
    """
    from calogen.gan.generate import save_model

    run = Path(run_dir)
    saved = torch.load(run / CHECKPOINT, map_location="cpu", weights_only=False)
    state = saved["state"]
    config = CampaignConfig(**state["config"])
    model = build_factorised(config.arch, {"shape": config.shape})
    weights: dict[str, Any] = {"from": "the last step", "step": state["step"], "showers_seen": state["showers_seen"]}
    if best:
        if not (run / BEST).exists():
            raise ValueError(f"{run / BEST} does not exist: no session of this run has kept its best monitored "
                             "weights; export the last ones")
        kept = torch.load(run / BEST, map_location="cpu", weights_only=False)
        model.load_state_dict(kept["model"])
        weights = {"from": "the best monitored point of the last session (lowest KPD against the monitoring "
                           "showers)", **kept["best"]}
    else:
        model.load_state_dict(saved["model"])
        if saved.get("shape_average") is not None:  # the run's last session averaged the weights: those are written
            model.shape.load_state_dict(averaged_state(saved["shape_average"]))
            averaged = int(saved["shape_average"]["n_averaged"])
            weights["from"] = (f"the moving average of the shape generator's weights at the last step (decay "
                               f"{config.ema_decay:g} per step, over the {averaged} steps since averaging began)")
    folder = Path(model_dir)
    if status is None:
        status = (f"in progress: {state['step']} steps, {state['showers_seen']} showers seen, "
                  f"{state['cpu_seconds'] / 3600:.2f} CPU hours"
                  + (f"; the weights of step {weights['step']}" if best else ""))
    card: dict[str, Any] = {
        "name": name or folder.name,
        "arch": config.arch,
        "config": model.config_json(),
        "condition_range": TRAINING_RANGE.to_json(),
        "preprocessing": {"kind": "identity"},
        "particle": "e-",
        "detector": "clic_ecal",
        "training": {
            "command": state.get("command") or _progress(run).get("command", ""),
            "data": describe_data(config.data),
            "device": _devices(state["sessions"]),
            "steps": weights["step"],
            "showers_seen": weights["showers_seen"],
            "weights": weights,
            "batch_size": config.batch_size,
            "cpu_hours": round(state["cpu_seconds"] / 3600.0, 3),
            "wall_hours": round(state["wall_seconds"] / 3600.0, 3),
            "sessions": state["sessions"],
            "energy_flow_nll_holdout": _kept_flow_nll(state["flow_history"]),
            "flow_data_physics": state.get("flow_data_physics"),
            "critic": CRITIC_FILE,
            "monitor": state.get("monitor"),
            "config": state["config"],
            "calogen_version": __version__,
            "status": status,
        },
    }
    if not math.isfinite(float(card["training"]["cpu_hours"])):
        raise ValueError("the checkpoint's CPU time is not finite")
    save_model(folder, model, card)
    critic = {k: v.detach().contiguous() for k, v in saved["critic"].items()}
    atomic_write(folder / CRITIC_FILE, lambda p: save_file(critic, str(p), metadata={"arch": config.arch}))
    return folder


def _devices(sessions: list[dict[str, Any]]) -> str:
    """Where the campaign's sessions trained, in order of first use: "cpu", or e.g. "cpu, cuda (NVIDIA H200)"
    (sessions recorded before devices were recorded trained on the CPU)."""
    seen: list[str] = []
    for session in sessions:
        device = str(session.get("device", "cpu"))
        if device not in seen:
            seen.append(device)
    return ", ".join(seen) or "cpu"


def checkpoint_from_model(model_dir: str | Path, run_dir: str | Path, config: CampaignConfig) -> Path:
    """Write ``run_dir/checkpoint.pt`` from a model folder written by :func:`export_model`, so that
    :func:`calogen.gan.factorised.campaign.run_campaign` goes on from it; returns the checkpoint's path.

    The generator (flow and shape net) and, where the folder has one, the critic are the folder's; step, showers
    seen, CPU and wall time, sessions and the flow's fit come from its card. A folder without a critic (one
    exported before critics were kept) gives a checkpoint without one: the campaign then trains a new critic
    alone first. Raises ValueError, writing nothing, when ``run_dir`` already holds a checkpoint, when the
    folder is not a factorised campaign's, or when its architecture or shape settings differ from ``config``'s
    (but for the axis shear, the entry offset, the speckle cap and the speckle field after the shear, which
    ``config`` may switch on: ``state["<setting>_from_step"]`` records where, e.g.
    ``state["axis_shear_from_step"]``). A folder's cell map is not carried over: it is fitted again to the trained
    generator (``python -m calogen cell-map``).
    """
    from calogen.gan.generate import ModelLoadError, load_generator

    folder, run = Path(model_dir), Path(run_dir)
    if (run / CHECKPOINT).exists():
        raise ValueError(f"{run / CHECKPOINT} exists already: resume that run, or start from {folder} under a new "
                         "run name")
    try:
        loaded = load_generator(folder)
    except ModelLoadError as exc:
        raise ValueError(f"cannot start a run from {folder}: {exc}") from None
    card = loaded.card
    training = card.get("training") or {}
    if card.get("arch") != config.arch:
        raise ValueError(f"{folder} holds a {card.get('arch')} generator, not {config.arch}")
    module = cast(FactorisedGenerator, loaded.module)  # config.arch is a factorised architecture
    shape = (training.get("config") or {}).get("shape")
    switched = _switched_on(shape, dict(config.shape))
    if shape != config.shape and not switched:
        raise ValueError(f"{folder} was trained with shape settings {shape}, not {config.shape}: start from it "
                         "with the same settings (--channels, --speckle-dim, --threshold-mev; --axis-shear, "
                         "--entry-offset, --speckle-cap and --speckle-after-shear may be added)")
    if not {"steps", "showers_seen", "cpu_hours", "sessions"} <= set(training):
        raise ValueError(f"{folder / 'card.json'} has no campaign account (steps, showers seen, CPU hours, sessions)")
    critic_state = None
    if (folder / CRITIC_FILE).exists():
        try:
            critic_state = load_file(str(folder / CRITIC_FILE), device="cpu")
            ShapeCritic(module.shape_config).load_state_dict(critic_state, strict=True)  # names and shapes fit
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise ValueError(f"{folder / CRITIC_FILE} does not fit the critic of {config.arch}: {exc}") from None
    nll = training.get("energy_flow_nll_holdout")
    state: dict[str, Any] = {
        "step": int(training["steps"]), "showers_seen": int(training["showers_seen"]),
        "cpu_seconds": float(training["cpu_hours"]) * 3600.0,
        "wall_seconds": float(training.get("wall_hours", 0.0)) * 3600.0,
        "sessions": list(training["sessions"]),
        "flow_history": [{"epoch": 0, "nll_holdout": nll, "from": str(folder)}] if nll is not None else [],
        "flow_data_physics": training.get("flow_data_physics"),
        "config": {**training.get("config", {}), "shape": dict(config.shape)}, "monitor": training.get("monitor"),
    }
    for setting in switched:
        state[f"{setting}_from_step"] = state["step"]
    run.mkdir(parents=True, exist_ok=True)
    # a cell map fits the shapes it was fitted to, not those training will make: the run goes on without it
    weights = {k: v for k, v in module.state_dict().items() if not k.startswith("cell_map.")}
    torch.save({"model": weights, "critic": critic_state, "opt_g": None, "opt_d": None,
                "state": state, "calogen_version": __version__, "started_from": str(folder)}, run / CHECKPOINT)
    return run / CHECKPOINT


def _switched_on(trained: object, wanted: dict[str, Any]) -> list[str]:
    """The settings that ``wanted`` switches on over the shape settings a model was ``trained`` with, when that is
    all that differs, else []. Five may be switched on, as none changes a weight: the axis shear (a fixed table),
    so that a generator that learned the tilt itself can go on with the shear and unlearn it; the entry offset,
    whose two latent values come on top of the network's (``latent_dim`` grows by them); a bound on the
    speckle field of a generator trained with the unbounded one; the speckle field added after the shear; and the
    quadratic B-spline placement."""
    if not isinstance(trained, dict):
        return []
    grown = dict(trained)
    switched: list[str] = []
    if wanted.get("axis_shear") and not trained.get("axis_shear"):
        grown["axis_shear"], switched = True, [*switched, "axis_shear"]
    if wanted.get("entry_offset") and not trained.get("entry_offset"):
        grown["entry_offset"], switched = True, [*switched, "entry_offset"]
        grown["latent_dim"] = int(trained.get("latent_dim", ShapeConfig.latent_dim)) + OFFSET_DIM
    if float(wanted.get("speckle_cap") or 0.0) > 0.0 and not trained.get("speckle_cap"):
        grown["speckle_cap"], switched = wanted["speckle_cap"], [*switched, "speckle_cap"]
    if wanted.get("speckle_after_shear") and not trained.get("speckle_after_shear"):
        grown["speckle_after_shear"], switched = True, [*switched, "speckle_after_shear"]
    if wanted.get("spline_placement") and not trained.get("spline_placement"):
        grown["spline_placement"], switched = True, [*switched, "spline_placement"]
    return switched if switched and grown == wanted else []


def _kept_flow_nll(history: list[dict[str, Any]]) -> float | None:
    """Held-out negative log-likelihood of the flow's kept epoch (the best one; the last in a history written
    before the flow kept its best epoch), or None when the flow was not fitted."""
    if not history:
        return None
    kept = [epoch for epoch in history if epoch.get("kept")]
    return float((kept or history)[-1]["nll_holdout"])


def export_with_cell_map(model_dir: str | Path, data: str | Path, out_dir: str | Path, *,
                         max_showers: int | None = None, seed: int = 0, command: str = "",
                         config: CellMapConfig | None = None, device: str = "cpu",
                         log: Callable[[str], None] = lambda line: None) -> Path:
    """Fit a :class:`~calogen.gan.factorised.cell_map.CellEnergyMap` to the generator of ``model_dir`` on the
    Monte Carlo showers of ``data`` (a ``produce`` folder or a file; never the held-out reference) and write
    ``out_dir``: the same weights plus the map, the card's ``config["cell_map"]`` and a ``cell_map`` account
    (command, data, showers, seconds, classes mapped); the map's histograms start at the generator's cell
    threshold. The generator's table is made from as many showers generated at the data's conditions (seeded from
    ``seed``); a map already in ``model_dir`` is replaced. The card's validation figures are left out (they
    measured the generator without this map): add them with ``python -m calogen validate --model out_dir
    --update-card``. Raises ValueError, writing nothing, when
    ``out_dir`` is ``model_dir`` or a folder that holds files, or when the model is not factorised."""
    from calogen.gan.generate import load_generator, save_model

    source, folder = Path(model_dir), Path(out_dir)
    if folder.exists() and (folder.resolve() == source.resolve() or any(folder.iterdir())):
        raise ValueError(f"{folder} is the model's folder or holds files already: choose a new folder")
    loaded = load_generator(source, device=device)  # the generated showers are drawn there, histogrammed here
    if loaded.arch not in FACTORISED_ARCHITECTURES:
        raise ValueError(f"{source} holds a {loaded.arch} generator; a cell map is fitted to a factorised one")
    module = cast(FactorisedGenerator, loaded.module)
    module.attach_cell_map(None)  # the map is fitted to the generator's own cells
    files, provenance = data_files(data), describe_data(data)  # the files of now: a production may grow meanwhile
    started = time.monotonic()
    counted = {"showers": 0}

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for index, file in enumerate(files):
            sample = read_showers(file)
            if str(sample.attrs.get("source", "")).lower() == "reference" or "reference" in file.name:
                raise ValueError(f"{file} is a reference sample; the held-out reference is never fitted on")
            stop = len(sample) if max_showers is None else min(len(sample), max_showers - counted["showers"])
            yield (torch.from_numpy(sample.showers[:stop]), torch.from_numpy(sample.energy_gev[:stop]),
                   torch.from_numpy(sample.theta_rad[:stop]))
            counted["showers"] += stop
            log(f"cell map: {index + 1} of {len(files)} files, {counted['showers']} showers")
            if max_showers is not None and counted["showers"] >= max_showers:
                return

    def generate(energy: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        drawn = loaded.generate(energy.numpy(), theta.numpy(), seed=seed + counted["showers"])
        return torch.from_numpy(drawn.showers)

    config = config or CellMapConfig()
    if module.shape_config.threshold_gev > 0.0 and module.shape_config.threshold_gev != config.threshold_gev:
        config = replace(config, threshold_gev=module.shape_config.threshold_gev)  # the histograms start at it
    cell_map = fit_cell_map(batches(), generate, config)
    module.cpu().attach_cell_map(cell_map)
    card = {k: v for k, v in loaded.card.items() if k not in ("validation", "validation_bf16", "calogen_version")}
    card["config"] = module.config_json()
    card["cell_map"] = {
        "command": command,
        "data": provenance,
        "showers": counted["showers"],
        "seed": seed,
        "classes_mapped": int(cell_map.active.sum()),
        "classes": int(cell_map.active.numel()),
        "seconds": round(time.monotonic() - started, 1),
        "from_model": str(source),
    }
    save_model(folder, module, card)
    if (source / CRITIC_FILE).exists():
        shutil.copyfile(source / CRITIC_FILE, folder / CRITIC_FILE)
    return folder

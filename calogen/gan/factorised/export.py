"""The model folder of a factorised-generator campaign: weights and a card written from the run's checkpoint.

    >>> from calogen.gan.factorised.export import export_model
    >>> export_model("runs/campaign2-conv3d", "models/conv3d")      # then: calogen validate --update-card
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from calogen.gan.factorised.campaign import CHECKPOINT, CampaignConfig
from calogen.gan.factorised.data import describe_data
from calogen.gan.factorised.model import build_factorised
from calogen.showers import TRAINING_RANGE
from calogen.version import __version__

__all__ = ["export_model"]


def _progress(run: Path) -> dict[str, Any]:
    """The run's progress.json ({} when absent)."""
    path = run / "progress.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def export_model(run_dir: str | Path, model_dir: str | Path, *, status: str | None = None,
                 name: str | None = None) -> Path:
    """Write ``model_dir`` (generator.safetensors + card.json) from the campaign's checkpoint; returns the folder.

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
    model.load_state_dict(saved["model"])
    folder = Path(model_dir)
    if status is None:
        status = (f"in progress: {state['step']} steps, {state['showers_seen']} showers seen, "
                  f"{state['cpu_seconds'] / 3600:.2f} CPU hours")
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
            "device": "cpu",
            "steps": state["step"],
            "showers_seen": state["showers_seen"],
            "batch_size": config.batch_size,
            "cpu_hours": round(state["cpu_seconds"] / 3600.0, 3),
            "wall_hours": round(state["wall_seconds"] / 3600.0, 3),
            "sessions": state["sessions"],
            "energy_flow_nll_holdout": state["flow_history"][-1]["nll_holdout"] if state["flow_history"] else None,
            "monitor": state.get("monitor"),
            "config": state["config"],
            "calogen_version": __version__,
            "status": status,
        },
    }
    if not math.isfinite(float(card["training"]["cpu_hours"])):
        raise ValueError("the checkpoint's CPU time is not finite")
    save_model(folder, model, card)
    return folder

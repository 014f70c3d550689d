"""A resumable training campaign for a factorised generator, sized for a CPU and spread over sessions.

Phases: (1) the energy flow is fitted by maximum likelihood on the layer energies (once, a few minutes; again
when a session's data comes from other Monte Carlo physics, :func:`calogen.gan.factorised.data.data_physics`);
(2) the shape generator is trained against a critic with the hinge loss (Lim & Ye, arXiv:1705.02894; Miyato et
al., arXiv:1802.05957), conditioned on the *real* shower's energy, angle and layer energies, plus the 3DGAN
measured-angle constraint (Khattak et al., arXiv:2103.08497: the angle from layer barycentres of the generated
shower matches that of the Monte Carlo shower). The run folder holds one checkpoint (both nets, both optimisers,
the flow, step, showers seen, CPU time and sessions), ``progress.json`` and ``monitor.jsonl``; calling
:func:`run_campaign` again resumes it. :func:`calogen.gan.factorised.export.export_model` writes the model
folder (the generator, its critic and a card that carries the campaign's account), and
:func:`calogen.gan.factorised.export.checkpoint_from_model` starts a run from one, so that a campaign goes on
from what was committed on a machine whose ``runs/`` is new.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from calogen.gan.factorised.averaging import averaged_weights, shape_average
from calogen.gan.factorised.data import TrainingData, data_physics, load_training_data
from calogen.gan.factorised.energy_flow import context_features
from calogen.gan.factorised.feature_critic import FeatureCritic, feature_standardisation, high_level_features
from calogen.gan.factorised.flow_fit import train_energy_flow
from calogen.gan.factorised.model import FACTORISED_ARCHITECTURES, build_factorised
from calogen.gan.factorised.monitor import monitor_figures
from calogen.gan.factorised.shape_nets import ShapeCritic, cells_from_view, critic_input
from calogen.gan.factorised.shower_figures import (
    ANGLE_GROUP_EDGES_DEG,
    axis_angle,
    axis_distance,
    axis_residuals,
    condition_groups,
    core_fraction,
    grouped_gap,
    layer_widths,
    ring_hits,
    spread_gap,
)
from calogen.gan.nets.layers import measured_angle
from calogen.memory import keep_freed_memory
from calogen.validation import features
from calogen.version import __version__

__all__ = [
    "DEFAULT_SHAPE",
    "CampaignConfig",
    "run_campaign",
]

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
"""The session's best monitored weights: the lowest KPD against the monitoring showers, the session's start included
(``export_model(..., best=True)``, ``campaign --export-best``)."""
DEFAULT_SHAPE: dict[str, Any] = {"speckle_dim": 32, "threshold_gev": 5e-5}
"""Shape generator settings of a new campaign: a per-cell speckle field and a 0.05 MeV cell threshold (cells below
it hold 0.07 % of the Monte Carlo's energy but 6 % of its non-empty cells)."""


@dataclass(frozen=True)
class CampaignConfig:
    """What a campaign trains, on what, and how (learning rates per optimiser step, batch sizes in showers)."""

    arch: str  # "factorised-conv2d" or "factorised-conv3d"
    data: str  # a `calogen produce` folder or a native shower file (never the held-out reference)
    batch_size: int = 64
    lr_generator: float = 1e-4
    lr_critic: float = 2e-4
    adversarial_weight: float = 1.0  # weight of the critic's term in the generator loss (the constraints hold the
    # shapes' means; the critic's term alone took a shipped conv2d from KPD 48 to 600-1000 within 700 steps)
    angle_weight: float = 1.0  # weight of the measured-angle constraint (radians of mean absolute error)
    angle_bias_weight: float = 0.0  # weight of |mean difference| of the axis angle fitted as validation measures it
    # (radians), within the condition groups: the batch-wide bias in the angle term cancels between 62 and 118 deg
    width_weight: float = 1.0  # weight of the layer-width constraint (mean |log width| difference per layer)
    width_per_axis: bool = False  # the width constraints compare the x and the y width of each layer (else: radial)
    hits_weight: float = 1.0  # weight of the hit-count constraint (mean |log(1 + hits)| difference per layer)
    core_weight: float = 5.0  # weight of the core constraint (|difference of the batch mean 5.1 mm containment|)
    axis_weight: float = 1.0  # weight of the shower-axis constraint (layer barycentre distance, cells)
    ring_weight: float = 1.0  # weight of the hits-by-distance constraint (mean |log(1 + hits)| per layer and ring)
    spread_weight: float = 0.0  # weight of the shower-to-shower spread constraint (|ln std| of the log layer
    # widths and of log(1 + hits) per layer, within the condition groups)
    axis_spread_weight: float = 0.0  # weight of the constraint on how far single layers stray from the shower's own
    # axis (|ln rms| of the layer barycentres' distances from the fitted line, per layer, within the condition groups)
    feature_adversarial_weight: float = 0.0  # weight of a second critic's term, one that sees the validation
    # classifier's high-level features (layer barycentres and widths in x and y, hits; feature_critic.py)
    feature_critic_gain: float = 0.0  # > 0: that critic sees its features standardised on training showers, times
    # this (spectral normalisation holds its slope to 1 per input unit); 0: the raw features
    paired_hits_weight: float = 0.0  # weight of the per-shower hit-count constraint (mean |log(1 + hits)| difference
    # between each generated shower and the Monte Carlo shower whose conditions and layer energies it was drawn with)
    hit_width: float = 0.25  # width of the soft hit count's sigmoid, in ln(cell energy)
    ema_decay: float = 0.0  # > 0: the shape generator's weights are averaged over the steps with this decay per step
    # (averaging.py); the average is what the campaign monitors, keeps as the session's best and exports
    angle_group_edges_deg: tuple[float, ...] = ANGLE_GROUP_EDGES_DEG  # the batch-mean constraints compare within
    # these groups of incidence angle (degrees)
    energy_group_edges_gev: tuple[float, ...] = ()  # the batch-mean constraints also compare within these energy
    # groups (GeV edges; () compares all energies of an angle group together)
    dense_hits: bool = False  # count the generator's soft hits on its density before the cell threshold, and the
    # Monte Carlo's with the same soft count (else: the generator's cells, against the Monte Carlo's hard count)
    instance_noise: float = 0.0  # std of the Gaussian noise added to what the critic sees (log1p units) at step 0
    instance_noise_steps: int = 20000  # the instance noise falls linearly to zero over this many steps
    flow_epochs: int = 40
    flow_batch: int = 256
    flow_lr: float = 1e-3
    holdout: int = 400  # the last showers of the data, kept out of training to monitor it
    seed: int = 1
    max_showers: int | None = None  # read at most this many showers (tests; None = all)
    shape: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SHAPE))  # ShapeConfig overrides

    def __post_init__(self) -> None:
        if self.arch not in FACTORISED_ARCHITECTURES:
            raise ValueError(f"arch={self.arch!r}: use one of {', '.join(FACTORISED_ARCHITECTURES)}")
        if self.batch_size < 2 or self.flow_batch < 2:
            raise ValueError("batch sizes must be at least 2 showers")
        if min(self.lr_generator, self.lr_critic) <= 0.0 or self.instance_noise < 0.0:
            raise ValueError("learning rates must be positive and the instance noise not negative")
        edges = tuple(self.energy_group_edges_gev)
        if any(e <= 0.0 for e in edges) or list(edges) != sorted(set(edges)):
            raise ValueError(f"energy_group_edges_gev={list(edges)}: give increasing positive energies, GeV")
        angles = tuple(self.angle_group_edges_deg)
        if any(not 0.0 < a < 180.0 for a in angles) or list(angles) != sorted(set(angles)):
            raise ValueError(f"angle_group_edges_deg={list(angles)}: give increasing angles inside 0-180 degrees")
        if min(v for k, v in asdict(self).items() if k.endswith("_weight")) < 0.0:
            raise ValueError("the adversarial and constraint weights must not be negative")
        if self.feature_critic_gain < 0.0:
            raise ValueError(f"feature_critic_gain={self.feature_critic_gain} must not be negative (0: raw features)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay={self.ema_decay}: give 0 (no average) or a decay per step below 1")
        if self.hit_width <= 0.0:
            raise ValueError(f"hit_width={self.hit_width} must be positive (a width in ln of the cell energy)")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return float(usage.ru_utime + usage.ru_stime)


def _noisy(view: torch.Tensor, sigma: float) -> torch.Tensor:
    """The critic's view with Gaussian instance noise of std ``sigma`` (log1p units); unchanged for sigma 0."""
    return view + sigma * torch.randn_like(view) if sigma > 0.0 else view


def _critic_step(critic: ShapeCritic | FeatureCritic, optimiser: torch.optim.Optimizer, real_view: torch.Tensor,
                 fake_view: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
    """One critic update with the hinge loss on real and generated views at the same conditions; returns the loss."""
    loss = (F.relu(1.0 - critic(real_view, conditions)).mean()
            + F.relu(1.0 + critic(fake_view, conditions)).mean())
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return loss


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


@contextlib.contextmanager
def _stop_on_signal(log: Callable[[str], None]) -> Iterator[threading.Event]:
    """An event that SIGTERM and SIGINT set while the block runs (in the main thread; elsewhere it is never set):
    a training loop that checks it ends cleanly, checkpoint written, when its process is asked to stop."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request(signum: int, _frame: object) -> None:
        stop.set()
        log(f"{signal.Signals(signum).name}: ending the session after this step, the checkpoint is saved")

    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_campaign(config: CampaignConfig, run_dir: str | Path, *, minutes: float, steps: int | None = None,
                 command: str = "", log: Callable[[str], None] = print, checkpoint_minutes: float = 5.0,
                 monitor_every: int = 250, critic_warmup: int = 200, refit_flow: bool = False,
                 device: str = "cpu") -> dict[str, Any]:
    """Train for ``minutes`` of wall time or until the campaign reaches ``steps`` generator steps, whichever comes
    first (resuming ``run_dir/checkpoint.pt`` when present); returns the state.

    The checkpoint is written every ``checkpoint_minutes`` and at the end; ``progress.json`` says where the
    campaign stands (step, showers seen, CPU hours, sessions, the last monitoring figures). SIGTERM or Ctrl-C
    (SIGINT) ends the session after the current step, with the checkpoint written, as a deadline would. A
    checkpoint without a critic (a run started from a shipped model folder) first trains a new critic alone for
    ``critic_warmup`` steps against the generator as it stands, so that the generator's first steps follow a
    critic that has seen its showers; so does a new feature critic (``feature_adversarial_weight`` > 0 and a
    checkpoint without one). ``refit_flow`` fits the energy flow again on this session's data (a
    production that has grown since the flow was fitted). ``device``: "cpu" or "cuda": where the nets, the flow's
    fit and the training showers live (the monitoring showers and the checkpoint stay on the CPU side; a run may
    change device between sessions, each session records its own). With ``config.ema_decay`` > 0 the monitored
    figures and the session's best point are those of the moving average of the shape generator's weights
    (:mod:`calogen.gan.factorised.averaging`), which the checkpoint keeps beside the weights and the export writes.
    """
    dev = torch.device(device)
    if dev.type == "cpu":
        keep_freed_memory()  # freed tensors reused: a CPU step 20-35 % faster (calogen.memory)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but torch sees no CUDA device on this machine")
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    started, cpu_start = time.monotonic(), _cpu_seconds()
    torch.manual_seed(config.seed)
    data = load_training_data(config.data, max_showers=config.max_showers)
    train, holdout = data.split(min(config.holdout, len(data) // 5))
    cells_holdout = cells_from_view(holdout.critic_view).numpy()
    depth_mm = torch.from_numpy(features.clic_layer_depth_mm(train.critic_view.shape[1])).float().to(dev)
    model = build_factorised(config.arch, {"shape": config.shape}).to(dev)
    critic = ShapeCritic(model.shape_config).to(dev)
    opt_g = torch.optim.Adam(model.shape.parameters(), lr=config.lr_generator, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=config.lr_critic, betas=(0.0, 0.9))
    feature_critic = FeatureCritic(model.shape_config.grid[2], model.shape_config.n_conditions).to(dev)
    opt_f = torch.optim.Adam(feature_critic.parameters(), lr=config.lr_critic, betas=(0.0, 0.9))
    use_features = config.feature_adversarial_weight > 0.0
    new_feature_critic = True  # until a checkpoint gives one
    state: dict[str, Any] = {"step": 0, "showers_seen": 0, "cpu_seconds": 0.0, "wall_seconds": 0.0,
                             "sessions": [], "flow_history": [], "config": asdict(config)}
    checkpoint = run / CHECKPOINT
    warmup, saved_average = 0, None
    if checkpoint.exists():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if saved["state"]["config"]["arch"] != config.arch:
            raise ValueError(f"{checkpoint} trains {saved['state']['config']['arch']}, not {config.arch}")
        if saved["state"]["config"].get("shape", {}) != config.shape:
            raise ValueError(f"{checkpoint} trains a shape generator with {saved['state']['config'].get('shape')}, "
                             f"not {config.shape}: resume with the same settings or start a new run")
        model.load_state_dict(saved["model"])
        # a run started from a model folder (calogen.gan.factorised.export.checkpoint_from_model) may have no
        # critic, and has no optimiser moments: those start afresh (Adam's betas (0, 0.9) forget within ~20 steps)
        if saved.get("critic") is not None:
            critic.load_state_dict(saved["critic"])
        else:
            warmup = critic_warmup
        if saved.get("opt_g") is not None and saved.get("opt_d") is not None:
            opt_g.load_state_dict(saved["opt_g"])
            opt_d.load_state_dict(saved["opt_d"])
        # a feature critic trained on features scaled otherwise is a new one (critics before the gain lack its buffers)
        if saved.get("feature_critic") is not None and saved["state"]["config"].get(
                "feature_critic_gain", 0.0) == config.feature_critic_gain:
            feature_critic.load_state_dict(feature_critic.state_dict() | saved["feature_critic"])
            opt_f.load_state_dict(saved["opt_f"])
            new_feature_critic = False
        saved_average = saved.get("shape_average")
        state = saved["state"]
        state["config"] = asdict(config)  # a session may change the learning rates or the data; each keeps its own
        log(f"resumed {checkpoint} at step {state['step']} ({state['showers_seen']} showers seen)")
    # a critic new to a resumed run learns alone first: the cell critic of a run started from a model folder, the
    # feature critic of a run that had none
    new_critics = {"cell": warmup > 0, "feature": use_features and new_feature_critic and checkpoint.exists()}
    warmup = critic_warmup if any(new_critics.values()) else 0
    if use_features and new_feature_critic and config.feature_critic_gain > 0.0:  # on up to 2,048 training showers
        views = train.critic_view[:2048].split(256)  # (the hits enter with the campaign's soft count)
        scales = feature_standardisation((cells_from_view(v).to(dev) for v in views), config.hit_width)
        feature_critic.standardise(*scales, config.feature_critic_gain)
    state["command"] = command
    earlier_sessions = len(state["sessions"])
    session = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "start_step": state["step"],
               "command": command, "host": platform.node(), "threads": torch.get_num_threads(),
               "data_showers": len(data), "data_physics": data_physics(config.data), "config": asdict(config),
               "device": str(dev) if dev.type == "cpu" else f"{dev} ({torch.cuda.get_device_name(dev)})"}
    physics = session["data_physics"]
    if state["flow_history"] and state.get("flow_data_physics") != physics:
        # the energy flow carries the sampling fraction: data of other Monte Carlo physics needs it fitted anew
        # (the shape generator goes on learning from where it stands)
        log(f"the data was made by Monte Carlo physics {physics}, the energy flow was fitted on "
            f"{state.get('flow_data_physics')}: fitting the energy flow again")
        state["flow_history"] = []
    if refit_flow and state["flow_history"]:
        log(f"fitting the energy flow again on this session's {len(train)} training showers")
        state["flow_history"] = []
    if not state["flow_history"]:
        state["flow_history"] = train_energy_flow(model.energy_flow, train, holdout, epochs=config.flow_epochs,
                                                  batch=config.flow_batch, lr=config.flow_lr, seed=config.seed, log=log)
        state["flow_data_physics"] = physics
    if dev.type != "cpu":  # the training showers go where the nets are (float16 views: 130 kB a shower)
        train = TrainingData(*(t.to(dev) for t in train._tensors()))

    # the moving average of the shape generator's weights (averaging.py), going on from the checkpoint's
    average = shape_average(model.shape, config.ema_decay) if config.ema_decay > 0.0 else None
    if average is not None and saved_average is not None:
        average.load_state_dict(saved_average)
    marks = {"cpu": cpu_start, "wall": started}

    def keep_if_best(figures: dict[str, float]) -> None:
        # the session's own best: the monitoring showers (the data's last ones) may differ between sessions
        best, kpd_now = session.get("best"), figures.get("kpd_x1e3", math.nan)
        if not math.isfinite(kpd_now):  # fewer than 10 monitoring showers: no best point is kept
            return
        if best is None or kpd_now < best["kpd_x1e3"]:
            session["best"] = {"step": state["step"], "showers_seen": state["showers_seen"],
                               "kpd_x1e3": figures["kpd_x1e3"], "fpd_x1e3": figures["fpd_x1e3"]}
            tmp = run / (BEST + ".tmp")
            torch.save({"model": model.state_dict(), "best": session["best"]}, tmp)
            os.replace(tmp, run / BEST)

    (run / BEST).unlink(missing_ok=True)  # an earlier session's best point is not this session's
    with averaged_weights(model.shape, average):  # where the session starts
        keep_if_best(monitor_figures(model, holdout, cells_holdout, config.seed))

    def save() -> None:
        state["cpu_seconds"] += _cpu_seconds() - marks["cpu"]
        state["wall_seconds"] += time.monotonic() - marks["wall"]
        marks["cpu"], marks["wall"] = _cpu_seconds(), time.monotonic()
        session["end_step"], session["ended"] = state["step"], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # this session's entry is the one after those of the earlier sessions (a start time to the second would
        # not tell two short sessions apart)
        state["sessions"] = state["sessions"][:earlier_sessions] + [dict(session)]
        tmp = checkpoint.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "critic": critic.state_dict(), "opt_g": opt_g.state_dict(),
                    "opt_d": opt_d.state_dict(), "state": state, "calogen_version": __version__}
                   | ({"feature_critic": feature_critic.state_dict(), "opt_f": opt_f.state_dict()}
                      if use_features or not new_feature_critic else {})
                   | ({"shape_average": average.state_dict()} if average is not None else {}), tmp)
        os.replace(tmp, checkpoint)
        _write_json(run / "progress.json", {k: v for k, v in state.items() if k != "flow_history"}
                    | {"command": command, "cpu_hours": state["cpu_seconds"] / 3600.0})

    rng = np.random.default_rng(config.seed + state["step"])
    last_save = time.monotonic()
    deadline = started + 60.0 * minutes
    with _stop_on_signal(log) as stop:
        if warmup:
            gain = f" at gain {config.feature_critic_gain:g}" if config.feature_critic_gain > 0.0 else ""
            names = [{"cell": "critic", "feature": "feature critic" + gain}[k] for k, new in new_critics.items() if new]
            log(f"the checkpoint has no {' and no '.join(names)}: training a new one alone for {warmup} steps")
            session["critic_warmup_steps"] = warmup
        for _ in range(warmup):
            idx = torch.from_numpy(rng.integers(0, len(train), config.batch_size)).to(dev)
            energy, theta, layers = train.energy_gev[idx], train.theta_rad[idx], train.layer_energy[idx]
            with torch.no_grad():
                conditions = torch.cat([context_features(energy, theta),
                                        model.energy_flow.standardised(layers, energy)], 1)
                latent = torch.randn(config.batch_size, model.shape_config.latent_dim, device=dev)
                fake = model.shape(latent, conditions, layers) * layers[:, None, None, :]
            real_view = train.critic_view[idx].float()
            if new_critics["cell"]:
                _critic_step(critic, opt_d, real_view, critic_input(fake), conditions)
            if new_critics["feature"]:
                real_cells = cells_from_view(real_view)
                _critic_step(feature_critic, opt_f, high_level_features(real_cells, config.hit_width),
                             high_level_features(fake, config.hit_width), conditions)
            if stop.is_set() or time.monotonic() >= deadline:
                break
        while time.monotonic() < deadline and (steps is None or state["step"] < steps) and not stop.is_set():
            idx = torch.from_numpy(rng.integers(0, len(train), config.batch_size)).to(dev)
            real_view = train.critic_view[idx].float()
            energy, theta, layers = train.energy_gev[idx], train.theta_rad[idx], train.layer_energy[idx]
            conditions = torch.cat([context_features(energy, theta),
                                    model.energy_flow.standardised(layers, energy)], 1).detach()
            latent = torch.randn(config.batch_size, model.shape_config.latent_dim, device=dev)
            shapes, density = model.shape.shapes_and_density(latent, conditions, layers)
            fake = shapes * layers[:, None, None, :]  # (B, X, Y, Z) GeV
            # (1) critic step: hinge loss on real and generated showers at the same conditions, both seen through
            # instance noise (Sonderby et al. arXiv:1610.04490) so that the critic cannot win on cell-level details
            # (float16 storage, the cell threshold) before the shapes are right
            sigma = config.instance_noise * max(0.0, 1.0 - state["step"] / max(config.instance_noise_steps, 1))
            loss_d = _critic_step(critic, opt_d, _noisy(real_view, sigma), _noisy(critic_input(fake.detach()), sigma),
                                  conditions)
            # (2) generator step: fool the critic, keep the measured angle of the Monte Carlo shower, the batch's
            # mean layer widths, hit counts per layer and core containment (feature matching, Salimans et al.
            # arXiv:1606.03498, on physics features: they hold the shapes while the critic is far ahead)
            angle_error = measured_angle(fake) - train.angle_rad[idx]
            angle_loss = angle_error.abs().mean() + angle_error.mean().abs()  # per shower, and the batch's bias
            real_cells = cells_from_view(real_view)  # (B, X, Y, Z) GeV
            # batch means compared within angle groups (and energy groups when the config has them): over the
            # whole batch a shape too narrow at 62 deg and too wide at 90 deg averages out (the shipped cards showed
            # it for the core and the hit counts), and so does one too narrow at 10 GeV and too wide at 100 GeV
            groups = condition_groups(theta, energy, angle_edges_deg=tuple(config.angle_group_edges_deg),
                                      energy_edges_gev=tuple(config.energy_group_edges_gev))
            angle_bias = (grouped_gap(axis_angle(fake, depth_mm)[:, None], axis_angle(real_cells, depth_mm)[:, None],
                                      groups) if config.angle_bias_weight > 0.0 else torch.zeros((), device=dev))
            axis_spread = (spread_gap(axis_residuals(fake, depth_mm).flatten(1),
                                      axis_residuals(real_cells, depth_mm).flatten(1), groups)
                           if config.axis_spread_weight > 0.0 else torch.zeros((), device=dev))
            per_axis = config.width_per_axis
            fake_widths = torch.log(layer_widths(fake, per_axis=per_axis))
            real_widths = torch.log(layer_widths(real_cells, per_axis=per_axis))
            width_loss = grouped_gap(fake_widths, real_widths, groups)
            # hits per layer and ring (B, Z, R); the rings cover the window, so their sum is the layer's count
            # the cell threshold empties cells whose soft hit then has no gradient: dense_hits counts the hits on
            # the density before it, where every cell can still grow into a hit
            if config.dense_hits:
                fake_rings = ring_hits(density * layers[:, None, None, :], width=config.hit_width)
                real_rings = ring_hits(real_cells, width=config.hit_width)
            else:
                fake_rings = ring_hits(fake, width=config.hit_width)
                real_rings = ring_hits(real_cells, soft=False)
            fake_hits, real_hits = fake_rings.sum(dim=2), real_rings.sum(dim=2)  # (B, Z) per layer
            hits_loss = grouped_gap(fake_hits, real_hits, groups, log1p=True)
            core_loss = grouped_gap(core_fraction(fake)[:, None], core_fraction(real_cells)[:, None], groups)
            axis_loss = axis_distance(fake, real_cells).mean()
            # hits by distance from the layer's axis: a hit count can be right with hits strewn over the window
            ring_loss = grouped_gap(fake_rings, real_rings, groups, log1p=True)
            # how much widths and hit counts vary from shower to shower: the means can be right with a generator
            # whose showers are alternately too narrow and too wide (the classifier sees it)
            spread_loss = (spread_gap(fake_widths, real_widths, groups)
                           + spread_gap(torch.log1p(fake_hits), torch.log1p(real_hits), groups)
                           if config.spread_weight > 0.0 else torch.zeros((), device=fake.device))
            # each shower's hit count against its Monte Carlo twin's (same conditions and layer energies): the Monte
            # Carlo's varies by 2-6 % at a given total energy (10-300 GeV), and batch means (above) are blind to a
            # generator whose hit count follows its latent or its conditions too steeply (2-3 times that spread)
            paired_hits_loss = (torch.log1p(fake_hits.sum(1)) - torch.log1p(real_hits.sum(1))).abs().mean()
            adversarial = (-critic(_noisy(critic_input(fake), sigma), conditions).mean()
                           if config.adversarial_weight > 0.0 else torch.zeros((), device=fake.device))
            # the classifier's features, as the validation's high-level test sees them (feature_critic.py)
            feature_adversarial = torch.zeros((), device=dev)
            if use_features:
                fake_features = high_level_features(fake, config.hit_width)
                loss_f = _critic_step(feature_critic, opt_f, high_level_features(real_cells, config.hit_width),
                                      fake_features.detach(), conditions)
                feature_adversarial = -feature_critic(fake_features, conditions).mean()
            loss_g = (config.adversarial_weight * adversarial + config.angle_weight * angle_loss
                      + config.feature_adversarial_weight * feature_adversarial
                      + config.angle_bias_weight * angle_bias + config.axis_spread_weight * axis_spread
                      + config.width_weight * width_loss + config.hits_weight * hits_loss
                      + config.core_weight * core_loss + config.axis_weight * axis_loss
                      + config.ring_weight * ring_loss + config.spread_weight * spread_loss
                      + config.paired_hits_weight * paired_hits_loss)
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            if average is not None:
                average.update_parameters(model.shape)
            state["step"] += 1
            state["showers_seen"] += config.batch_size
            if state["step"] % monitor_every == 0:
                with averaged_weights(model.shape, average):  # the weights the campaign exports
                    figures = monitor_figures(model, holdout, cells_holdout, config.seed)
                    keep_if_best(figures)
                record = {"step": state["step"], "showers_seen": state["showers_seen"], "loss_critic": loss_d.item(),
                          "loss_generator": loss_g.item(), "angle_loss_rad": angle_loss.item(),
                          "angle_bias_rad": angle_bias.item(), "axis_spread_loss": axis_spread.item(),
                          "width_loss": width_loss.item(), "hits_loss": hits_loss.item(), "core_loss": core_loss.item(),
                          "axis_loss_cells": axis_loss.item(), "ring_loss": ring_loss.item(),
                          "spread_loss": spread_loss.item(), "paired_hits_loss": paired_hits_loss.item(),
                          "instance_noise": sigma,
                          **({"loss_feature_critic": loss_f.item(), "feature_adversarial": feature_adversarial.item()}
                             if use_features else {}),
                          **figures}
                state["monitor"] = record
                with open(run / "monitor.jsonl", "a") as fh:
                    fh.write(json.dumps(record) + "\n")
                log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
            if time.monotonic() - last_save > 60.0 * checkpoint_minutes:
                save()
                last_save = time.monotonic()
        save()
    return state

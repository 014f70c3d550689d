"""The training loop: set-up, the stages of the schedule, the per-epoch validation and the final choice.

The 3DGAN recipe (Khattak et al., IEEE Access 2021, and its public Keras code): RMSprop lr 1e-3 for both
networks, batch 64, the losses of :class:`calogen.gan.objectives.ThreeDGANObjective`, the generator updated twice
per discriminator step, first trained on 100-200 GeV and then warm-started on 2-500 GeV, and the final model
chosen among the last ten epochs by the smallest sampling-fraction error on held-out showers. The ``wgan-gp``
recipe (Chekalina et al., arXiv:1812.01319) pre-trains a condition regressor on the training showers first
(:mod:`calogen.gan.train.regressor`) and uses it, frozen, in the generator loss.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from calogen.gan.nets import build_discriminator, build_generator, build_regressor
from calogen.gan.objectives import GANObjective, build_objective
from calogen.gan.preprocess import from_network_card
from calogen.gan.runs import Progress, RunDirectory, utc_now
from calogen.gan.train.checkpoint import (
    Networks,
    TrainState,
    export_model,
    keep_epoch_generator,
    load_checkpoint,
    restore,
    save_checkpoint,
    select_epoch,
)
from calogen.gan.train.config import TrainConfig, check_config, planned_steps, resolve_device, stage_of, stages
from calogen.gan.train.data import MCSource, ShowerFileSource, heldout_showers, resolve_preprocessing, sample_conditions
from calogen.gan.train.distributed import any_rank, average_gradients, barrier, broadcast_module, rank_device
from calogen.gan.train.distributed import init as init_distributed
from calogen.gan.train.distributed import shutdown as shutdown_distributed
from calogen.gan.train.regressor import build as build_regressor_net
from calogen.gan.train.regressor import collect_showers
from calogen.gan.train.regressor import evaluate as evaluate_regressor
from calogen.gan.train.regressor import pretrain as pretrain_regressor
from calogen.gan.train.stopping import Stop, StopNow
from calogen.memory import keep_freed_memory
from calogen.showers import ShowerSet

__all__ = ["TrainingFailed", "heldout_sf_error", "train"]


class TrainingFailed(RuntimeError):
    """Training started and then failed; status.json says ``failed`` with the message."""


def train(config: TrainConfig, *, resume: bool = False, max_steps: int | None = None) -> Path:
    """Train (or with ``resume`` continue) the run in ``config.run_dir``; returns the run directory.

    ``max_steps``: stop after this many steps of this call as SIGTERM would (checkpoint, status ``cancelled``
    with the reason), so that a run can be advanced in slices and resumed.

    Rank 0 writes the run directory. Ends with status ``finished`` (and run_dir/model exported), or
    ``cancelled`` after SIGTERM/SIGINT (checkpoint saved; the step in progress is cut short, see
    :class:`calogen.gan.train.stopping.Stop`), or ``failed`` with the exception message (raised as
    :class:`TrainingFailed`). Problems found before training starts (:func:`check_config`, a run directory in
    use) raise ValueError / FileNotFoundError / RuntimeError and leave status.json alone.
    """
    rank, world = init_distributed(resolve_device(config.device).type)
    check_config(config, world=world)
    run = RunDirectory(config.run_dir, writer=rank == 0)
    stop = Stop(immediate=world == 1)
    locked = False
    if run.writer:
        if not resume and run.last.exists():
            raise ValueError(f"{run.path} already holds a checkpoint; continue it with --resume {run.path} or "
                             "choose a new --run-dir")
        if resume and not run.last.exists():
            raise FileNotFoundError(f"{run.last} does not exist, so {run.path} cannot be resumed; start a new run")
        run.path.mkdir(parents=True, exist_ok=True)
        run.acquire_lock()
        locked = True
    stop.install()
    try:
        _train(config, run, stop, rank=rank, world=world, resume=resume, max_steps=max_steps)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        run.log("failed: " + message + "\n" + traceback.format_exc())
        run.status("failed", exit_reason=message)
        raise TrainingFailed(f"training in {run.path} failed: {message}") from exc
    except StopNow as exc:  # during set-up, before the first step of this call
        message = (f"{exc} while setting up, before the first step; "
                   + (f"the checkpoint is unchanged; continue with --resume {run.path}" if resume
                      else "nothing to resume from yet; start the run again"))
        run.log(message)
        run.status("cancelled", exit_reason=message)
    except BaseException as exc:
        run.status("failed", exit_reason=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        stop.restore()
        if locked:
            run.release_lock()
        shutdown_distributed(world)
    return run.path


def _optimisers(config: TrainConfig, generator: torch.nn.Module, discriminator: torch.nn.Module,
                ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    if config.recipe == "3dgan":  # RMSprop lr 1e-3 for both networks (3DGAN training script)
        return (torch.optim.RMSprop(generator.parameters(), lr=config.lr),
                torch.optim.RMSprop(discriminator.parameters(), lr=config.lr))
    # WGAN-GP: Adam with beta1 = 0, beta2 = 0.9 (Gulrajani et al. 2017, algorithm 1)
    return (torch.optim.Adam(generator.parameters(), lr=config.lr, betas=(0.0, 0.9)),
            torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=(0.0, 0.9)))


def _autocast(device: torch.device, enabled: bool) -> AbstractContextManager[Any]:
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


class _AutocastModule(torch.nn.Module):
    """Runs the wrapped network under bf16 autocast (CUDA); keeps its forward signature visible."""

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        super().__init__()
        self.module = module
        self._device = device

    def forward(self, *args: Any) -> Any:
        with _autocast(self._device, True):
            return self.module(*args)


def _ac(module: torch.nn.Module, device: torch.device, bf16: bool) -> torch.nn.Module:
    return _AutocastModule(module, device) if bf16 and device.type == "cuda" else module


def _heldout_phase(config: TrainConfig) -> str:
    """What a preparing run does before its first step, in words, for the status and the app."""
    if config.heldout is not None:
        return f"reading the held-out showers of {config.heldout}"
    if config.data == "mc":
        return f"simulating {config.heldout_mc} held-out Monte Carlo showers (minutes on a CPU)"
    return f"reading the held-out tail of {config.data}"


def _latent_dim(generator: torch.nn.Module) -> int:
    """The generator's noise size (every calogen generator has a ``latent_dim`` attribute)."""
    return int(cast(int, generator.latent_dim))


@torch.no_grad()
def _generate_gev(generator: torch.nn.Module, energy: np.ndarray, theta: np.ndarray, *, preprocessing: dict[str, Any],
                  device: torch.device, seed: int, batch: int = 64) -> np.ndarray:
    """Showers (N, X, Y, Z) in GeV from the generator at energy (N,) GeV and theta (N,) rad, seeded noise."""
    was_training = generator.training
    generator.eval()
    noise_rng = torch.Generator().manual_seed(seed)
    out = []
    for lo in range(0, len(energy), batch):
        e = torch.as_tensor(energy[lo:lo + batch], dtype=torch.float32, device=device)
        t = torch.as_tensor(theta[lo:lo + batch], dtype=torch.float32, device=device)
        noise = torch.randn(len(e), _latent_dim(generator), generator=noise_rng).to(device)
        out.append(from_network_card(generator(e, t, noise).float(), preprocessing).cpu().numpy())
    generator.train(was_training)
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def heldout_sf_error(heldout: ShowerSet, generated_gev: np.ndarray) -> float:
    """The 3DGAN sampling-fraction error of generated showers (N, X, Y, Z) GeV made at the held-out showers'
    conditions, measured by :func:`calogen.validation.binning.sf_mre` over equal-count energy bins."""
    from calogen.validation.binning import ConditionBins, sf_mre
    from calogen.validation.features import sampling_fraction

    conditions = heldout.conditions
    bins = ConditionBins.energy_quantiles(heldout.energy_gev)
    return sf_mre(sampling_fraction(heldout.showers, heldout.energy_gev), conditions,
                  sampling_fraction(generated_gev, heldout.energy_gev), conditions, bins, min_count=1)


def _prepare_regressor(config: TrainConfig, run: RunDirectory, nets: Networks, source: MCSource | ShowerFileSource,
                       heldout: ShowerSet | None, ckpt: dict[str, Any] | None, *, device: torch.device,
                       world: int, state: TrainState) -> None:
    """The frozen condition regressor of the wgan-gp recipe: from the checkpoint when resuming, otherwise
    pre-trained on up to ``regressor_showers`` training showers (every rank on its shard, then rank 0's weights
    everywhere) and measured on the held-out showers (metrics.csv row, log, model card)."""
    if ckpt is not None and "regressor" in ckpt:
        net = build_regressor(config.arch, **ckpt["regressor_kwargs"]).to(device)
        net.load_state_dict(ckpt["regressor"])
        nets.regressor, nets.regressor_kwargs = net.eval().requires_grad_(False), dict(ckpt["regressor_kwargs"])
        nets.regressor_fit = dict(ckpt["regressor_fit"])
        return
    showers, energy, theta = collect_showers(source.batches(0, config.energy_range_gev),
                                                        config.regressor_showers)
    net, kwargs = build_regressor_net(config, tuple(showers.shape[1:]), device)
    run.log(f"pre-training the condition regressor ({config.arch}) on {len(energy)} training showers, "
            f"{config.regressor_steps} steps")
    start = time.monotonic()
    losses = pretrain_regressor(net, showers, energy, theta, steps=config.regressor_steps, seed=config.seed + 37)
    broadcast_module(net, world)
    fit: dict[str, Any] = {"training_showers": len(energy), "steps": config.regressor_steps,
                           "final_training_error": losses[-1], "weight": config.regressor_weight}
    if heldout is not None:
        fit.update(evaluate_regressor(net, heldout, config, device=device, mean_energy_gev=energy.mean().item(),
                                      mean_theta_rad=theta.mean().item()))
        run.metrics({"step": state.step, "epoch": state.epoch, "stage": 0,
                     "regressor_heldout_error": fit["heldout_error"], "time_s": 0.0})
        run.log(f"condition regressor pre-trained in {time.monotonic() - start:.1f} s: held-out error "
                f"{fit['heldout_error']:.4f} (energy {fit['energy_relative_error']:.2%}, angle "
                f"{fit['angle_error_rad'] * 1e3:.1f} mrad) against {fit['mean_prediction_error']:.4f} for "
                f"predicting the mean, on {fit['showers']} held-out showers")
    nets.regressor, nets.regressor_kwargs, nets.regressor_fit = net, kwargs, fit


def _train(config: TrainConfig, run: RunDirectory, stop: Stop, *, rank: int, world: int, resume: bool,
           max_steps: int | None = None) -> None:
    # (0) set-up: device, networks, optimisers, data, objective, state
    if config.threads:
        torch.set_num_threads(config.threads)
    device = rank_device(resolve_device(config.device), world)
    if device.type == "cpu":
        keep_freed_memory()  # freed tensors reused instead of faulted in again (calogen.memory)
    torch.manual_seed(config.seed + 1000 * rank)
    generator = build_generator(config.arch, **config.generator_config).to(device)
    discriminator = build_discriminator(config.arch, **config.discriminator_config).to(device)
    nets = Networks(generator, discriminator, *_optimisers(config, generator, discriminator))
    if config.preprocessing is None:
        with stop.interruptible():
            config.preprocessing = resolve_preprocessing(config, device)
    schedule = stages(config)
    total_epochs = schedule[-1].first_epoch + schedule[-1].epochs
    flip_rng = torch.Generator().manual_seed(config.seed + 7919 * rank)
    state = TrainState()
    ckpt = load_checkpoint(run.last, map_location=device) if resume else None
    if ckpt is not None:
        restore(ckpt, nets, state, flip_rng)
    broadcast_module(generator, world)
    broadcast_module(discriminator, world)
    run.prepare(config.to_dict())
    run.status("preparing", pid=os.getpid(), pgid=os.getpgid(0), phase=_heldout_phase(config))
    with stop.interruptible():  # simulating the held-out showers can take minutes on a CPU
        heldout, data_stop = heldout_showers(config, run, needed=run.writer, device=device)
    if config.data == "mc":
        source: ShowerFileSource | MCSource = MCSource(config, device=device, rank=rank, world=world)
    else:
        source = ShowerFileSource(config.data, config, device=device, rank=rank, world=world, stop=data_stop)
    if config.recipe == "wgan-gp":
        run.status("preparing", phase="pre-training the condition regressor")
        with stop.interruptible():
            _prepare_regressor(config, run, nets, source, heldout, ckpt, device=device, world=world, state=state)
    objective: GANObjective = build_objective(config.recipe, preprocessing=config.preprocessing,
                                              regressor=nets.regressor, regressor_weight=config.regressor_weight)
    # fixed monitoring batch: conditions and noise seed
    monitor_e, monitor_t = sample_conditions(config.condition_range, 16, np.random.default_rng([config.seed, 5]))
    progress = Progress(total=planned_steps(config, world=world), first_step=state.step)
    run.status("running", pid=os.getpid(), pgid=os.getpgid(0), started=utc_now(), world_size=world, phase=None,
               step=state.step, epoch=state.epoch, total_epochs=total_epochs, resumed=resume,
               exit_reason=None, ended=None, **progress.fields(state.step))
    run.log(f"{'resumed' if resume else 'started'} {config.recipe} training of {config.arch} on {config.data}: "
            f"step {state.step}/{progress.total}, epoch {state.epoch}/{total_epochs}, {world} process(es), "
            f"device {device}")
    clock = time.monotonic() - state.wall_time_s
    first_step = state.step
    latent_dim = _latent_dim(generator)

    def gan_step(real: torch.Tensor, energy: torch.Tensor, theta: torch.Tensor,
                 ) -> tuple[float, float | None, dict[str, float]]:
        """One training step on a real batch; returns loss_d, loss_g (None without a generator update) and the
        objective's heads. Optimiser updates are never cut in half by a stop request (``stop.deferred``)."""
        # (1) discriminator update(s): the fake batch uses the real batch's conditions
        with torch.no_grad(), _autocast(device, config.bf16):
            noise = torch.randn(len(energy), latent_dim, device=device)
            fake = generator(energy, theta, noise).float()
        loss_d_total = 0.0
        parts_d: dict[str, float] = {}
        for loss_d, parts_d in objective.discriminator_updates(
                _ac(discriminator, device, config.bf16), real, fake, energy, theta, flip_rng):
            nets.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            with stop.deferred():
                average_gradients(discriminator, world)
                nets.opt_d.step()
            loss_d_total += loss_d.item()

        # (2) generator update(s), through a frozen discriminator
        loss_g_total: float | None = None
        parts_g: dict[str, float] = {}
        if (state.step + 1) % objective.critic_steps == 0:
            discriminator.requires_grad_(False)
            real_sum = objective.to_gev(real).sum(dim=(1, 2, 3))  # (B,) GeV, target of the sum head
            loss_g_total = 0.0
            for _ in range(objective.generator_steps):
                noise = torch.randn(len(energy), latent_dim, device=device)
                with _autocast(device, config.bf16):
                    fake = generator(energy, theta, noise).float()
                loss_g, parts_g = objective.generator_loss(
                    _ac(discriminator, device, config.bf16), fake, real_sum, energy, theta)
                nets.opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                with stop.deferred():
                    average_gradients(generator, world)
                    nets.opt_g.step()
                loss_g_total += loss_g.item() / objective.generator_steps
            discriminator.requires_grad_(True)
        return loss_d_total, loss_g_total, {**parts_d, **parts_g}

    def checkpoint(rng: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        state.wall_time_s = time.monotonic() - clock
        save_checkpoint(run, config, state, nets, stage=stage_of(schedule, state.epoch).index,
                        rng=rng or (torch.get_rng_state(), flip_rng.get_state()))

    def cancel(reason: str, *, cut_short: bool = False, rng: tuple[torch.Tensor, torch.Tensor] | None = None,
               ) -> None:
        discriminator.requires_grad_(True)
        checkpoint(rng=rng)
        cut = f" (step {state.step + 1} was cut short; resuming repeats it)" if cut_short else ""
        message = (f"{reason}: stopped at step {state.step}{cut} (epoch {state.epoch}); checkpoint saved; "
                   f"continue with python -m calogen train --resume {run.path}")
        run.log(message)
        run.status("cancelled", exit_reason=message, step=state.step, epoch=state.epoch, eta_s=None)

    for epoch in range(state.epoch, total_epochs):
        stage = stage_of(schedule, epoch)
        if stage.index > 0 and epoch == stage.first_epoch and state.step_in_epoch == 0:
            # warm start of the next stage: same weights, fresh optimisers (a new Keras run in 3DGAN)
            nets.opt_g, nets.opt_d = _optimisers(config, generator, discriminator)
            run.log(f"stage {stage.index}: warm start on {stage.energy_range_gev} GeV")
        batches = source.batches(epoch, stage.energy_range_gev, skip=state.step_in_epoch)
        while config.steps_per_epoch is None or state.step_in_epoch < config.steps_per_epoch:
            # (1)-(2) the batch and the discriminator / generator updates; a stop request ends them at once
            rng_at_start = (torch.get_rng_state(), flip_rng.get_state())
            try:
                with stop.interruptible():
                    batch = next(batches, None)
                    if any_rank(batch is None, world, device):
                        break
                    assert batch is not None
                    loss_d_total, loss_g_total, heads = gan_step(*batch)
            except StopNow as exc:
                cancel(str(exc), cut_short=True, rng=rng_at_start)
                return

            # (3) bookkeeping: metrics, status and progress, periodic checkpoint, stop request
            state.step += 1
            state.step_in_epoch += 1
            if not all(math.isfinite(v) for v in [loss_d_total, *(heads.values())]):
                raise FloatingPointError(f"non-finite loss at step {state.step}: loss_d={loss_d_total}, "
                                         f"heads={heads}; lower the learning rate or check the data")
            run.metrics({"step": state.step, "epoch": epoch, "stage": stage.index, "loss_d": loss_d_total,
                         "loss_g": loss_g_total, **heads, "time_s": round(time.monotonic() - clock, 3)})
            run.status("running", step=state.step, epoch=epoch, **progress.fields(state.step))
            if progress.due():
                run.log(progress.line(state.step, epoch, total_epochs, loss_d_total, loss_g_total))
            if state.step % config.checkpoint_every == 0:
                checkpoint()
            if max_steps is not None and state.step - first_step >= max_steps:
                stop.reason = stop.reason or f"step limit reached (max_steps={max_steps})"
            if any_rank(stop.reason is not None, world, device):
                cancel(stop.reason or "stop requested by another process")
                return

        # (4) epoch end: held-out sampling-fraction error, keep the last K generators
        if state.step_in_epoch == 0:
            t_lo, t_hi = config.condition_range.theta_deg
            raise ValueError(
                f"epoch {epoch} had no batch of {config.batch} showers in {stage.energy_range_gev} GeV and "
                f"{t_lo:.4g}-{t_hi:.4g} deg after the loader cuts; check the data file, ranges and --batch")
        if config.data != "mc":  # an epoch of a file pass is now measured: the plan follows it
            progress.total = state.step + (total_epochs - epoch - 1) * state.step_in_epoch
        state.epoch = epoch + 1
        state.step_in_epoch = 0
        if heldout is not None:
            lo, hi = stage.energy_range_gev
            sel = (heldout.energy_gev >= lo) & (heldout.energy_gev <= hi)
            held = heldout.select(sel) if sel.sum() >= 2 else heldout
            fake_gev = _generate_gev(generator, held.energy_gev, held.theta_rad, preprocessing=config.preprocessing,
                                     device=device, seed=config.seed + 17)
            sf_error = heldout_sf_error(held, fake_gev)
            monitor = _generate_gev(generator, monitor_e, monitor_t, preprocessing=config.preprocessing,
                                    device=device, seed=config.seed + 5)
            state.history.append({"epoch": epoch, "stage": stage.index, "sf_error": sf_error})
            run.metrics({"step": state.step, "epoch": epoch, "stage": stage.index, "sf_error": sf_error,
                         "time_s": round(time.monotonic() - clock, 3)})
            run.log(f"epoch {epoch} (stage {stage.index}) done at step {state.step}: SF error {sf_error:.4f} "
                    f"on {len(held)} held-out showers; monitoring batch mean deposit "
                    f"{float(monitor.sum(axis=(1, 2, 3)).mean()):.3f} GeV")
            keep_epoch_generator(run, generator, epoch=epoch, stage=stage.index, sf_error=sf_error,
                                 step=state.step, keep=config.select_last_k)
            checkpoint()
        barrier(world)
        if any_rank(stop.reason is not None, world, device):
            cancel(stop.reason or "stop requested by another process")
            return

    # (5) final model: the smallest SF error among the last K epochs of the final stage
    if run.writer:
        best = select_epoch(state.history, stage=schedule[-1].index, last_k=config.select_last_k)
        state.wall_time_s = time.monotonic() - clock
        model_dir = export_model(run, config, nets, state, chosen=best, device=device)
        checkpoint()
        run.log(f"finished: selected epoch {best['epoch']} (SF error {best['sf_error']:.4f}); model in {model_dir}")
        run.status("finished", exit_reason="completed", selected_epoch=int(best["epoch"]),
                   sf_error=float(best["sf_error"]), model_dir=str(model_dir), step=state.step,
                   total_steps=state.step, percent=100.0, eta_s=0.0)

"""``python -m calogen train``: train a shower GAN into a run directory.

Several processes (data parallel): ``torchrun --nproc_per_node=K -m calogen train ...``. Angles are typed in
degrees here and converted to radians once, in :func:`config_from_args`.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from calogen.cli._common import CliError

if TYPE_CHECKING:
    from calogen.gan.train import TrainConfig

__all__ = ["add_arguments", "config_from_args", "main", "register", "run"]

_MC_STEPS_PER_EPOCH = 100  # default epoch length when showers are simulated on the fly


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training options of ``python -m calogen train`` (and of :func:`main`)."""
    parser.add_argument("--arch", default="conv3d", help="network architecture (calogen.gan.nets), e.g. conv3d, conv2d")
    parser.add_argument("--recipe", choices=("3dgan", "wgan-gp"), default="3dgan",
                        help="GAN objective and optimisers: 3dgan (RMSprop, 4 heads) or wgan-gp (Adam, GP 10)")
    parser.add_argument("--data", default="mc",
                        help="'mc' to simulate showers on the fly, or a shower file (HDF5) to stream")
    parser.add_argument("--energy-range", type=float, nargs=2, default=(2.0, 500.0), metavar=("LO", "HI"),
                        help="primary energy range, GeV (final stage with --two-step)")
    parser.add_argument("--theta-range", type=float, nargs=2, default=(60.0, 120.0), metavar=("LO", "HI"),
                        help="polar-angle range, degrees")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (of the final stage with --two-step)")
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help=f"steps per epoch (default {_MC_STEPS_PER_EPOCH} for --data mc, a full pass for a file)")
    parser.add_argument("--batch", type=int, default=64, help="showers per step and process (3DGAN: 64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate of both optimisers")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default=None,
                        help="where to train (default auto: CUDA if present)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast of the forward passes (CUDA)")
    parser.add_argument("--two-step", action="store_true",
                        help="3DGAN schedule: first 100-200 GeV (--stage1-epochs), then the full --energy-range")
    parser.add_argument("--stage1-epochs", type=int, default=5, help="epochs of the 100-200 GeV stage")
    parser.add_argument("--select-last-k", type=int, default=10,
                        help="final model: smallest held-out SF error among the last K epochs")
    parser.add_argument("--heldout", default=None, help="held-out shower file for the per-epoch SF error")
    parser.add_argument("--heldout-size", type=int, default=100,
                        help="held-out showers simulated (--data mc) or taken from the end of the data file")
    parser.add_argument("--generator-config", type=json.loads, default={}, metavar="JSON",
                        help="keyword arguments of the generator as JSON, e.g. '{\"latent_dim\": 254}'")
    parser.add_argument("--discriminator-config", type=json.loads, default={}, metavar="JSON",
                        help="keyword arguments of the discriminator as JSON")
    parser.add_argument("--regressor-weight", type=float, default=None,
                        help="wgan-gp: weight of the pre-trained condition regressor's error in the generator loss "
                             "(default 10; 0 switches it off)")
    parser.add_argument("--regressor-steps", type=int, default=300,
                        help="wgan-gp: pre-training steps of the condition regressor")
    parser.add_argument("--regressor-showers", type=int, default=1024,
                        help="wgan-gp: training showers the condition regressor is pre-trained on")
    parser.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--run-dir", default=None, help="run directory (default runs/<arch>-<recipe>)")
    parser.add_argument("--resume", metavar="RUNDIR", default=None,
                        help="continue the run in RUNDIR at its saved step, epoch and stage")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop (checkpoint, status cancelled) after this many steps of this invocation")
    parser.add_argument("--config", metavar="JSON", default=None,
                        help="read the training options from a config.json (as calogen.gan.jobs writes)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser("train", help="train a GAN (run directory, checkpoints, resume)",
                                   description="Train a conditional shower GAN; writes config.json, metrics.csv, "
                                               "log.txt, status.json, checkpoints/ and model/ in the run "
                                               "directory. SIGTERM saves a checkpoint and exits cleanly.")
    add_arguments(parser)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A :class:`calogen.gan.train.TrainConfig` from parsed options (or from ``--config`` / ``--resume``, whose
    config.json may still hold degrees: :meth:`TrainConfig.from_dict` converts them); ``--theta-range`` is
    converted from degrees to radians here."""
    from calogen.gan.train import TrainConfig

    command = " ".join(shlex.quote(a) for a in ["python", "-m", "calogen", *sys.argv[1:]])
    try:
        if args.resume is not None:
            path = Path(args.resume) / "config.json"
            if not path.is_file():
                raise CliError(f"--resume {args.resume}: no config.json there; give the directory of a run")
            values = json.loads(path.read_text())
            values["run_dir"] = str(args.resume)
            if args.device is not None:
                values["device"] = args.device
            return TrainConfig.from_dict(values)
        if args.config is not None:
            values = json.loads(Path(args.config).read_text())
            if args.run_dir is not None:
                values["run_dir"] = args.run_dir
            return TrainConfig.from_dict(values)
        steps = args.steps_per_epoch
        if steps is None and args.data == "mc":
            steps = _MC_STEPS_PER_EPOCH
        theta_lo, theta_hi = args.theta_range
        if not 0.0 < theta_lo <= theta_hi < 180.0:
            raise CliError(f"--theta-range {theta_lo:g} {theta_hi:g}: give LO HI in degrees with 0 < LO <= HI < 180")
        return TrainConfig(
            arch=args.arch, recipe=args.recipe, data=args.data, energy_range_gev=tuple(args.energy_range),
            theta_range_rad=(math.radians(theta_lo), math.radians(theta_hi)),
            epochs=args.epochs, steps_per_epoch=steps, batch=args.batch,
            lr=args.lr, seed=args.seed, device=args.device or "auto", bf16=args.bf16,
            select_last_k=args.select_last_k, heldout=args.heldout, heldout_mc=args.heldout_size,
            two_step=args.two_step, stage1_epochs=args.stage1_epochs, checkpoint_every=args.checkpoint_every,
            threads=args.threads, generator_config=args.generator_config,
            discriminator_config=args.discriminator_config, regressor_steps=args.regressor_steps,
            regressor_showers=args.regressor_showers,
            regressor_weight=TrainConfig.regressor_weight if args.regressor_weight is None else args.regressor_weight,
            run_dir=args.run_dir or f"runs/{args.arch}-{args.recipe}", command=command,
        )
    except (OSError, json.JSONDecodeError) as exc:
        raise CliError(f"cannot read the training configuration: {exc}") from exc
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:
    """Train; 0 when finished or cancelled by SIGTERM (checkpoint saved), 1 when training failed."""
    from calogen.gan.train import TrainingFailed, check_config, train

    config = config_from_args(args)
    try:
        check_config(config)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    try:
        train(config, resume=args.resume is not None, max_steps=args.max_steps)
    except TrainingFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        raise CliError(str(exc)) from exc
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry for ``python -m calogen.cli.train``: the ``train`` command alone (``python -m calogen train`` is the
    same through the top-level parser)."""
    parser = argparse.ArgumentParser(prog="python -m calogen.cli.train", description="Train a shower GAN.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (CliError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

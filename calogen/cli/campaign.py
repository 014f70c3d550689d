"""``python -m calogen campaign``: train a factorised generator for a while, resumably, and export it.

    python -m calogen produce --source mc --particle e- --energy-range 2 500 --theta-range 60 120 -n 20000 \\
        --shard-size 100 --seed 20261202 --out runs/train-mc --workers 2
    python -m calogen campaign --arch factorised-conv2d --data runs/train-mc --run campaign-conv2d --minutes 60 \\
        --export models/conv2d
    python -m calogen validate --model models/conv2d --reference data/reference.h5 --update-card

Running the same ``campaign`` command again resumes from ``runs/<run>/checkpoint.pt``. On a machine whose
``runs/`` is new, ``--from-model models/conv2d`` starts the run from the committed model folder (its generator,
critic and the campaign's account in its card) and the campaign goes on from there:

    python -m calogen campaign --arch factorised-conv2d --data runs/train-mc --run campaign3-conv2d --minutes 60 \
        --from-model models/conv2d --export models/conv2d
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch

from calogen.cli._common import CliError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``campaign`` sub-command."""
    parser = subparsers.add_parser(
        "campaign",
        help="train a factorised generator (energy flow x shape GAN) for a time budget, resumably",
        description="Train a factorised generator: a normalising flow for the 25 layer energies and a 3D-conv or "
        "Conv2D GAN for the per-layer shapes, for MINUTES of wall time; the run folder keeps one checkpoint, "
        "progress.json and monitor.jsonl, and the same command resumes it. --export writes a model folder.",
    )
    parser.add_argument("--arch", choices=("factorised-conv2d", "factorised-conv3d"), required=True)
    parser.add_argument("--data", required=True,
                        help="a `calogen produce` folder or a native shower file (never the held-out reference)")
    parser.add_argument("--run", required=True, help="run name: the checkpoint lives in runs/<run>/")
    parser.add_argument("--minutes", type=float, required=True,
                        help="wall-time budget of this session, minutes (0 with --export: export the checkpoint only)")
    parser.add_argument("--from-model", metavar="MODEL_DIR", default=None,
                        help="start the run from this model folder (weights, critic, the card's account) when "
                        "runs/<run> has no checkpoint yet; with one, the run resumes and this is not read")
    parser.add_argument("--refit-flow", action="store_true",
                        help="fit the energy flow again on this session's data (a production that has grown)")
    parser.add_argument("--export", metavar="MODEL_DIR", default=None,
                        help="write the model folder (weights + card) at the end")
    parser.add_argument("--export-best", action="store_true",
                        help="with --export: the weights of the last session's best monitored point (the lowest KPD "
                        "against the monitoring showers, the session's start included) instead of the last ones")
    parser.add_argument("--status", default=None,
                        help="the card's one-line account of how far the campaign got (default: in progress)")
    parser.add_argument("--batch-size", type=int, default=64, help="showers per step (default 64)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lr-generator", type=float, default=1e-4, help="shape generator learning rate (1e-4)")
    parser.add_argument("--lr-critic", type=float, default=2e-4, help="critic learning rate (2e-4)")
    parser.add_argument("--instance-noise", type=float, default=0.0,
                        help="std of the noise on the critic's log1p view at step 0, falling to 0 over 20,000 steps")
    parser.add_argument("--hit-width", type=float, default=0.25,
                        help="width of the soft hit count's sigmoid in ln(cell energy) (default 0.25)")
    parser.add_argument("--dense-hits", action="store_true",
                        help="count the generator's hits on its density before the cell threshold (a gradient "
                        "also for the cells the threshold empties), the Monte Carlo's with the same soft count")
    parser.add_argument("--channels", type=int, nargs=3, metavar=("C0", "C1", "C2"), default=None,
                        help="shape generator channels at the coarse, middle and full resolution (default 64 32 8; "
                        "conv2d uses the first two)")
    parser.add_argument("--speckle-dim", type=int, default=None,
                        help="noise values behind the per-cell speckle field (default 32; 0: a smooth shape)")
    parser.add_argument("--threshold-mev", type=float, default=None,
                        help="cells below this energy are empty, MeV (default 0.05)")
    parser.add_argument("--axis-shear", action="store_true",
                        help="the shape generator draws each shower in its own frame and a fixed shear puts its "
                        "layers on the incidence axis (a new run's setting, which a run keeps; it may also be "
                        "switched on for a run started with --from-model from a folder trained without it)")
    parser.add_argument("--entry-offset", action="store_true",
                        help="two more latent values place each shower within its central cell, uniform over "
                        "+-0.5 cells in x and y as the particle's entry point (a new run's setting, which a run "
                        "keeps; it may also be switched on with --from-model)")
    parser.add_argument("--speckle-cap", type=float, default=None, metavar="C",
                        help="bound the speckle field as C tanh(eps / C) (C > 0; default: unbounded), so that no "
                        "cell far from the axis holds many times its mean (a new run's setting, which a run keeps; "
                        "it may also be switched on with --from-model)")
    parser.add_argument("--speckle-after-shear", action="store_true",
                        help="with --axis-shear: shear the mean logits and the spread, then add the speckle field, "
                        "so that the field has the same strength at every angle (sheared with the logits it is "
                        "weakened by the interpolation except where a shift is a whole number of cells, as at 90 "
                        "deg; a new run's setting, which a run keeps; it may also be switched on with --from-model)")
    parser.add_argument("--spline-placement", action="store_true",
                        help="with --speckle-after-shear: move the mean logits and the spread by the quadratic "
                        "B-spline instead of linear interpolation, which smooths every cell alike wherever the "
                        "shower sits in its cell (linearly, the hit count follows the entry offset; a new run's "
                        "setting, which a run keeps; it may also be switched on with --from-model)")
    parser.add_argument("--angle-groups", type=float, nargs="+", default=None, metavar="DEG",
                        help="edges of the incidence-angle groups within which the physics constraints compare "
                        "batch means, degrees (default 80 100)")
    parser.add_argument("--energy-groups", type=float, nargs="+", default=None, metavar="GEV",
                        help="compare the batch means of the physics constraints (widths, hits, rings, core) within "
                        "these energy groups too, GeV edges (e.g. 12.6 79.4: three groups of equal counts over "
                        "2-500 GeV log-uniform; default: all energies of an angle group together)")
    parser.add_argument("--width-weight", type=float, default=1.0,
                        help="weight of the layer-width constraint in the generator loss (default 1)")
    parser.add_argument("--width-per-axis", action="store_true",
                        help="the width constraints compare each layer's x and y width, as validate measures them "
                        "(default: the radial width)")
    parser.add_argument("--angle-weight", type=float, default=1.0,
                        help="weight of the per-shower measured-angle constraint, radians (default 1)")
    parser.add_argument("--axis-weight", type=float, default=1.0,
                        help="weight of the per-shower axis constraint: each layer's barycentre against that of the "
                        "Monte Carlo shower drawn with the same conditions and layer energies, cells (default 1; it "
                        "pulls every shower to the same axis, so it also damps how far layers stray from it)")
    parser.add_argument("--spread-weight", type=float, default=0.0,
                        help="weight of the constraint on how much the layer widths and hit counts vary from shower "
                        "to shower within the condition groups (default 0: off)")
    parser.add_argument("--paired-hits-weight", type=float, default=0.0,
                        help="weight of the per-shower hit-count constraint: each generated shower's log(1 + hits) "
                        "against that of the Monte Carlo shower whose conditions and layer energies it was drawn "
                        "with (default 0: off)")
    parser.add_argument("--angle-bias-weight", type=float, default=0.0,
                        help="weight of the gap between the generated and Monte Carlo mean axis angle (a straight "
                        "line through the layer barycentres against depth, as validate measures it), radians, "
                        "within the condition groups (default 0: off)")
    parser.add_argument("--axis-spread-weight", type=float, default=0.0,
                        help="weight of the constraint on how far single layers' barycentres stray from the shower's "
                        "own straight axis, shower to shower (|ln rms| per layer, within the condition groups; "
                        "default 0: off)")
    parser.add_argument("--adversarial-weight", type=float, default=1.0,
                        help="weight of the critic's term in the generator loss (default 1; 0: the physics "
                        "constraints alone)")
    parser.add_argument("--feature-adversarial-weight", type=float, default=0.0,
                        help="weight of a second critic's term, a critic that sees the high-level features of the "
                        "validation's classifier test (each layer's barycentre and width in x and y, the hit count; "
                        "default 0: off)")
    parser.add_argument("--feature-critic-gain", type=float, default=0.0,
                        help="> 0: that critic sees its features standardised on training showers and multiplied by "
                        "this, so that its bounded slope can tell differences of a fraction of a standard deviation "
                        "(default 0: the raw features)")
    parser.add_argument("--ema-decay", type=float, default=0.0,
                        help="average the shape generator's weights over the steps, with this decay per step (e.g. "
                        "0.9995: the last ~2,000 steps count); the average is monitored, kept as the best point "
                        "and exported (default 0: the last step's weights)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where to train: cpu (the default) or cuda (the nets, the energy flow's fit and the "
                        "training showers on the GPU; the card records each session's device)")


def run(args: argparse.Namespace) -> int:
    """Run the campaign session, then export when asked."""
    from calogen.gan.factorised.campaign import CHECKPOINT, DEFAULT_SHAPE, CampaignConfig, run_campaign
    from calogen.gan.factorised.export import checkpoint_from_model
    from calogen.gan.factorised.model import build_factorised
    from calogen.gan.factorised.shape_nets import OFFSET_DIM, ShapeConfig
    from calogen.gan.factorised.shower_figures import ANGLE_GROUP_EDGES_DEG
    from calogen.gan.jobs import RunError, run_path

    if args.minutes < 0 or (args.minutes == 0 and not args.export):
        raise CliError(f"--minutes {args.minutes:g}: give a positive budget, or 0 together with --export")
    if args.threads < 1:
        raise CliError(f"--threads {args.threads} must be at least 1")
    try:
        run_dir = run_path(args.run)
    except RunError as exc:
        raise CliError(str(exc)) from None
    torch.set_num_threads(args.threads)
    command = "python -m calogen " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.export_best and not args.export:
        raise CliError("--export-best says which weights --export writes: give --export MODEL_DIR too")
    if args.minutes == 0:
        folder = _export(run_dir, args)
        print(f"wrote {folder} from {run_dir}")
        return 0
    shape = dict(DEFAULT_SHAPE)
    if args.channels is not None:
        if min(args.channels) < 1:
            raise CliError(f"--channels {' '.join(map(str, args.channels))}: every count must be at least 1")
        shape["channels"] = list(args.channels)
    if args.speckle_dim is not None:
        shape["speckle_dim"] = args.speckle_dim
    if args.threshold_mev is not None:
        shape["threshold_gev"] = args.threshold_mev / 1000.0
    if args.axis_shear:
        shape["axis_shear"] = True
    if args.entry_offset:
        shape["entry_offset"] = True
        shape["latent_dim"] = ShapeConfig.latent_dim + OFFSET_DIM
    if args.speckle_cap is not None:
        if not args.speckle_cap > 0.0:
            raise CliError(f"--speckle-cap {args.speckle_cap:g}: give a positive bound (leave it out for none)")
        shape["speckle_cap"] = args.speckle_cap
    if args.speckle_after_shear:
        if not args.axis_shear:
            raise CliError("--speckle-after-shear orders the speckle field and the axis shear: give --axis-shear too")
        shape["speckle_after_shear"] = True
    if args.spline_placement:
        if not args.speckle_after_shear:
            raise CliError("--spline-placement moves the mean logits and the spread: give --speckle-after-shear too")
        shape["spline_placement"] = True
    try:
        config = CampaignConfig(arch=args.arch, data=args.data, batch_size=args.batch_size, seed=args.seed,
                                shape=shape, lr_generator=args.lr_generator, lr_critic=args.lr_critic,
                                instance_noise=args.instance_noise, hit_width=args.hit_width,
                                dense_hits=args.dense_hits, width_weight=args.width_weight,
                                width_per_axis=args.width_per_axis, angle_weight=args.angle_weight,
                                axis_weight=args.axis_weight,
                                spread_weight=args.spread_weight, paired_hits_weight=args.paired_hits_weight,
                                adversarial_weight=args.adversarial_weight,
                                feature_adversarial_weight=args.feature_adversarial_weight,
                                feature_critic_gain=args.feature_critic_gain,
                                ema_decay=args.ema_decay,
                                angle_bias_weight=args.angle_bias_weight,
                                axis_spread_weight=args.axis_spread_weight,
                                energy_group_edges_gev=tuple(args.energy_groups or ()),
                                angle_group_edges_deg=(ANGLE_GROUP_EDGES_DEG if args.angle_groups is None
                                                       else tuple(args.angle_groups)))
        build_factorised(args.arch, {"shape": shape})  # a setting the nets refuse fails here, not after the flow
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.from_model and not (run_dir / CHECKPOINT).exists():
        try:
            checkpoint_from_model(args.from_model, run_dir, config)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        print(f"started {run_dir} from {args.from_model}", flush=True)
    elif args.from_model:
        print(f"{run_dir / CHECKPOINT} exists: resuming it (--from-model starts a new run only)", flush=True)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda: torch sees no CUDA device on this machine")
    state = run_campaign(config, run_dir, minutes=args.minutes, command=command, refit_flow=args.refit_flow,
                         log=lambda line: print(line, flush=True), device=args.device)
    print(f"{run_dir}: step {state['step']}, {state['showers_seen']} showers seen, "
          f"{state['cpu_seconds'] / 3600:.2f} CPU hours over {len(state['sessions'])} session(s)")
    if args.export:
        folder = _export(run_dir, args)
        print(f"wrote {folder}; add the validation figures with: python -m calogen validate --model {folder} "
              "--reference data/reference.h5 --update-card")
    return 0


def _export(run_dir: Path, args: argparse.Namespace) -> Path:
    from calogen.gan.factorised.export import export_model

    try:
        return export_model(run_dir, args.export, status=args.status, best=args.export_best)
    except ValueError as exc:
        raise CliError(str(exc)) from None

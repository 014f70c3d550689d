"""``python -m calogen produce``: mass production in shards on Dask (a local cluster or an existing one).

    python -m calogen produce --source mc --energy-range 10 200 --theta-range 60 120 -n 10000 --shard-size 100 \\
        --seed 1 --out prod --workers 8
    python -m calogen produce --source conv2d ... --scheduler tcp://head:8786 --device cuda

Rerunning the same command completes a production that was stopped; see :mod:`calogen.produce`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable

from calogen.cli._common import CliError, deg_to_rad

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``produce`` sub-command."""
    parser = subparsers.add_parser(
        "produce",
        help="mass production in shards on Dask (local workers or a cluster)",
        description="Produce N showers from any source in shards of K showers, one Dask task and one HDF5 file "
        "per shard, with DIR/manifest.json listing them; rerunning the same command makes only missing shards.",
    )
    parser.add_argument("--source", required=True,
                        help="mc, gflash, a model name (see `python -m calogen models`) or a model folder")
    parser.add_argument("--particle", choices=("e-",), default="e-", help="primary particle (electrons)")
    parser.add_argument("--energy-range", type=float, nargs=2, metavar=("LO", "HI"), required=True,
                        help="primary energies, GeV, drawn log-uniformly in [LO, HI]")
    parser.add_argument("--theta-range", type=float, nargs=2, metavar=("LO", "HI"), required=True,
                        help="polar angles, degrees (90 = normal incidence), drawn uniformly in [LO, HI]")
    parser.add_argument("-n", "--number", dest="n", type=int, required=True, help="showers in all")
    parser.add_argument("--shard-size", type=int, required=True, help="showers per shard (one task, one file)")
    parser.add_argument("--out", required=True, help="output folder (shared by all workers on a cluster)")
    parser.add_argument("--seed", type=int, default=None,
                        help="production seed; shard i uses SeedSequence([seed, i]) (default: fresh, or the "
                        "folder's seed when resuming)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=2, help="local worker processes, one thread each (default 2)")
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="run on an existing Dask cluster, e.g. tcp://head:8786")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the workers sample (cuda: each shard asks Dask for the resource GPU=1)")
    parser.add_argument("--format", dest="file_format", choices=("native", "3dgan", "calochallenge"),
                        default="native", help="shard file format (default: native calogen HDF5, GeV)")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads inside each task (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _progress_bar(quiet: bool) -> Callable[[int, int, int, int], None] | None:
    if quiet:
        return None
    from tqdm import tqdm

    bars: list[tqdm] = []

    def update(showers: int, total_showers: int, shards: int, total_shards: int) -> None:
        if not bars:  # the first call counts the shards already complete
            if shards:
                print(f"resuming: {shards} of {total_shards} shards already complete", file=sys.stderr)
            bars.append(tqdm(total=total_showers, initial=showers, desc="produce", unit="shower", leave=True))
        bar = bars[0]
        bar.n = showers
        bar.set_postfix_str(f"shards {shards}/{total_shards}", refresh=False)
        bar.refresh()
        if showers >= total_showers:
            bar.close()

    return update


def _command(args: argparse.Namespace) -> str:
    """The command line that repeats this production, rebuilt from the parsed arguments (for the manifest)."""
    words = ["python", "-m", "calogen", "produce", "--source", args.source, "--particle", args.particle,
             "--energy-range", *map(repr, args.energy_range), "--theta-range", *map(repr, args.theta_range),
             "-n", str(args.n), "--shard-size", str(args.shard_size), "--out", args.out]
    words += [] if args.seed is None else ["--seed", str(args.seed)]
    words += ["--scheduler", args.scheduler] if args.scheduler else ["--workers", str(args.workers)]
    words += ["--device", args.device, "--format", args.file_format, "--torch-threads", str(args.torch_threads)]
    return " ".join(shlex.quote(w) for w in words)


def run(args: argparse.Namespace) -> int:
    """Check the arguments, produce, print the summary; returns 0 (2 on bad input, 1 when shards failed)."""
    from calogen.produce import ProductionConfig, ShardsFailed, produce

    if args.scheduler is None and args.workers < 1:
        raise CliError(f"--workers {args.workers}: start at least one worker")
    if args.torch_threads < 1:
        raise CliError(f"--torch-threads {args.torch_threads}: give at least one thread")
    config = ProductionConfig(
        source=args.source,
        n=args.n,
        shard_size=args.shard_size,
        out_dir=args.out,
        energy_range_gev=(args.energy_range[0], args.energy_range[1]),
        theta_range_rad=(float(deg_to_rad(args.theta_range[0])), float(deg_to_rad(args.theta_range[1]))),
        particle=args.particle,
        seed=args.seed,
        device=args.device,
        file_format=args.file_format,
    )
    command = _command(args)
    try:
        result = produce(config, workers=args.workers, scheduler=args.scheduler, torch_threads=args.torch_threads,
                         command=command, progress=_progress_bar(args.quiet))
    except ShardsFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not result.made:
        print(f"nothing to make: all {len(result.shards)} shards in {args.out} are complete", file=sys.stderr)
        return 0
    print(f"{result.showers_made} showers in {len(result.made)} shards made in {result.wall_time_s:.1f} s: "
          f"{result.showers_per_s:.2f} showers/s overall, {result.running_showers_per_s:.2f} showers/s after the "
          f"cluster start ({result.startup_s:.1f} s); {result.reused} shards were already complete", file=sys.stderr)
    for worker, w in sorted(result.per_worker().items()):
        print(f"  {worker}: {int(w['showers'])} showers in {int(w['shards'])} shards, {w['busy_s']:.1f} s busy, "
              f"{w['showers_per_s']:.2f} showers/s", file=sys.stderr)
    print(f"manifest: {result.manifest_path}", file=sys.stderr)
    return 0

"""Mass production of showers on Dask: one job split into shards, one shard = one task = one HDF5 file.

    >>> from calogen.produce import ProductionConfig, produce
    >>> config = ProductionConfig(source="mc", n=1000, shard_size=50, out_dir="prod",
    ...                           energy_range_gev=(10.0, 200.0), theta_range_rad=(1.0472, 2.0944), seed=1)
    >>> result = produce(config, workers=2)                       # a LocalCluster with 2 worker processes
    >>> result = produce(config, scheduler="tcp://head:8786")     # or an existing Dask cluster

Any source that :mod:`calogen.sources` offers works: ``"mc"``, ``"gflash"``, an installed model's name or a
model folder; its :class:`calogen.showers.ConditionRange` must hold the production's ranges. Each shard draws
its own conditions (energies log-uniform in ``energy_range_gev``, GeV; angles uniform in ``theta_range_rad``,
radians) and its showers from a seed derived from ``SeedSequence([seed, index])``, so a shard's content depends
neither on the number of workers nor on the order the tasks run in.

The output folder holds ``shard-00000.h5``, ``shard-00001.h5``, ... (each written atomically by
:mod:`calogen.io`) and ``manifest.json``: the calogen version, the command, the parameters that define the
content, and one record per finished shard (file, showers, seed, conditions, source, the model card's
sha256, device, wall time, worker, and the file's sha256). Running the same production again makes only the
shards that are missing or whose file no longer matches its checksum; a production with other parameters is
refused (:class:`ProductionMismatch`). On a cluster the folder must be on a file system all workers share.

The package: :mod:`calogen.produce.plan` (configuration, shard plan), :mod:`calogen.produce.shards` (one shard,
the manifest) and :mod:`calogen.produce.cluster` (the Dask client and the task loop).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calogen.produce.cluster import ShardProgress, connected, run_shards
from calogen.produce.plan import FORMATS, FileFormat, ProductionConfig, ShardPlan, plan_shards
from calogen.produce.shards import (
    MANIFEST_NAME,
    ProductionMismatch,
    ShardRecord,
    card_sha256,
    check_conditions,
    check_same,
    complete_records,
    file_sha256,
    make_shard,
    parameters,
    read_manifest,
    shard_file_name,
    write_manifest,
)
from calogen.sources import find_source

__all__ = [
    "FORMATS",
    "MANIFEST_NAME",
    "FileFormat",
    "Production",
    "ProductionConfig",
    "ProductionMismatch",
    "ShardPlan",
    "ShardProgress",
    "ShardRecord",
    "ShardsFailed",
    "file_sha256",
    "make_shard",
    "plan_shards",
    "produce",
    "read_manifest",
    "shard_file_name",
]


class ShardsFailed(RuntimeError):
    """Some shards raised; the finished ones are in the manifest and a rerun makes the rest."""



@dataclass
class Production:
    """What :func:`produce` did: all shards now in the manifest, the ones made by this call and the timing."""

    out_dir: Path
    manifest_path: Path
    shards: list[ShardRecord]
    made: list[ShardRecord]
    reused: int  # shards found complete and kept
    wall_time_s: float  # of this call, cluster start-up included
    startup_s: float = 0.0  # of that, until the tasks were submitted (checks, starting or reaching the cluster)

    @property
    def showers_made(self) -> int:
        """Showers made by this call."""
        return sum(r.showers for r in self.made)

    @property
    def showers_per_s(self) -> float:
        """Showers made by this call per second of its wall time (0 when nothing was made)."""
        return self.showers_made / self.wall_time_s if self.made and self.wall_time_s > 0 else 0.0

    @property
    def running_showers_per_s(self) -> float:
        """Showers made per second once the cluster was up (wall time less start-up)."""
        running = self.wall_time_s - self.startup_s
        return self.showers_made / running if self.made and running > 0 else 0.0

    def per_worker(self) -> dict[str, dict[str, float]]:
        """worker -> shards, showers, busy_s (summed task wall time) and showers_per_s (showers / busy_s)."""
        out: dict[str, dict[str, float]] = {}
        for r in self.made:
            w = out.setdefault(r.worker, {"shards": 0, "showers": 0, "busy_s": 0.0})
            w["shards"] += 1
            w["showers"] += r.showers
            w["busy_s"] += r.wall_time_s
        for w in out.values():
            w["showers_per_s"] = w["showers"] / w["busy_s"] if w["busy_s"] > 0 else 0.0
        return out



def produce(
    config: ProductionConfig,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    client: Any = None,
    processes: bool = True,
    torch_threads: int | None = 1,
    command: str | None = None,
    progress: ShardProgress | None = None,
) -> Production:
    """Make the shards of ``config`` that ``config.out_dir`` lacks, on Dask, and keep the manifest current.

    Where the shards run: ``client`` (a ``distributed.Client``), else the scheduler at ``scheduler``
    ("tcp://host:8786"), else a new ``LocalCluster`` of ``workers`` workers with one thread each (processes,
    or threads with processes=False). torch_threads: torch threads inside each task. command: recorded in the
    manifest. progress: see :data:`ShardProgress`.

    Raises ValueError for a source or condition range that cannot be produced, :class:`ProductionMismatch`
    when the folder holds a production with other parameters, and :class:`ShardsFailed` (after recording
    every shard that did finish) when tasks raised.
    """
    started = time.perf_counter()
    from calogen.version import __version__

    entry = find_source(config.source)
    card_sha = card_sha256(entry)
    check_conditions(entry, config)
    out_dir = Path(config.out_dir)
    manifest = read_manifest(out_dir)
    if manifest is None and out_dir.is_dir() and any(out_dir.glob("shard-*.h5")):
        raise ProductionMismatch(f"{out_dir} holds shard files but no {MANIFEST_NAME}; choose another output folder")
    seed = config.seed
    if seed is None:  # resume with the folder's seed, or start with a fresh one
        old_seed = (manifest or {}).get("parameters", {}).get("seed")
        fresh = np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1)
        seed = int(old_seed) if isinstance(old_seed, int) else int(fresh)
    params = parameters(config, entry, card_sha, seed)
    if manifest is not None:
        check_same(out_dir, manifest["parameters"], params)
    n_shards = config.n_shards
    done = complete_records(out_dir, manifest, n_shards)
    todo = [i for i in range(n_shards) if i not in done]
    manifest_path = out_dir / MANIFEST_NAME
    state: dict[str, Any] = {
        "calogen_version": __version__,
        "command": command,
        "parameters": params,
        "n_shards": n_shards,
        "complete": False,
        "shards": [],
    }

    def save() -> None:
        state["shards"] = [asdict(done[i]) for i in sorted(done)]
        state["complete"] = len(done) == n_shards
        write_manifest(manifest_path, state)

    made: list[ShardRecord] = []
    failures: list[str] = []
    submitted_at = started
    with connected(client, workers, scheduler, config.device, processes, needed=bool(todo)) as dask_client:
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in out_dir.glob(".shard-*.tmp"):  # left by a killed run (one production per folder at a time)
            stale.unlink(missing_ok=True)
        save()
        if progress is not None:
            progress(sum(r.showers for r in done.values()), config.n, len(done), n_shards)
        reused = len(done)
        if todo:
            attrs = {"particle": config.particle, "production": params}  # into each native shard file
            made, failures, submitted_at = run_shards(
                dask_client, config, entry, card_sha, seed, attrs, todo, done, save,
                torch_threads=torch_threads, progress=progress,
            )
    if failures:
        raise ShardsFailed(f"{len(failures)} of {len(todo)} shards failed ({failures[0]}); the {len(made)} that "
                           f"finished are in {manifest_path}; rerun the same production to make the rest")
    return Production(out_dir, manifest_path, [done[i] for i in sorted(done)], made, reused,
                      time.perf_counter() - started, submitted_at - started)

"""Where the shards run: a Dask client (a new LocalCluster, or an existing scheduler), checked before use, and
the loop that submits one task per shard and records each finished one in the manifest."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from calogen.produce.plan import ProductionConfig, plan_shards
from calogen.produce.shards import ShardRecord, make_shard
from calogen.sources import SourceEntry, cuda_available

__all__ = ["ShardProgress", "connected", "run_shards"]

# progress(done_showers, total_showers, done_shards, total_shards): called once at the start (counting the
# shards already complete) and after every finished shard.
ShardProgress = Callable[[int, int, int, int], None]

_MANIFEST_WRITE_INTERVAL_S = 1.0  # rewrite manifest.json at most this often while shards arrive (and at the end)


def _open_client(workers: int, scheduler: str | None, device: str, processes: bool) -> tuple[Any, Any]:
    """(client, cluster): a client of ``scheduler``, or of a new LocalCluster (returned to be closed)."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); start one with "
                             "`dask scheduler` or check the address") from None
    if workers < 1:
        raise ValueError(f"workers={workers}: start at least one local worker")
    if device == "cuda" and not cuda_available():
        raise ValueError("device cuda was asked for but this machine has no CUDA device for local workers; use "
                         "device cpu, or a scheduler whose workers have GPUs")
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=":0",  # any free port: several productions may run on one machine
        resources={"GPU": 1} if device == "cuda" else None,
    )
    return Client(cluster), cluster


def _check_environment(client: Any, scheduler: str) -> None:
    """Refuse a cluster whose scheduler or workers cannot import calogen (they unpickle the shard tasks)."""

    def has_calogen() -> bool:  # a local function: sent by value, so it runs where calogen is missing
        import importlib.util

        return importlib.util.find_spec("calogen") is not None

    missing = [] if client.run_on_scheduler(has_calogen) else ["the scheduler"]
    missing += [f"worker {w}" for w, ok in sorted(client.run(has_calogen).items()) if not ok]
    if missing:
        raise ValueError(f"{', '.join(missing)} at {scheduler} cannot import calogen; start the scheduler and the "
                         "workers in the same Python environment, e.g. PYTHONPATH=/path/to/calogen dask scheduler")


def _check_gpu_workers(client: Any, scheduler: str | None) -> None:
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    if workers and not any(w.get("resources", {}).get("GPU") for w in workers.values()):
        raise ValueError(f"none of the {len(workers)} workers at {scheduler or 'the local cluster'} offers the "
                         "resource GPU; start GPU workers with `dask worker ADDRESS --resources GPU=1`")


@contextlib.contextmanager
def connected(
    client: Any, workers: int, scheduler: str | None, device: str, processes: bool, *, needed: bool
) -> Iterator[Any]:
    """The client to submit to (None when nothing is to be made), checked; closes what it opened."""
    if not needed:
        yield None
        return
    own_client, own_cluster = client is None, None
    if client is None:
        client, own_cluster = _open_client(workers, scheduler, device, processes)
    try:
        if scheduler is not None and own_client:
            _check_environment(client, scheduler)
        if device == "cuda":
            _check_gpu_workers(client, scheduler)
        yield client
    finally:
        if own_client:
            client.close()
        if own_cluster is not None:
            own_cluster.close()


def run_shards(
    client: Any,
    config: ProductionConfig,
    entry: SourceEntry,
    card_sha256: str | None,
    seed: int,
    attrs: dict[str, Any],
    todo: list[int],
    done: dict[int, ShardRecord],
    save: Callable[[], None],
    *,
    torch_threads: int | None,
    progress: ShardProgress | None,
) -> tuple[list[ShardRecord], list[str], float]:
    """Submit one task per shard in ``todo``, record each finished shard in ``done`` and save the manifest.

    Returns the shards made, the failures (one line each) and the time.perf_counter() of the submission.
    """
    from distributed import as_completed

    made: list[ShardRecord] = []
    failures: list[str] = []
    showers_done = sum(r.showers for r in done.values())
    resources = {"GPU": 1} if config.device == "cuda" else None
    try:
        plans = plan_shards(config.n, config.shard_size, seed, config.energy_range_gev, config.theta_range_rad,
                            indices=todo)
        run_id = uuid.uuid4().hex[:8]  # task keys unique to this call: a long-lived scheduler keeps old results
        out_dir = str(Path(config.out_dir).resolve())  # workers may run in another directory
        futures = {
            client.submit(
                make_shard, plan, entry, out_dir, device=config.device, file_format=config.file_format,
                card_sha256=card_sha256, attrs=attrs, torch_threads=torch_threads,
                key=f"calogen-shard-{plan.index:05d}-{run_id}", resources=resources, pure=False,
            ): plan.index
            for plan in plans
        }
        submitted_at = time.perf_counter()
        last_save = time.monotonic()
        for future in as_completed(futures):
            index = futures[future]
            if future.status == "error":
                error = future.exception()
                failures.append(f"shard {index}: {type(error).__name__}: {' '.join(str(error).split())}")
                continue
            if future.status != "finished":
                failures.append(f"shard {index}: task {future.status}")
                continue
            record = future.result()
            done[record.index] = record
            made.append(record)
            showers_done += record.showers
            if time.monotonic() - last_save >= _MANIFEST_WRITE_INTERVAL_S:
                save()
                last_save = time.monotonic()
            if progress is not None:
                progress(showers_done, config.n, len(done), config.n_shards)
    finally:
        save()
    return made, failures, submitted_at

"""Mass production of showers on Dask: one job split into shards, one shard = one task = one HDF5 file.

    >>> from calogen.produce import ProductionConfig, produce
    >>> config = ProductionConfig(source="mc", n=1000, shard_size=50, out_dir="prod",
    ...                           energy_range_gev=(10.0, 200.0), theta_range_rad=(1.0472, 2.0944), seed=1)
    >>> result = produce(config, workers=2)                       # a LocalCluster with 2 worker processes
    >>> result = produce(config, scheduler="tcp://head:8786")     # or an existing Dask cluster

Any source that :mod:`calogen.sources` offers works: ``"mc"``, ``"gflash"``, an installed model's name or a
model folder. Each shard draws its own conditions (energies log-uniform in ``energy_range_gev``, GeV; angles
uniform in ``theta_range_rad``, radians) and its showers from a seed derived from ``SeedSequence([seed,
index])``, so a shard's content depends neither on the number of workers nor on the order the tasks run in.

The output folder holds ``shard-00000.h5``, ``shard-00001.h5``, ... (each written atomically by
:mod:`calogen.io`) and ``manifest.json``: the calogen version, the command, the parameters that define the
content, and one record per finished shard (file, showers, seed, conditions, source, the model card's
sha256, device, wall time, worker, and the file's sha256). Running the same production again makes only the
shards that are missing or whose file no longer matches its checksum; a production with other parameters is
refused (:class:`ProductionMismatch`). On a cluster the folder must be on a file system all workers share.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from calogen.io import ShowerSet, atomic_write, write_3dgan, write_calochallenge, write_showers
from calogen.sources import GFLASH, MONTE_CARLO, Source, cuda_available, list_sources, load_model, sample

__all__ = [
    "FORMATS",
    "MANIFEST_NAME",
    "Production",
    "ProductionConfig",
    "ProductionMismatch",
    "ShardPlan",
    "ShardRecord",
    "ShardsFailed",
    "file_sha256",
    "make_shard",
    "plan_shards",
    "produce",
    "read_manifest",
    "resolve_source",
    "shard_file_name",
]

FORMATS = ("native", "3dgan", "calochallenge")
MANIFEST_NAME = "manifest.json"
FileFormat = Literal["native", "3dgan", "calochallenge"]
# progress(done_showers, total_showers, done_shards, total_shards): called once at the start (counting the
# shards already complete) and after every finished shard.
ShardProgress = Callable[[int, int, int, int], None]

_MANIFEST_WRITE_INTERVAL_S = 1.0  # rewrite manifest.json at most this often while shards arrive (and at the end)


class ProductionMismatch(ValueError):
    """The output folder holds a production made with other parameters; the message says which differ."""


class ShardsFailed(RuntimeError):
    """Some shards raised; the finished ones are in the manifest and a rerun makes the rest."""


@dataclass(frozen=True)
class ProductionConfig:
    """What to produce; every field but ``out_dir`` is recorded in the manifest and defines its content.

    seed None: a fresh seed for a new folder, the manifest's seed when the folder holds a production already.
    """

    source: str  # "mc", "gflash", a model name (python -m calogen models) or a model folder
    n: int  # showers in all
    shard_size: int  # showers per shard (one Dask task, one file); the last shard holds the remainder
    out_dir: str  # output folder: shard files + manifest.json
    energy_range_gev: tuple[float, float]  # primary energy range, GeV; drawn log-uniformly
    theta_range_rad: tuple[float, float]  # polar angle range, radians (pi/2 = normal incidence); drawn uniformly
    particle: str = "e-"  # the sources simulate and generate electrons
    seed: int | None = None  # production seed S; shard i uses SeedSequence([S, i])
    device: str = "cpu"  # "cpu" or "cuda" on the workers (CUDA shards ask Dask for the resource GPU=1)
    file_format: FileFormat = "native"  # shard files: native calogen HDF5, 3DGAN (GeV x 50) or CaloChallenge (MeV)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n={self.n}: ask for at least one shower")
        if self.shard_size < 1:
            raise ValueError(f"shard_size={self.shard_size}: a shard holds at least one shower")
        if self.particle != "e-":
            raise ValueError(f"particle {self.particle!r} is not produced; the sources give electron showers (e-)")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device {self.device!r} is not one of cpu, cuda")
        if self.file_format not in FORMATS:
            raise ValueError(f"file_format {self.file_format!r} is not one of {', '.join(FORMATS)}")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise ValueError(f"seed={self.seed} must be an integer in 0..2**63-1")
        e_lo, e_hi = self.energy_range_gev
        if not (math.isfinite(e_lo) and math.isfinite(e_hi)) or e_lo <= 0.0 or e_lo > e_hi:
            raise ValueError(f"energy range {e_lo:g}-{e_hi:g} GeV: give 0 < LO <= HI (GeV)")
        t_lo, t_hi = self.theta_range_rad
        if not (math.isfinite(t_lo) and math.isfinite(t_hi)) or not 0.0 < t_lo <= t_hi < math.pi:
            raise ValueError(f"theta range {math.degrees(t_lo):g}-{math.degrees(t_hi):g} deg: give 0 < LO <= HI "
                             "< 180 deg")

    @property
    def n_shards(self) -> int:
        """ceil(n / shard_size)."""
        return -(-self.n // self.shard_size)


@dataclass(frozen=True)
class ShardPlan:
    """One shard to make: its showers' conditions and the seed of its shower stream.

    energy_gev: float32 (size,), GeV; theta_rad: float32 (size,), radians; seed: the integer the source is
    seeded with (a torch.Generator seed), drawn from SeedSequence([production_seed, index]).
    """

    index: int
    size: int
    production_seed: int
    seed: int
    energy_gev: npt.NDArray[np.float32] = field(repr=False)
    theta_rad: npt.NDArray[np.float32] = field(repr=False)


@dataclass(frozen=True)
class ShardRecord:
    """A finished shard as the manifest lists it (times in seconds, conditions in GeV and radians)."""

    index: int
    file: str  # file name inside the output folder
    showers: int
    seed: int  # the source's seed for this shard
    seed_sequence: list[int]  # [production seed, index]
    sha256: str  # of the shard file
    conditions: dict[str, dict[str, float]]  # energy_gev / theta_rad: min, max, mean
    source: str
    card_sha256: str | None  # sha256 of the model's card.json; None for the Monte Carlo and GFlash
    device: str
    wall_time_s: float  # inside the task: sampling + writing
    worker: str  # the Dask worker's address (host:pid outside Dask)


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


# ---------------------------------------------------------------- sources, plans, files


def resolve_source(name: str) -> Source:
    """The :class:`calogen.sources.Source` for "mc", "gflash", a listed source name or a model folder.

    Model folders are returned with an absolute path (workers may run in another directory). Raises
    ValueError listing the available sources when ``name`` is none of them.
    """
    sources = list_sources()
    aliases = {"mc": MONTE_CARLO, "gflash": GFLASH}
    wanted = aliases.get(name.lower(), name)
    for source in sources:
        if source.name == wanted:
            if source.path is not None:
                return Source(source.name, source.kind, str(Path(source.path).resolve()), source.origin)
            return source
    folder = Path(name)
    if (folder / "card.json").is_file():
        try:
            card_name = str(json.loads((folder / "card.json").read_text()).get("name") or folder.name)
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{folder / 'card.json'}: unreadable model card ({exc})") from exc
        return Source(card_name, "model", str(folder.resolve()), "folder")
    names = ", ".join(["mc", "gflash"] + [s.name for s in sources if s.kind == "model"])
    raise ValueError(f"source {name!r} is neither a known source nor a model folder; choose one of: {names}")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _card_sha256(source: Source) -> str | None:
    return file_sha256(Path(source.path) / "card.json") if source.kind == "model" and source.path else None


def shard_file_name(index: int) -> str:
    """``shard-00012.h5`` for index 12."""
    return f"shard-{index:05d}.h5"


def plan_shards(
    n: int,
    shard_size: int,
    seed: int,
    energy_range_gev: tuple[float, float],
    theta_range_rad: tuple[float, float],
    indices: list[int] | None = None,
) -> list[ShardPlan]:
    """The shards of a production of ``n`` showers (all of them, or only ``indices``).

    Shard i holds ``shard_size`` showers (the last one the remainder) and draws from SeedSequence([seed, i]),
    split in two streams: the conditions (energy log-uniform in energy_range_gev, GeV; theta uniform in
    theta_range_rad, radians) and the source's seed.
    """
    n_shards = -(-n // shard_size)
    log_lo, log_hi = math.log(energy_range_gev[0]), math.log(energy_range_gev[1])
    plans = []
    for index in range(n_shards) if indices is None else indices:
        size = min(shard_size, n - index * shard_size)
        conditions_seq, shower_seq = np.random.SeedSequence([seed, index]).spawn(2)
        rng = np.random.default_rng(conditions_seq)
        energy = np.exp(rng.uniform(log_lo, log_hi, size)).astype(np.float32)
        theta = rng.uniform(theta_range_rad[0], theta_range_rad[1], size).astype(np.float32)
        shower_seed = int(shower_seq.generate_state(1, np.uint64)[0] >> np.uint64(1))  # 63 bits for torch
        plans.append(ShardPlan(index, size, seed, shower_seed, energy, theta))
    return plans


# ---------------------------------------------------------------- one shard (runs on a worker)

_MODELS: dict[tuple[str, str, str], Any] = {}  # (folder, device, card sha256) -> loaded generator, per worker


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # outside a Dask worker
        return f"{socket.gethostname()}:{os.getpid()}"


def _summary(values: npt.NDArray[np.float32]) -> dict[str, float]:
    return {"min": float(values.min()), "max": float(values.max()), "mean": float(values.mean())}


def make_shard(
    plan: ShardPlan,
    source: Source,
    out_dir: str,
    *,
    device: str = "cpu",
    file_format: FileFormat = "native",
    card_sha256: str | None = None,
    attrs: dict[str, Any] | None = None,
    torch_threads: int | None = 1,
) -> ShardRecord:
    """Sample the shard's showers from ``source`` and write ``out_dir/shard-<index>.h5`` atomically.

    card_sha256: the card checksum the production was planned with; a model whose card.json no longer
    matches is refused (ValueError). attrs: extra file attributes (native format). torch_threads: torch's
    intra-op threads in this process (None leaves them alone). Returns the shard's manifest record.
    """
    import torch

    start = time.perf_counter()
    if torch_threads is not None and torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    model = None
    if source.kind == "model":
        found = _card_sha256(source)
        if found != card_sha256:
            raise ValueError(f"{source.path}/card.json changed since the production was planned (sha256 "
                             f"{found} here, {card_sha256} in the manifest); use a new output folder for a new model")
        key = (str(source.path), device, str(found))
        if key not in _MODELS:
            _MODELS[key] = load_model(str(source.path), device)
        model = _MODELS[key]
    showers: ShowerSet = sample(source, plan.energy_gev, plan.theta_rad, plan.size, seed=plan.seed, device=device,
                                model=model)
    showers.attrs.update(attrs or {})
    showers.attrs.update({"source": source.name, "seed": plan.seed, "shard": plan.index,
                          "production_seed": plan.production_seed})
    path = Path(out_dir) / shard_file_name(plan.index)
    if file_format == "native":
        write_showers(path, showers)
    elif file_format == "3dgan":
        write_3dgan(path, showers)
    else:
        write_calochallenge(path, showers)
    return ShardRecord(
        index=plan.index,
        file=path.name,
        showers=len(showers),
        seed=plan.seed,
        seed_sequence=[plan.production_seed, plan.index],
        sha256=file_sha256(path),
        conditions={"energy_gev": _summary(plan.energy_gev), "theta_rad": _summary(plan.theta_rad)},
        source=source.name,
        card_sha256=card_sha256,
        device=device,
        wall_time_s=round(time.perf_counter() - start, 4),
        worker=_worker_name(),
    )


# ---------------------------------------------------------------- manifest


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The folder's manifest.json as a dict, or None when there is none (ValueError if unreadable)."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable manifest ({exc}); move it away to start the folder afresh") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("parameters"), dict):
        raise ValueError(f"{path}: not a calogen production manifest (no 'parameters'); choose another folder")
    return manifest


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=1) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _parameters(config: ProductionConfig, source: Source, card_sha256: str | None, seed: int) -> dict[str, Any]:
    params = {
        "source": source.name,
        "source_kind": source.kind,
        "card_sha256": card_sha256,
        "particle": config.particle,
        "energy_range_gev": list(config.energy_range_gev),
        "theta_range_rad": list(config.theta_range_rad),
        "n": config.n,
        "shard_size": config.shard_size,
        "seed": seed,
        "device": config.device,
        "format": config.file_format,
    }
    return dict(json.loads(json.dumps(params)))  # as read back from JSON (lists, floats), for comparison


def _check_same(out_dir: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    differ = [f"{key} {old.get(key)!r} there, {new[key]!r} now" for key in new if old.get(key) != new[key]]
    if differ:
        raise ProductionMismatch(
            f"{out_dir} holds a production with other parameters ({'; '.join(differ)}); rerun with that "
            "folder's parameters (see its manifest.json) to complete it, or choose another output folder"
        )


def _check_conditions(source: Source, config: ProductionConfig) -> None:
    """Refuse condition ranges outside what the source covers, before any worker starts."""
    e_lo, e_hi = config.energy_range_gev
    t_lo, t_hi = config.theta_range_rad
    if source.kind == "model":
        model = load_model(str(source.path), "cpu")
        try:
            model.check_conditions(np.array([e_lo, e_hi]), np.array([t_lo, t_hi]))
        except ValueError as exc:
            reason = str(exc).split("; pass allow_extrapolation")[0]
            raise ValueError(f"{reason}; choose condition ranges inside it") from None
        return
    if source.kind == "mc":
        from calogen.simulation.mc import ENERGY_RANGE_GEV, THETA_RANGE_RAD
    else:
        from calogen.simulation.gflash import ENERGY_RANGE_GEV, THETA_RANGE_RAD
    (a_lo, a_hi), (b_lo, b_hi) = ENERGY_RANGE_GEV, THETA_RANGE_RAD
    if e_lo < a_lo or e_hi > a_hi:
        raise ValueError(f"energy range {e_lo:g}-{e_hi:g} GeV reaches outside {a_lo:g}-{a_hi:g} GeV (the range of "
                         f"the {source.name} source); choose an energy range inside it")
    if t_lo < b_lo - 1e-9 or t_hi > b_hi + 1e-9:
        raise ValueError(f"theta range {math.degrees(t_lo):g}-{math.degrees(t_hi):g} deg reaches outside "
                         f"{math.degrees(b_lo):g}-{math.degrees(b_hi):g} deg (the range of the {source.name} "
                         "source); choose an angle range inside it")


def _complete_records(out_dir: Path, manifest: dict[str, Any] | None, n_shards: int) -> dict[int, ShardRecord]:
    """Records of the manifest whose file is present with the recorded checksum."""
    done: dict[int, ShardRecord] = {}
    for entry in (manifest or {}).get("shards", []):
        try:
            record = ShardRecord(**entry)
        except TypeError:
            continue
        path = out_dir / record.file
        if record.index < n_shards and path.is_file() and file_sha256(path) == record.sha256:
            done[record.index] = record
    return done


# ---------------------------------------------------------------- the cluster


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
    from calogen import __version__

    source = resolve_source(config.source)
    card_sha256 = _card_sha256(source)
    _check_conditions(source, config)
    out_dir = Path(config.out_dir)
    manifest = read_manifest(out_dir)
    if manifest is None and out_dir.is_dir() and any(out_dir.glob("shard-*.h5")):
        raise ProductionMismatch(f"{out_dir} holds shard files but no {MANIFEST_NAME}; choose another output folder")
    seed = config.seed
    if seed is None:  # resume with the folder's seed, or start with a fresh one
        old_seed = (manifest or {}).get("parameters", {}).get("seed")
        fresh = np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1)
        seed = int(old_seed) if isinstance(old_seed, int) else int(fresh)
    parameters = _parameters(config, source, card_sha256, seed)
    if manifest is not None:
        _check_same(out_dir, manifest["parameters"], parameters)
    n_shards = config.n_shards
    done = _complete_records(out_dir, manifest, n_shards)
    todo = [i for i in range(n_shards) if i not in done]
    manifest_path = out_dir / MANIFEST_NAME
    state: dict[str, Any] = {
        "calogen_version": __version__,
        "command": command,
        "parameters": parameters,
        "n_shards": n_shards,
        "complete": False,
        "shards": [],
    }

    def save() -> None:
        state["shards"] = [asdict(done[i]) for i in sorted(done)]
        state["complete"] = len(done) == n_shards
        _write_manifest(manifest_path, state)

    made: list[ShardRecord] = []
    failures: list[str] = []
    submitted_at = started
    with _connected(client, workers, scheduler, config.device, processes, needed=bool(todo)) as dask_client:
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in out_dir.glob(".shard-*.tmp"):  # left by a killed run (one production per folder at a time)
            stale.unlink(missing_ok=True)
        save()
        if progress is not None:
            progress(sum(r.showers for r in done.values()), config.n, len(done), n_shards)
        reused = len(done)
        if todo:
            attrs = {"particle": config.particle, "production": parameters}  # into each native shard file
            made, failures, submitted_at = _run_shards(
                dask_client, config, source, card_sha256, seed, attrs, todo, done, save,
                torch_threads=torch_threads, progress=progress,
            )
    if failures:
        raise ShardsFailed(f"{len(failures)} of {len(todo)} shards failed ({failures[0]}); the {len(made)} that "
                           f"finished are in {manifest_path}; rerun the same production to make the rest")
    return Production(out_dir, manifest_path, [done[i] for i in sorted(done)], made, reused,
                      time.perf_counter() - started, submitted_at - started)


@contextlib.contextmanager
def _connected(
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


def _run_shards(
    client: Any,
    config: ProductionConfig,
    source: Source,
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
                make_shard, plan, source, out_dir, device=config.device, file_format=config.file_format,
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

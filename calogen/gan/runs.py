"""The run-directory protocol, shared by the trainer (:mod:`calogen.gan.train`) and the launcher
(:mod:`calogen.gan.jobs`): status, lock, metrics, process liveness and the ETA.

A run lives in one directory::

    config.json          the resolved training configuration
    status.json          state (queued / preparing / running / finished / failed / cancelled; ``phase`` says what a
                         preparing run is doing), pid, pgid, times, exit_reason,
                         step, total_steps, percent, s_per_step, eta_s (written atomically, merged on update)
    metrics.csv          one row per step (losses, heads), one per epoch end (sf_error), columns METRIC_COLUMNS
    log.txt              human-readable log (also printed on stderr)
    lock                 "launching <token>" while a launcher starts the process, then the trainer's pid
    launch.json          pid and process group of the launched process (written by the launcher)
    output.txt           stdout and stderr of a launched process
    checkpoints/         last.pt and the generators of the last epochs (calogen.gan.train.checkpoint)
    model/               the selected generator (calogen.gan.generate.save_model)

Lock protocol: the launcher creates ``lock`` with ``O_CREAT | O_EXCL`` holding ``launching <token>`` and passes the
token in the environment variable :data:`LOCK_ENV`; the trainer takes the lock over by writing its pid, refuses a
lock held by another live process, replaces a stale one, and removes it when it exits. So two callers can never
train the same run at once.
"""

from __future__ import annotations

import calendar
import csv
import json
import math
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "ACTIVE_STATES",
    "LOCK_ENV",
    "METRIC_COLUMNS",
    "PROGRESS_EVERY_S",
    "TERMINAL_STATES",
    "Progress",
    "RunDirectory",
    "RunLockedError",
    "checked_status",
    "clear_stale_lock",
    "create_launch_lock",
    "format_duration",
    "process_alive",
    "read_json",
    "read_metrics",
    "remaining_s",
    "utc_now",
    "write_json_atomic",
]

METRIC_COLUMNS = ("step", "epoch", "stage", "loss_d", "loss_g", "bce", "energy_mape", "angle_mae", "sum_mape",
                  "wasserstein", "gradient_penalty", "regressor_error", "regressor_heldout_error", "sf_error",
                  "time_s")
LOCK_ENV = "CALOGEN_RUN_LOCK"  # token a launcher put in run_dir/lock before starting the trainer
PROGRESS_EVERY_S = 10.0  # seconds between progress lines (log.txt and the terminal)
ACTIVE_STATES = ("queued", "preparing", "running")
TERMINAL_STATES = ("finished", "failed", "cancelled")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class RunLockedError(RuntimeError):
    """Another live process holds the run's lock (the message names it and what to do)."""


def utc_now() -> str:
    """The time now as ``2026-01-31T12:00:00Z`` (UTC, the format of every time in status.json)."""
    return time.strftime(_TIME_FORMAT, time.gmtime())


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary file next to ``path`` and rename it over ``path`` (readers never see half)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or ``{}`` when the file is missing or unreadable."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def process_alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (Linux /proc; elsewhere kill(pid, 0) only)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class RunDirectory:
    """The files of one run; ``writer=False`` (data-parallel ranks other than 0) makes every write a no-op."""

    def __init__(self, path: str | os.PathLike[str], *, writer: bool = True) -> None:
        self.path = Path(path)
        self.writer = writer
        self.checkpoints = self.path / "checkpoints"
        self.last = self.checkpoints / "last.pt"
        self.lock = self.path / "lock"

    def prepare(self, config: dict[str, Any]) -> None:
        """Create checkpoints/ and write config.json (a JSON-able dict)."""
        if not self.writer:
            return
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / "config.json", config)

    def read_status(self) -> dict[str, Any]:
        """status.json as written (no liveness check; see :func:`checked_status`)."""
        return read_json(self.path / "status.json")

    def status(self, state: str, **extra: Any) -> None:
        """Merge ``extra`` into status.json with ``state`` and ``updated`` (and ``ended`` for a final state)."""
        if not self.writer:
            return
        status = self.read_status()
        status.update(extra)
        status["state"] = state
        status["updated"] = utc_now()
        if state in TERMINAL_STATES:
            status["ended"] = status["updated"]
        write_json_atomic(self.path / "status.json", status)

    def log(self, message: str) -> None:
        """Append a time-stamped line to log.txt and print it on stderr."""
        if not self.writer:
            return
        line = f"{utc_now()} {message}"
        with open(self.path / "log.txt", "a") as fh:
            fh.write(line + "\n")
        print(line, file=sys.stderr, flush=True)

    def metrics(self, row: dict[str, Any]) -> None:
        """Append one row to metrics.csv (columns :data:`METRIC_COLUMNS`; missing values stay empty)."""
        if not self.writer:
            return
        path = self.path / "metrics.csv"
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_COLUMNS})

    def acquire_lock(self) -> None:
        """Own ``lock`` (trainer side): take over the launcher's lock carrying our :data:`LOCK_ENV` token, refuse
        one held by another live process (:class:`RunLockedError`), replace a stale one."""
        token = os.environ.get(LOCK_ENV)
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                content = self.lock.read_text().strip() if self.lock.exists() else ""
                if token and content == f"launching {token}":
                    self.lock.write_text(str(os.getpid()))
                    return
                pid = int(content) if content.isdigit() else None
                if pid is not None and pid != os.getpid() and process_alive(pid):
                    raise RunLockedError(f"run {self.path} is already being trained by process {pid}; cancel it "
                                         "first (calogen.gan.jobs.cancel_run) or choose another --run-dir")
                self.lock.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            return
        raise RunLockedError(f"could not take the lock {self.lock}; another process keeps creating it")

    def release_lock(self) -> None:
        """Remove ``lock`` (the trainer's last act, also after a failure)."""
        self.lock.unlink(missing_ok=True)


def create_launch_lock(run_dir: Path) -> str:
    """Create ``run_dir/lock`` with ``O_EXCL`` (launcher side) and return the token to pass in :data:`LOCK_ENV`;
    :class:`RunLockedError` when the lock exists (the run is starting or running)."""
    token = secrets.token_hex(8)
    try:
        fd = os.open(run_dir / "lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        raise RunLockedError(f"run {run_dir} is locked (already starting or running); cancel it first or "
                             "wait") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(f"launching {token}")
    return token


def clear_stale_lock(run_dir: Path) -> None:
    """Remove a lock left behind by a killed process; :class:`RunLockedError` if its process still lives."""
    lock = run_dir / "lock"
    if not lock.exists():
        return
    content = lock.read_text().strip()
    if content.isdigit() and process_alive(int(content)):
        raise RunLockedError(f"run {run_dir} is locked by running process {content}; cancel it first")
    lock.unlink(missing_ok=True)


def checked_status(run_dir: Path) -> dict[str, Any]:
    """status.json of a run with ``run_dir`` added; a queued or running run whose process is gone is marked
    ``failed`` (in the file too). The pid is the trainer's own, or for a queued run the launcher's (launch.json).
    A run without status.json reads as state ``unknown``."""
    run = RunDirectory(run_dir)
    status = run.read_status()
    if not status:
        return {"state": "unknown", "run_dir": str(run_dir), "exit_reason": "no status.json in this directory"}
    if status.get("state") in ACTIVE_STATES:
        own = status.get("state") in ("preparing", "running")  # the trainer has written its own pid
        pid = status.get("pid") if own else read_json(run_dir / "launch.json").get("pid")
        if pid is not None and not process_alive(int(pid)):
            if run.read_status().get("state") in ACTIVE_STATES:  # it may have finished between the two reads
                run.status("failed", exit_reason="process disappeared (see output.txt and log.txt)")
            status = run.read_status()
    status["run_dir"] = str(run_dir)
    return status


def read_metrics(run_dir: Path) -> pd.DataFrame:
    """metrics.csv as a DataFrame (columns :data:`METRIC_COLUMNS`; empty before the first step)."""
    path = run_dir / "metrics.csv"
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=list(METRIC_COLUMNS))
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(METRIC_COLUMNS))


def format_duration(seconds: float | None) -> str:
    """'45 s', '12 min', '3 h 05 min' (or '-' for None): how long, to the precision an ETA deserves."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def remaining_s(status: dict[str, Any]) -> float | None:
    """Seconds left of a running run: the ``eta_s`` written with the last step counted down by the time since
    that write (so it moves between two slow steps); None when unknown or the run is not running."""
    eta_s = status.get("eta_s") if status.get("state") == "running" else None
    if eta_s is None:
        return None
    try:
        written = calendar.timegm(time.strptime(str(status["updated"]), _TIME_FORMAT))
    except (KeyError, ValueError):
        return float(eta_s)
    return max(float(eta_s) - (time.time() - written), 0.0)


@dataclass
class Progress:
    """Steps done against the plan, the mean time per step of this invocation and the ETA from it."""

    total: int  # planned steps of the whole schedule
    first_step: int  # the step this invocation started from (resume)
    start: float = field(default_factory=time.monotonic)
    last_line: float = -math.inf

    def fields(self, step: int) -> dict[str, Any]:
        """status.json entries: total_steps, percent, s_per_step and eta_s (None before the first step)."""
        done = step - self.first_step
        per_step = (time.monotonic() - self.start) / done if done > 0 else None
        return {"total_steps": self.total, "percent": round(100.0 * min(step / max(self.total, 1), 1.0), 1),
                "s_per_step": None if per_step is None else round(per_step, 3),
                "eta_s": None if per_step is None else round(max(self.total - step, 0) * per_step, 1)}

    def due(self) -> bool:
        """True at the first call and then every :data:`PROGRESS_EVERY_S` seconds."""
        now = time.monotonic()
        if now - self.last_line < PROGRESS_EVERY_S:
            return False
        self.last_line = now
        return True

    def line(self, step: int, epoch: int, epochs: int, loss_d: float, loss_g: float | None) -> str:
        """'step 12/1000 (1.2 %), epoch 1/10, loss_d 0.532, loss_g 1.204, 3.10 s/step, ETA 51 min'."""
        f = self.fields(step)
        loss_g_text = "-" if loss_g is None else f"{loss_g:.4g}"
        per_step = "-" if f["s_per_step"] is None else f"{f['s_per_step']:.2f}"
        return (f"step {step}/{self.total} ({f['percent']:.1f} %), epoch {epoch + 1}/{epochs}, loss_d "
                f"{loss_d:.4g}, loss_g {loss_g_text}, {per_step} s/step, ETA {format_duration(f['eta_s'])}")

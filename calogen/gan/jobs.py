"""Background training runs on disk: start, list, inspect, cancel and resume them.

A run is a directory following the protocol of :mod:`calogen.gan.runs` (status, lock, metrics); the training
process writes its own status.json, so a run survives the process (or browser tab) that started it.
:func:`start_run` launches ``python -m calogen train --config RUN/config.json`` in a new session (its own process
group, so cancelling reaches every child, e.g. torchrun workers) with stdout/stderr in ``RUN/output.txt``.

A run name is one folder name directly inside the runs folder (:func:`run_path` checks it for every function
here), so no name typed into the app can write, read or signal anything outside that folder.

Two callers cannot start the same run: the run directory is created with ``mkdir`` (fails if it exists) and
``RUN/lock`` with ``O_CREAT | O_EXCL``; the training process takes the lock over and removes it on exit.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from calogen.gan import runs
from calogen.gan.runs import ACTIVE_STATES, RunDirectory, RunLockedError, read_json, utc_now, write_json_atomic
from calogen.gan.train import TrainConfig, check_config
from calogen.paths import repo_root, runs_dir

__all__ = [
    "ACTIVE_STATES",
    "CANCEL_GRACE_S",
    "RUN_NAME_MAX_CHARS",
    "RunError",
    "cancel_run",
    "list_runs",
    "progress",
    "read_metrics",
    "read_status",
    "resume_run",
    "run_path",
    "runs_table",
    "start_run",
    "tail_log",
]

RUN_NAME_MAX_CHARS = 64
_RUN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_NAME_RULE = (f"a run name is one folder name of letters, digits, '-', '_' and '.', not starting with '.', at most "
              f"{RUN_NAME_MAX_CHARS} characters (e.g. conv3d-test-1)")
CANCEL_GRACE_S = 10.0  # a run stops within about a second of SIGTERM (calogen.gan.train.stopping); then SIGKILL
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}  # processes started here, reaped by _reap


class RunError(ValueError):
    """A run cannot be started, resumed or cancelled as asked (the message says why and what to do)."""


def _name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a run name, or None when it is a valid one."""
    if not name:
        return "it is empty"
    if "/" in name or "\\" in name:
        return "it contains a path separator"
    if name.startswith("."):
        return "it starts with '.'"
    if len(name) > RUN_NAME_MAX_CHARS:
        return f"it has {len(name)} characters"
    if not _RUN_NAME.fullmatch(name):
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "-_."))})
        return f"it contains {''.join(bad)!r}"
    return None


def run_path(run: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Path:
    """The directory of a run, guaranteed to be a direct child of the runs folder.

    run: a run name (``conv3d-test-1``) or a path ``ROOT/NAME``; root: the runs folder (default
    :func:`calogen.paths.runs_dir`, i.e. $CALOGEN_RUNS or ``runs``). Raises :class:`RunError` naming the
    value and the rule for anything else: ``../x``, ``a/b``, ``/tmp/x``, ``.hidden``, a name longer than
    :data:`RUN_NAME_MAX_CHARS`, or a symbolic link that leads out of the runs folder. Creates nothing.
    """
    root_path = Path(root) if root is not None else runs_dir()
    text = os.fspath(run)
    given = Path(text)
    name = given.name if len(given.parts) > 1 and given.parent.resolve() == root_path.resolve() else text
    problem = _name_problem(name)
    if problem is not None:
        raise RunError(f"run name {text!r} is not allowed ({problem}): {_NAME_RULE}, inside {root_path}/")
    path = root_path / name
    if path.resolve().parent != root_path.resolve():
        raise RunError(f"run {name!r} leads outside the runs folder {root_path}/ (a symbolic link to "
                       f"{path.resolve()}); remove that link or choose another name")
    return path


def _reap() -> None:
    """Collect exit statuses of finished children so they do not linger as zombies."""
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            del _CHILDREN[pid]


def _alive(pid: int | None) -> bool:
    _reap()
    return pid is not None and runs.process_alive(int(pid))


def _launch(run_dir: Path, args: list[str]) -> int:
    """Create the lock (O_EXCL), start ``python -m calogen train ARGS`` in its own session; returns its pid."""
    try:
        token = runs.create_launch_lock(run_dir)
    except RunLockedError as exc:
        raise RunError(str(exc)) from None
    env = dict(os.environ, **{runs.LOCK_ENV: token})
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo_root()), env.get("PYTHONPATH", "")) if p)
    try:
        with open(run_dir / "output.txt", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "calogen", "train", *args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,  # own process group: cancel_run signals the whole group
            )
    except OSError:
        RunDirectory(run_dir).release_lock()
        raise
    _CHILDREN[proc.pid] = proc
    return proc.pid


def start_run(config: TrainConfig | Mapping[str, Any], root: str | os.PathLike[str] | None = None) -> Path:
    """Start a training run in the background; returns its directory.

    config: a :class:`calogen.gan.train.TrainConfig` or a dict of its fields. ``config.run_dir`` is the run name
    (or ``root/NAME``), checked by :func:`run_path`; left empty, the name is ``<arch>-<recipe>-<UTC time>``.
    root: the runs folder (default :func:`calogen.paths.runs_dir`).
    Raises :class:`RunError` for a name outside the runs folder or a directory that already exists (two tabs
    cannot start the same run), and ValueError for bad settings; in both cases nothing is created.
    status.json says ``queued`` before the process starts; the process then writes ``running``.
    """
    values = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
    root_path = Path(root) if root is not None else runs_dir()
    name = values.get("run_dir") or ""
    if not name or name == TrainConfig.run_dir:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        name = f"{values.get('arch', 'conv3d')}-{values.get('recipe', '3dgan')}-{stamp}"
    run_dir = run_path(name, root_path)
    values["run_dir"] = str(run_dir)
    if not values.get("command"):
        values["command"] = f"python -m calogen train --config {run_dir / 'config.json'}"
    resolved = TrainConfig.from_dict(values)  # validate before anything is created
    check_config(resolved)
    root_path.mkdir(parents=True, exist_ok=True)
    try:
        run_dir.mkdir()
    except FileExistsError:
        raise RunError(f"run directory {run_dir} already exists; choose another name, or resume it with "
                       "calogen.gan.jobs.resume_run") from None
    write_json_atomic(run_dir / "config.json", resolved.to_dict())
    RunDirectory(run_dir).status("queued", queued=utc_now(), run_dir=str(run_dir))
    pid = _launch(run_dir, ["--config", str(run_dir / "config.json"), "--run-dir", str(run_dir)])
    write_json_atomic(run_dir / "launch.json", {"pid": pid, "pgid": pid, "launched": utc_now()})
    return run_dir


def read_status(run_dir: str | os.PathLike[str], *,
                root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """status.json of a run, with ``run_dir`` added; a queued/running run whose process is gone reads as failed.

    run_dir: a run name or ``root/NAME`` (see :func:`run_path`). The check uses the pid written by the process
    itself, or the launcher's pid for a queued run (:func:`calogen.gan.runs.checked_status`).
    """
    path = run_path(run_dir, root)
    _reap()
    return runs.checked_status(path)


def list_runs(root: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Status of every run directory under ``root`` (default :func:`calogen.paths.runs_dir`), newest first
    (by start/queue time, then name). Folders whose name is not a valid run name are left out."""
    root_path = Path(root) if root is not None else runs_dir()
    if not root_path.is_dir():
        return []
    runs = []
    for child in root_path.iterdir():
        if _name_problem(child.name) is not None or child.resolve().parent != root_path.resolve():
            continue
        if child.is_dir() and ((child / "status.json").exists() or (child / "config.json").exists()):
            status = read_status(child, root=root_path)
            status.setdefault("name", child.name)
            status["name"] = child.name
            config = read_json(child / "config.json")
            status["arch"] = config.get("arch")
            status["recipe"] = config.get("recipe")
            runs.append(status)
    def key(s: dict[str, Any]) -> tuple[str, str]:
        return (str(s.get("queued") or s.get("started") or ""), s["name"])
    return sorted(runs, key=key, reverse=True)


def progress(status: dict[str, Any]) -> dict[str, Any]:
    """Step, planned steps, percentage and ETA of a run from its status (as :func:`read_status` returns it).

    Returns ``step``, ``total_steps`` (None before the process has planned them), ``percent`` and ``eta``
    (text such as '12 min'; '-' when unknown or the run is not running), counted down since the last step
    (:func:`calogen.gan.runs.remaining_s`).
    """
    return {"step": status.get("step"), "total_steps": status.get("total_steps"), "percent": status.get("percent"),
            "eta": runs.format_duration(runs.remaining_s(status))}


def runs_table(root: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """One row per run for a table, newest first: name, state (a preparing run says what it is doing), step,
    total_steps, percent, eta, arch, recipe, queued, ended and exit_reason, all read from the runs' status and
    config files."""
    rows = []
    for status in list_runs(root):
        state = status.get("state")
        if state == "preparing" and status.get("phase"):
            state = f"preparing: {status['phase']}"
        rows.append({"name": status["name"], "state": state, **progress(status),
                     "arch": status.get("arch"), "recipe": status.get("recipe"), "queued": status.get("queued"),
                     "ended": status.get("ended"), "exit_reason": status.get("exit_reason")})
    return rows


def read_metrics(run_dir: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """metrics.csv as a DataFrame (columns :data:`calogen.gan.runs.METRIC_COLUMNS`; empty before the first step)."""
    return runs.read_metrics(run_path(run_dir, root))


def tail_log(run_dir: str | os.PathLike[str], n: int = 20, *, root: str | os.PathLike[str] | None = None) -> list[str]:
    """The last ``n`` lines of log.txt (and, when the process died early, of output.txt)."""
    lines: list[str] = []
    folder = run_path(run_dir, root)
    for name in ("log.txt", "output.txt"):
        path = folder / name
        if path.exists():
            lines = path.read_text(errors="replace").splitlines()
            if lines:
                break
    return lines[-n:] if n > 0 else []


def cancel_run(run_dir: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None,
               timeout_s: float = CANCEL_GRACE_S) -> dict[str, Any]:
    """Stop a run: SIGTERM to its process group, wait up to ``timeout_s``, then SIGKILL. Returns the status.

    run_dir: a run name or ``root/NAME`` (see :func:`run_path`). The training process answers SIGTERM by
    cutting the step in progress short, saving a checkpoint and writing ``cancelled``. If it had to be
    killed, status.json is set to ``cancelled`` here (the last checkpoint is kept); a process that was already
    gone is marked failed.
    """
    path = run_path(run_dir, root)
    root = path.parent
    status = read_status(path, root=root)
    if status.get("state") not in ACTIVE_STATES:
        return status
    launch = read_json(path / "launch.json")
    pid = status.get("pid") or launch.get("pid")
    if pid is None:
        raise RunError(f"run {path} has no process id recorded yet; try again in a moment")
    pgid = int(status.get("pgid") or launch.get("pgid") or pid)
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return read_status(path, root=root)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    run = RunDirectory(path)
    if _alive(pid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for _ in range(50):
            if not _alive(pid):
                break
            time.sleep(0.1)
        run.status("cancelled", exit_reason=f"killed (SIGKILL) after not stopping within {timeout_s:g} s of "
                                            "SIGTERM; the last periodic checkpoint is kept")
        run.release_lock()
    else:
        state = run.read_status().get("state")
        if state in ACTIVE_STATES:  # stopped before its SIGTERM handler was installed
            run.status("cancelled", exit_reason="SIGTERM received before training started; nothing to resume from "
                       "yet" if state == "queued" else "SIGTERM received; the process ended without writing its "
                       "status (the last periodic checkpoint is kept)")
            run.release_lock()
    return read_status(path, root=root)


def resume_run(run_dir: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> Path:
    """Continue a stopped run (cancelled, failed or finished with more epochs configured) in the background.

    run_dir: a run name or ``root/NAME`` (see :func:`run_path`). Raises :class:`RunError` while the run is
    queued or running, or when it has no checkpoint yet.
    """
    path = run_path(run_dir, root)
    status = read_status(path, root=path.parent)
    if status.get("state") in ACTIVE_STATES:
        raise RunError(f"run {path} is {status['state']}; cancel it before resuming")
    run = RunDirectory(path)
    if not run.last.exists():
        raise RunError(f"run {path} has no checkpoint to resume from; start a new run instead")
    try:
        runs.clear_stale_lock(path)  # left behind by a killed process?
    except RunLockedError as exc:
        raise RunError(str(exc)) from None
    (path / "launch.json").unlink(missing_ok=True)
    run.status("queued", queued=utc_now(), resumed_from=status.get("state"))
    pid = _launch(path, ["--resume", str(path)])
    write_json_atomic(path / "launch.json", {"pid": pid, "pgid": pid, "launched": utc_now()})
    return path

"""Analog electromagnetic-cascade Monte Carlo for layered calorimeters (torch, CPU or CUDA).

    >>> from calogen.showers import Conditions
    >>> from calogen.simulation.mc import MonteCarlo, simulate
    >>> showers = MonteCarlo().sample(Conditions.broadcast(100.0, 1.5708, n=10), seed=1)   # a Source
    >>> showers, book = simulate(50.0, 1.5708, n=4, seed=1, return_bookkeeping=True)       # the engine call

Physics: see :mod:`calogen.simulation.mc.physics` (cross sections, stopping powers, cuts) and
:mod:`calogen.simulation.mc.transport` (the vectorised transport). Incidence: the primary enters the front face at
z = 0 at a point uniform within one cell, with direction (0, cos theta, sin theta): theta = pi/2 is normal
to the layers and theta < pi/2 tilts the shower towards +y. The readout window (nx, ny) cells x all layers is
centred on each shower's energy barycentre (as in the 3DGAN data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from calogen.detector import Detector, get_detector
from calogen.showers import TRAINING_RANGE, ConditionRange, Conditions, OutOfRangeError, Progress, ShowerSet
from calogen.simulation.mc.physics import ELECTRON_MASS_MEV, PhysicsTables, build_tables
from calogen.simulation.mc.transport import BOOK_COLUMNS, Cascade, Geometry, Particles

__all__ = ["CONDITION_RANGE", "NAME", "PARTICLES", "PHYSICS_VERSION", "WIDE_CONDITION_RANGE", "Bookkeeping",
           "MonteCarlo", "simulate"]

NAME = "Monte Carlo"
PARTICLES = ("e-", "e+", "gamma")
CONDITION_RANGE = ConditionRange((1.0, 500.0), TRAINING_RANGE.theta_rad)
"""What the Monte Carlo accepts by default: 1-500 GeV (its physics is validated there) at the 3DGAN angles,
60-120 deg."""
WIDE_CONDITION_RANGE = ConditionRange((0.01, 2000.0), (math.pi / 180.0, 179.0 * math.pi / 180.0))
"""With ``allow_out_of_range``: 0.01-2000 GeV, 1-179 deg (outside the validated range)."""
PHYSICS_VERSION = "2026.12.02"
"""The version of the Monte Carlo's physics: it changes with every change that alters the showers of a seed.
Every shower set records it (attribute ``mc_physics``), and so does every production, so that samples of
different physics are never mixed (2026.12.02: Landau's restricted loss distribution in the silicon)."""
_GRID_MARGIN = 32  # cells scored beyond the window on each side, before the window is centred
_MAX_CHUNK_SHOWERS = 64  # showers simulated at once by default (with at most chunk_energy_gev between them)


@dataclass
class Bookkeeping:
    """Where the primary energy went, per shower, GeV (float64 (N,) arrays).

    deposited_sensitive: in the scored (silicon) slabs, everywhere (also outside the readout window);
    deposited_passive: continuous losses and absorbed photons in passive slabs; below_cut: particles under the
    tracking cuts stopped in passive slabs; leak_front / leak_back / leak_side: carried out of the volume;
    primary: the energy brought in (E for e- and gamma, E + 2 m_e for e+, which annihilates);
    in_window: the part of deposited_sensitive inside the readout window.
    """

    deposited_sensitive: npt.NDArray[np.float64]
    deposited_passive: npt.NDArray[np.float64]
    below_cut: npt.NDArray[np.float64]
    leak_front: npt.NDArray[np.float64]
    leak_back: npt.NDArray[np.float64]
    leak_side: npt.NDArray[np.float64]
    primary: npt.NDArray[np.float64]
    in_window: npt.NDArray[np.float64]

    @property
    def total(self) -> npt.NDArray[np.float64]:
        """Sum of all destinations, GeV (N,); equals ``primary`` up to rounding."""
        return (self.deposited_sensitive + self.deposited_passive + self.below_cut + self.leak_front
                + self.leak_back + self.leak_side)

    @property
    def relative_closure(self) -> npt.NDArray[np.float64]:
        """|total - primary| / primary (N,)."""
        return np.abs(self.total - self.primary) / self.primary

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-able dict of per-shower lists."""
        return {k: getattr(self, k).tolist() for k in (*BOOK_COLUMNS, "primary", "in_window")}


_TABLE_CACHE: dict[tuple[str, str, str], tuple[Geometry, PhysicsTables]] = {}


def _prepare(det: Detector, device: torch.device, dtype: torch.dtype) -> tuple[Geometry, PhysicsTables]:
    key = (repr(det.to_dict()), str(device), str(dtype))
    if key not in _TABLE_CACHE:
        _TABLE_CACHE[key] = (Geometry.from_detector(det, device, dtype), build_tables(det, device, dtype))
    return _TABLE_CACHE[key]


@dataclass(frozen=True)
class MonteCarlo:
    """The cascade Monte Carlo as a :class:`calogen.showers.Source` (its settings; nothing is held in memory).

    device: "cpu" or "cuda"; particle: the primary; detector: a name ("clic_ecal") or a TOML path;
    wide: accept :data:`WIDE_CONDITION_RANGE` instead of :data:`CONDITION_RANGE`;
    progress_steps: split every request into at least this many chunks (at most 64 showers each), so that
    ``progress`` is called, and a caller can stop, during the run. Small chunks make the cascade run several
    times slower per shower, and the showers depend on the chunking: a given seed, conditions and
    ``progress_steps`` always give the same showers, whether ``progress`` is given or not.
    """

    device: str = "cpu"
    particle: Literal["e-", "e+", "gamma"] = "e-"
    detector: str = "clic_ecal"
    wide: bool = False
    progress_steps: int = 1

    @property
    def name(self) -> str:
        """``"Monte Carlo"``."""
        return NAME

    @property
    def condition_range(self) -> ConditionRange:
        """:data:`CONDITION_RANGE`, or :data:`WIDE_CONDITION_RANGE` when ``wide``."""
        return WIDE_CONDITION_RANGE if self.wide else CONDITION_RANGE

    def sample(self, conditions: Conditions, seed: int | None = None, progress: Progress | None = None) -> ShowerSet:
        """One shower per condition (float32 (n, 51, 51, 25) GeV for clic_ecal); see :func:`simulate`.

        Raises :class:`calogen.showers.OutOfRangeError` for conditions outside :attr:`condition_range`.
        """
        self.condition_range.check(conditions, f"the {NAME}")
        chunk = min(_MAX_CHUNK_SHOWERS, max(1, math.ceil(len(conditions) / max(self.progress_steps, 1))))
        showers: ShowerSet = simulate(conditions.energy_gev, conditions.theta_rad, particle=self.particle,
                                      detector=self.detector, seed=seed, device=self.device, progress=progress,
                                      allow_out_of_range=self.wide, max_chunk_showers=chunk)
        return showers


def simulate(
    energy_gev: float | npt.ArrayLike,
    theta_rad: float | npt.ArrayLike,
    *,
    n: int | None = None,
    particle: Literal["e-", "e+", "gamma"] = "e-",
    detector: Detector | str | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    return_bookkeeping: bool = False,
    allow_out_of_range: bool = False,
    chunk_energy_gev: float | None = None,
    max_chunk_showers: int = _MAX_CHUNK_SHOWERS,
    step_scale: float = 1.0,
) -> Any:
    """Simulate showers with the analog cascade Monte Carlo (the engine call under :class:`MonteCarlo`).

    Args:
        energy_gev: primary kinetic energy, GeV; a number or (n,) array, inside :data:`CONDITION_RANGE`
            (1-500 GeV; 0.01-2000 GeV with ``allow_out_of_range``).
        theta_rad: polar angle, radians (pi/2 = normal incidence; tilt in y-z); number or (n,) array, inside
            60-120 deg (1-179 deg with ``allow_out_of_range``). Both are broadcast by
            :meth:`calogen.showers.Conditions.broadcast`.
        n: number of showers (default: the length of the arrays).
        particle: "e-", "e+" or "gamma".
        detector: Detector, name ("clic_ecal") or TOML path; default clic_ecal.
        seed: seed of the torch.Generator; the same seed on the same device (and chunking) gives the same showers.
        device: "cpu", "cuda", or a torch.device.
        progress: callback progress(done, total) after each chunk of showers.
        return_bookkeeping: also return a :class:`Bookkeeping`.
        chunk_energy_gev: summed primary energy simulated at once (memory bound); default 5000 GeV on
            CPU, 50000 GeV on CUDA.
        max_chunk_showers: at most this many showers at once.
        step_scale: multiplies every step limit of e+- (1 = the defaults; 0.5 halves them, for convergence
            studies: the response should not depend on it).

    Returns:
        ShowerSet (showers float32 (n, nx, ny, n_layers) GeV in the readout window around the barycentre),
        or (ShowerSet, Bookkeeping) with ``return_bookkeeping``.
    Raises :class:`calogen.showers.OutOfRangeError` for conditions outside the range, ValueError for bad input.
    """
    from calogen.version import __version__

    if particle not in PARTICLES:
        raise ValueError(f"particle={particle!r} is not simulated; use one of {PARTICLES}")
    det = get_detector(detector)
    conditions = Conditions.broadcast(energy_gev, theta_rad, n)
    accepted = WIDE_CONDITION_RANGE if allow_out_of_range else CONDITION_RANGE
    try:
        accepted.check(conditions, f"the {NAME}")
    except OutOfRangeError as exc:
        hint = "" if allow_out_of_range else f"; pass allow_out_of_range=True for {WIDE_CONDITION_RANGE.describe()}"
        raise OutOfRangeError(f"{exc}{hint}") from None
    energy, theta = conditions.energy_gev, conditions.theta_rad
    n_showers = len(conditions)
    dev = torch.device(device)
    dtype = torch.float32
    geometry, tables = _prepare(det, dev, dtype)
    gen = torch.Generator(device=dev)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    gen.manual_seed(int(seed))
    budget = chunk_energy_gev if chunk_energy_gev is not None else (5000.0 if dev.type == "cpu" else 50000.0)

    nx, ny = det.n_cells
    grid_cells = max(nx, ny) + 2 * _GRID_MARGIN
    out = np.zeros((n_showers, nx, ny, det.n_layers), dtype=np.float32)
    book = np.zeros((n_showers, len(BOOK_COLUMNS)), dtype=np.float64)
    in_window = np.zeros(n_showers, dtype=np.float64)
    start = 0
    while start < n_showers:
        stop = start + 1
        total = energy[start]
        while stop < n_showers and stop - start < max_chunk_showers and total + energy[stop] <= budget:
            total += energy[stop]
            stop += 1
        grid, bk = _simulate_chunk(energy[start:stop], theta[start:stop], particle, geometry, tables,
                                   grid_cells, gen, step_scale)
        book[start:stop] = bk
        for b in range(stop - start):
            window = _window(grid[b], nx, ny)
            out[start + b] = window
            in_window[start + b] = float(window.sum(dtype=np.float64))
        start = stop
        if progress is not None:
            progress(start, n_showers)

    mev_per_gev = 1000.0
    attrs = {
        "particle": particle,
        "source": "mc",
        "detector": det.name,
        "seed": int(seed),
        "calogen_version": __version__,
        "mc_physics": PHYSICS_VERSION,
        "device": str(dev),
    }
    showers = ShowerSet(out / mev_per_gev, energy.astype(np.float32), theta.astype(np.float32), attrs)
    if not return_bookkeeping:
        return showers
    primary = energy * mev_per_gev + (2.0 * ELECTRON_MASS_MEV if particle == "e+" else 0.0)
    bookkeeping = Bookkeeping(
        **{column: book[:, k] / mev_per_gev for k, column in enumerate(BOOK_COLUMNS)},
        primary=primary / mev_per_gev,
        in_window=in_window / mev_per_gev,
    )
    return showers, bookkeeping


def _simulate_chunk(
    energy_gev: npt.NDArray[np.float64],
    theta_rad: npt.NDArray[np.float64],
    particle: str,
    geometry: Geometry,
    tables: PhysicsTables,
    grid_cells: int,
    gen: torch.Generator,
    step_scale: float = 1.0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """Simulate one chunk; returns the scored grid (B, G, G, L) in MeV and the bookkeeping (B, 6) in MeV."""
    dev, dtype = geometry.z_bounds.device, geometry.z_bounds.dtype
    b = energy_gev.size
    cascade = Cascade(geometry, tables, b, grid_cells, gen, step_scale=step_scale)
    cell = geometry.cell_size_mm
    # entry point uniform within one cell (the cell at the grid centre), on the front face
    xy = torch.rand(b, 2, generator=gen, device=dev, dtype=dtype) * cell
    pos = torch.cat((xy, torch.zeros(b, 1, device=dev, dtype=dtype)), dim=1)
    th = torch.as_tensor(theta_rad, device=dev, dtype=torch.float64)
    direction = torch.stack((torch.zeros_like(th), torch.cos(th), torch.sin(th)), dim=1).to(dtype)
    charge = {"e-": -1.0, "e+": 1.0, "gamma": 0.0}[particle]
    primaries = Particles(
        pos=pos,
        dir=direction,
        energy=torch.as_tensor(energy_gev * 1000.0, device=dev, dtype=dtype),
        charge=torch.full((b,), charge, device=dev, dtype=dtype),
        slab=torch.zeros(b, dtype=torch.long, device=dev),
        shower=torch.arange(b, device=dev),
    )
    cascade.push(primaries)
    cascade.run()
    grid, book = cascade.result()
    return grid.cpu().numpy(), book.cpu().numpy()


def _window(grid: npt.NDArray[np.float32], nx: int, ny: int) -> npt.NDArray[np.float32]:
    """Cut (nx, ny, L) out of the scored (G, G, L) grid, centred on the energy barycentre in x and y."""
    g = grid.shape[0]
    total = float(grid.sum(dtype=np.float64))
    if total > 0:
        px = grid.sum(axis=(1, 2), dtype=np.float64)
        py = grid.sum(axis=(0, 2), dtype=np.float64)
        cx = round(float((np.arange(g) * px).sum() / total))
        cy = round(float((np.arange(g) * py).sum() / total))
    else:
        cx = cy = g // 2
    x0 = min(max(cx - nx // 2, 0), g - nx)
    y0 = min(max(cy - ny // 2, 0), g - ny)
    return grid[x0:x0 + nx, y0:y0 + ny]

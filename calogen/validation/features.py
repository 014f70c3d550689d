"""Per-shower observables: pure, vectorised functions of shower arrays.

Every function takes ``showers``: float32 (N, nx, ny, nz), GeV deposited in the silicon of each cell, axes x, y
(transverse, 5.1 mm cells) and z = layer (front to back), and returns numpy arrays with one entry (or one row)
per shower. A torch tensor is accepted wherever it is passed as ``showers`` (it is moved to the CPU and
converted). Empty showers never divide by zero: denominators are guarded by :data:`EPSILON`.

The observables are those used to validate fast calorimeter simulation in the 3DGAN papers (Khattak et al.,
IEEE Access 2021) and in the CaloChallenge 2022 (arXiv:2410.21611): sampling fraction, energy profiles,
moments, layer fractions R1/R2/R3, hit counts, sparsity, the cell-energy spectrum, the position of the maximum
and the angle measured from the layer barycentres.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from calogen.detector import clic_ecal

__all__ = [
    "AXES",
    "CELL_SIZE_MM",
    "EPSILON",
    "HIT_THRESHOLD_GEV",
    "LAYER_GROUPS",
    "as_numpy",
    "axis_moments",
    "barycentre",
    "cell_energies",
    "clic_layer_depth_mm",
    "core_containment",
    "deposited_energy",
    "energy_profile",
    "high_level_features",
    "hits_beyond",
    "layer_energies",
    "layer_fractions",
    "layer_of_maximum",
    "layer_width",
    "measured_angle",
    "n_hits",
    "position_of_maximum",
    "sampling_fraction",
    "scalar_features",
    "shower_summary",
    "sparsity_curve",
    "width",
]

Array = npt.NDArray[np.float64]
Axis = Literal["x", "y", "z"]

EPSILON = 1e-12  # guards every division by an energy sum (GeV) against empty showers
CELL_SIZE_MM = 5.1  # transverse cell pitch of the CLIC ECAL readout, mm (ECalBarrel_o1_v01_01.xml, CartesianGridXY)
HIT_THRESHOLD_GEV = 2e-4  # a cell counts as a hit above 0.2 MeV, as in the 3DGAN validation
# R1/R2/R3: energy fractions in layers 1-8, 9-17, 18-25 (0-based half-open ranges); 3DGAN validation.
LAYER_GROUPS: tuple[tuple[int, int], ...] = ((0, 8), (8, 17), (17, 25))
AXES: dict[str, int] = {"x": 1, "y": 2, "z": 3}  # axis name -> array axis of (N, nx, ny, nz)


def as_numpy(showers: Any) -> npt.NDArray[np.float32]:
    """``showers`` as a float32 numpy array (torch tensors are detached and moved to the CPU)."""
    if hasattr(showers, "detach") and hasattr(showers, "cpu"):
        showers = showers.detach().cpu().numpy()
    array = np.asarray(showers, dtype=np.float32)
    if array.ndim != 4:
        raise ValueError(
            f"showers have shape {array.shape}; expected (N, nx, ny, nz) cells in GeV, e.g. (N, 51, 51, 25)"
        )
    return array


def _axis_index(axis: str) -> int:
    if axis not in AXES:
        raise ValueError(f"axis={axis!r} is not one of 'x', 'y', 'z'")
    return AXES[axis]


def clic_layer_depth_mm(n_layers: int = 25) -> Array:
    """Depth of the centre of each silicon layer behind the calorimeter front, mm; (n_layers,).

    For the 25-layer CLIC stack the depths come from its description (:func:`calogen.detector.clic_ecal`: about
    4.4 mm pitch for layers 1-17, 6.8 mm for 18-25). Any other number of layers gets a uniform pitch of one cell
    size (5.1 mm), i.e. depth in cell units as the 3DGAN angle measurement uses.
    """
    detector = clic_ecal()
    if n_layers != detector.n_layers:
        return (np.arange(n_layers, dtype=np.float64) + 0.5) * CELL_SIZE_MM
    bounds = detector.boundaries_mm
    depth = [0.5 * (bounds[k] + bounds[k + 1]) for k, slab in enumerate(detector.slabs) if slab.sensitive]
    return np.asarray(depth, dtype=np.float64)


def deposited_energy(showers: Any) -> Array:
    """Sum of all cells, GeV; (N,)."""
    s = as_numpy(showers)
    return s.reshape(s.shape[0], -1).sum(axis=1, dtype=np.float64)


def sampling_fraction(showers: Any, energy_gev: Any) -> Array:
    """Deposited energy / primary energy (dimensionless, ~0.02 for the CLIC ECAL); (N,)."""
    e = np.asarray(energy_gev, dtype=np.float64).reshape(-1)
    dep = deposited_energy(showers)
    if e.shape != dep.shape:
        raise ValueError(f"energy_gev has {e.shape[0]} entries for {dep.shape[0]} showers; pass one per shower")
    return dep / np.maximum(e, EPSILON)


def energy_profile(showers: Any, axis: Axis = "z") -> Array:
    """Energy per slice along ``axis`` ('x', 'y' or 'z' = layers), GeV; (N, n_axis)."""
    s = as_numpy(showers)
    ax = _axis_index(axis)
    others = tuple(a for a in (1, 2, 3) if a != ax)
    return s.sum(axis=others, dtype=np.float64)


def layer_energies(showers: Any) -> Array:
    """Energy per layer, GeV; (N, nz). Same as ``energy_profile(showers, 'z')``."""
    return energy_profile(showers, "z")


def _profile_moments(profile: Array) -> dict[str, Array]:
    """Barycentre, width, skewness and kurtosis (excess) of profiles (N, n) in bin-index units."""
    n = profile.shape[1]
    pos = np.arange(n, dtype=np.float64)
    total = profile.sum(axis=1)
    w = profile / np.maximum(total, EPSILON)[:, None]
    mean = w @ pos
    d = pos[None, :] - mean[:, None]
    var = np.maximum((w * d**2).sum(axis=1), 0.0)
    std = np.sqrt(var)
    safe = np.maximum(std, EPSILON)
    skew = np.where(std > 0, (w * d**3).sum(axis=1) / safe**3, 0.0)
    kurt = np.where(std > 0, (w * d**4).sum(axis=1) / safe**4 - 3.0, 0.0)
    return {"barycentre": mean, "width": std, "skewness": skew, "kurtosis": kurt}


def axis_moments(showers: Any, axis: Axis) -> dict[str, Array]:
    """Energy-weighted moments along ``axis``: 'barycentre' and 'width' (cell/layer index units, index 0 is the
    centre of the first cell), 'skewness' and 'kurtosis' (excess, dimensionless); each (N,)."""
    return _profile_moments(energy_profile(showers, axis))


def barycentre(showers: Any, axis: Axis, *, unit: Literal["cell", "mm"] = "cell") -> Array:
    """Energy barycentre along ``axis``; (N,).

    unit='cell': index units (a single hot cell at index i gives exactly i). unit='mm' (x and y only): mm from
    the centre of the window, with 5.1 mm cells. Empty showers give 0 (cell units).
    """
    mean = axis_moments(showers, axis)["barycentre"]
    if unit == "cell":
        return mean
    if axis == "z":
        raise ValueError("unit='mm' is defined for the transverse axes x and y; use clic_layer_depth_mm for z")
    n = as_numpy(showers).shape[_axis_index(axis)]
    return (mean - 0.5 * (n - 1)) * CELL_SIZE_MM


def width(showers: Any, axis: Axis, *, unit: Literal["cell", "mm"] = "cell") -> Array:
    """Energy-weighted standard deviation along ``axis`` in cells (or mm for x and y); (N,)."""
    std = axis_moments(showers, axis)["width"]
    if unit == "cell":
        return std
    if axis == "z":
        raise ValueError("unit='mm' is defined for the transverse axes x and y")
    return std * CELL_SIZE_MM


def core_containment(showers: Any, radius_mm: float, *, cell_size_mm: float = CELL_SIZE_MM) -> Array:
    """Fraction of each shower's energy in the cells whose centre lies within ``radius_mm`` of the shower's
    transverse energy barycentre (all layers projected onto x-y); (N,).

    With 5.1 mm cells, 5.1 mm takes the barycentre's cell and its four edge neighbours (when the barycentre sits
    at a cell centre): a measure of the core; 19 and 28.5 mm measure the halo.
    """
    array = as_numpy(showers).astype(np.float64)
    projection = array.sum(axis=3)  # (N, nx, ny)
    total = projection.sum(axis=(1, 2)) + EPSILON
    nx, ny = projection.shape[1:]
    x = (np.arange(nx) + 0.5) * cell_size_mm
    y = (np.arange(ny) + 0.5) * cell_size_mm
    bx = (projection.sum(axis=2) * x).sum(axis=1) / total
    by = (projection.sum(axis=1) * y).sum(axis=1) / total
    d2 = (x[None, :, None] - bx[:, None, None]) ** 2 + (y[None, None, :] - by[:, None, None]) ** 2
    return (projection * (d2 <= radius_mm * radius_mm)).sum(axis=(1, 2)) / total


def layer_fractions(showers: Any, groups: tuple[tuple[int, int], ...] = LAYER_GROUPS) -> Array:
    """Fraction of the deposited energy in each layer group (default R1, R2, R3 = layers 1-8, 9-17, 18-25);
    (N, n_groups). Groups are 0-based half-open layer ranges; for the default groups the rows sum to 1."""
    layers = layer_energies(showers)
    total = layers.sum(axis=1)
    out = np.stack([layers[:, lo:hi].sum(axis=1) for lo, hi in groups], axis=1)
    return out / np.maximum(total, EPSILON)[:, None]


def n_hits(showers: Any, threshold_gev: float = HIT_THRESHOLD_GEV) -> Array:
    """Number of cells above ``threshold_gev`` (default 2e-4 GeV); (N,)."""
    s = as_numpy(showers)
    return np.count_nonzero(s.reshape(s.shape[0], -1) > threshold_gev, axis=1).astype(np.float64)


def layer_width(showers: Any) -> Array:
    """Each shower's transverse width, cells: the layers' widths ``sqrt(x_width^2 + y_width^2)`` (energy-weighted
    about the layer's own barycentre) averaged with the layers' energies as weights; (N,). Unlike the width of
    the projection over all layers it does not grow with the tilt of an inclined shower."""
    s = as_numpy(showers)
    mom = _layer_moments_from_projections(s.sum(axis=2, dtype=np.float64), s.sum(axis=1, dtype=np.float64))
    layers = s.sum(axis=(1, 2), dtype=np.float64)  # (N, nz)
    widths = np.sqrt(mom["x_width"] ** 2 + mom["y_width"] ** 2)
    return (layers * widths).sum(axis=1) / np.maximum(layers.sum(axis=1), EPSILON)


def hits_beyond(showers: Any, radius_cells: float = 6.0, threshold_gev: float = HIT_THRESHOLD_GEV,
                chunk: int = 64) -> Array:
    """Hits (cells above ``threshold_gev``) further than ``radius_cells`` from their layer's energy barycentre;
    (N,). Where a generator strews its hits: the count can be right with the hits in the wrong place."""
    s = as_numpy(showers)
    n, nx, ny, _ = s.shape
    x = (np.arange(nx, dtype=np.float64) - 0.5 * (nx - 1))[None, :, None, None]
    y = (np.arange(ny, dtype=np.float64) - 0.5 * (ny - 1))[None, None, :, None]
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, chunk):
        part = s[start:start + chunk]
        mom = _layer_moments_from_projections(part.sum(axis=2, dtype=np.float64), part.sum(axis=1, dtype=np.float64))
        d2 = (x - mom["x_barycentre"][:, None, None, :]) ** 2 + (y - mom["y_barycentre"][:, None, None, :]) ** 2
        out[start:start + chunk] = np.count_nonzero((part > threshold_gev) & (d2 > radius_cells**2), axis=(1, 2, 3))
    return out


def sparsity_curve(showers: Any, thresholds_gev: Any) -> Array:
    """Fraction of cells above each threshold (occupancy; 1 - sparsity); (N, n_thresholds)."""
    s = as_numpy(showers)
    flat = s.reshape(s.shape[0], -1)
    thresholds = np.asarray(thresholds_gev, dtype=np.float64).reshape(-1)
    return np.stack([np.count_nonzero(flat > t, axis=1) / flat.shape[1] for t in thresholds], axis=1)


def cell_energies(showers: Any, threshold_gev: float = HIT_THRESHOLD_GEV) -> npt.NDArray[np.float32]:
    """Energies of all cells above ``threshold_gev`` in all showers (the cell-energy spectrum), GeV; (M,)."""
    s = as_numpy(showers)
    return s[s > threshold_gev]


def position_of_maximum(showers: Any) -> npt.NDArray[np.int64]:
    """(x, y, layer) index of the hottest cell of each shower; (N, 3)."""
    s = as_numpy(showers)
    flat = s.reshape(s.shape[0], -1).argmax(axis=1)
    return np.stack(np.unravel_index(flat, s.shape[1:]), axis=1).astype(np.int64)


def layer_of_maximum(showers: Any) -> Array:
    """Index of the layer with the largest energy (longitudinal shower maximum); (N,)."""
    return layer_energies(showers).argmax(axis=1).astype(np.float64)


def _layer_moments_from_projections(x_by_layer: Array, y_by_layer: Array) -> dict[str, Array]:
    """Per-layer transverse moments in cell units from the (N, nx, nz) and (N, ny, nz) projections:
    'x_barycentre', 'y_barycentre' (from the window centre), 'x_width', 'y_width', each (N, nz); empty layers
    give 0, i.e. the window centre, as the CaloChallenge high-level features (centred on the shower axis)."""
    out: dict[str, Array] = {}
    for name, prof in (("x", x_by_layer), ("y", y_by_layer)):
        pos = (np.arange(prof.shape[1], dtype=np.float64) - 0.5 * (prof.shape[1] - 1))[None, :, None]
        total = prof.sum(axis=1)  # (N, nz)
        w = prof / np.maximum(total, EPSILON)[:, None, :]
        mean = (w * pos).sum(axis=1)
        var = np.maximum((w * pos**2).sum(axis=1) - mean**2, 0.0)
        empty = total <= EPSILON
        out[f"{name}_barycentre"] = np.where(empty, 0.0, mean)
        out[f"{name}_width"] = np.where(empty, 0.0, np.sqrt(var))
    return out


def measured_angle(
    showers: Any,
    *,
    layer_depth_mm: Any = None,
    cell_size_mm: float = CELL_SIZE_MM,
) -> Array:
    """Polar angle measured from the layer barycentres, radians (pi/2 = normal incidence); (N,).

    As the 3DGAN angle head (Khattak et al. 2021): the y barycentre of each layer is fitted by a straight line
    against the layer depth, weighting each layer by its energy. With slope = dy/d(depth) (both in mm), the
    shower axis makes theta = pi/2 - arctan(slope) with the beam: a particle at theta < pi/2 drifts towards +y
    as it goes deeper. layer_depth_mm: (nz,) depth of each layer (default :func:`clic_layer_depth_mm`).
    Showers with fewer than two non-empty layers return pi/2.
    """
    s = as_numpy(showers)
    nz = s.shape[3]
    depth = clic_layer_depth_mm(nz) if layer_depth_mm is None else np.asarray(layer_depth_mm, dtype=np.float64)
    if depth.shape != (nz,):
        raise ValueError(f"layer_depth_mm has shape {depth.shape}; expected ({nz},), one depth per layer")
    return _angle_from_projection(s.sum(axis=1, dtype=np.float64), depth, cell_size_mm)


def _angle_from_projection(y_by_layer: Array, depth: Array, cell_size_mm: float) -> Array:
    """Measured angle from the (N, ny, nz) y-profile of each layer; see :func:`measured_angle`."""
    weight = y_by_layer.sum(axis=1)  # (N, nz) energy per layer
    pos_mm = np.arange(y_by_layer.shape[1], dtype=np.float64) * cell_size_mm
    y_mean = (y_by_layer * pos_mm[None, :, None]).sum(axis=1) / np.maximum(weight, EPSILON)  # (N, nz)
    # weighted least squares of y_mean against depth
    wsum = np.maximum(weight.sum(axis=1), EPSILON)
    z_bar = (weight * depth[None, :]).sum(axis=1) / wsum
    y_bar = (weight * y_mean).sum(axis=1) / wsum
    dz = depth[None, :] - z_bar[:, None]
    s_zz = (weight * dz**2).sum(axis=1)
    s_zy = (weight * dz * (y_mean - y_bar[:, None])).sum(axis=1)
    slope = s_zy / np.maximum(s_zz, EPSILON)
    enough = np.count_nonzero(weight > 0, axis=1) >= 2
    return np.where(enough, 0.5 * np.pi - np.arctan(slope), 0.5 * np.pi)


def scalar_features(showers: Any, energy_gev: Any) -> dict[str, Array]:
    """The per-shower scalars compared as 1D distributions; name -> (N,).

    deposited_energy_gev, sampling_fraction, r1, r2, r3, barycentre/width in x and y (mm) and z (layers),
    n_hits (> 2e-4 GeV), layer_of_maximum, measured_angle_rad.
    """
    return shower_summary(showers, energy_gev)["scalars"]


def shower_summary(showers: Any, energy_gev: Any) -> dict[str, Any]:
    """Everything the sample comparison needs, from as few passes over the cells as possible.

    Returns {"scalars": name -> (N,) (see :func:`scalar_features`), "profile_x": (N, nx), "profile_y": (N, ny),
    "profile_z": (N, nz) GeV, "high_level": (N, F), "high_level_names": list of F names}.
    """
    s = as_numpy(showers)
    e = np.asarray(energy_gev, dtype=np.float64).reshape(-1)
    if e.shape[0] != s.shape[0]:
        raise ValueError(f"energy_gev has {e.shape[0]} entries for {s.shape[0]} showers; pass one per shower")
    x_by_layer = s.sum(axis=2, dtype=np.float64)  # (N, nx, nz)
    y_by_layer = s.sum(axis=1, dtype=np.float64)  # (N, ny, nz)
    layers = y_by_layer.sum(axis=1)  # (N, nz)
    profiles = {"x": x_by_layer.sum(axis=2), "y": y_by_layer.sum(axis=2), "z": layers}
    moments = {axis: _profile_moments(p) for axis, p in profiles.items()}
    dep = layers.sum(axis=1)
    total = np.maximum(dep, EPSILON)
    hits = n_hits(s)
    scalars: dict[str, Array] = {
        "deposited_energy_gev": dep,
        "sampling_fraction": dep / np.maximum(e, EPSILON),
    }
    for i, (lo, hi) in enumerate(LAYER_GROUPS, start=1):
        scalars[f"r{i}"] = layers[:, lo:hi].sum(axis=1) / total
    for axis in ("x", "y"):
        n = s.shape[AXES[axis]]
        scalars[f"barycentre_{axis}_mm"] = (moments[axis]["barycentre"] - 0.5 * (n - 1)) * CELL_SIZE_MM
        scalars[f"width_{axis}_mm"] = moments[axis]["width"] * CELL_SIZE_MM
    scalars["barycentre_z_layer"] = moments["z"]["barycentre"]
    scalars["width_z_layer"] = moments["z"]["width"]
    scalars["n_hits"] = hits
    scalars["layer_of_maximum"] = layers.argmax(axis=1).astype(np.float64)
    depth_mm = clic_layer_depth_mm(s.shape[3])
    scalars["measured_angle_rad"] = _angle_from_projection(y_by_layer, depth_mm, CELL_SIZE_MM)
    hlf, names = _high_level_from_projections(x_by_layer, y_by_layer, e, hits)
    return {
        "scalars": scalars,
        "profile_x": profiles["x"],
        "profile_y": profiles["y"],
        "profile_z": layers,
        "high_level": hlf,
        "high_level_names": names,
    }


def high_level_features(showers: Any, energy_gev: Any) -> tuple[Array, list[str]]:
    """High-level features for the classifier test, FPD and KPD: ((N, F) array, F names).

    As the CaloChallenge 2022 high-level set: energy of each layer divided by the primary energy, the x and y
    barycentre (cells from the window centre; 0 for empty layers) and width of each layer, plus the sampling
    fraction and log10(1 + hits). F = 5 nz + 2 (127 for 25 layers).
    """
    s = as_numpy(showers)
    e = np.asarray(energy_gev, dtype=np.float64).reshape(-1)
    if e.shape[0] != s.shape[0]:
        raise ValueError(f"energy_gev has {e.shape[0]} entries for {s.shape[0]} showers; pass one per shower")
    hlf, names = _high_level_from_projections(
        s.sum(axis=2, dtype=np.float64), s.sum(axis=1, dtype=np.float64), e, n_hits(s)
    )
    return hlf, names


def _high_level_from_projections(
    x_by_layer: Array, y_by_layer: Array, energy_gev: Array, hits: Array
) -> tuple[Array, list[str]]:
    nz = x_by_layer.shape[2]
    layers = y_by_layer.sum(axis=1) / np.maximum(energy_gev, EPSILON)[:, None]
    mom = _layer_moments_from_projections(x_by_layer, y_by_layer)
    columns = [layers, mom["x_barycentre"], mom["y_barycentre"], mom["x_width"], mom["y_width"]]
    names = [f"{prefix}_layer{k}" for prefix in ("e_frac", "x_bary", "y_bary", "x_width", "y_width")
             for k in range(nz)]
    extra = np.stack([layers.sum(axis=1), np.log10(1.0 + hits)], axis=1)
    names += ["sampling_fraction", "log10_1p_hits"]
    return np.concatenate([*columns, extra], axis=1), names

"""Pure helpers for the app: URL state parsing and single-shower figures.

Nothing here imports streamlit, so every function is testable with plain pytest and reusable in notebooks.

- :func:`parse_view_state` turns a query-string mapping (``st.query_params``) into a validated
  :class:`ViewState` plus a list of readable warnings; :func:`view_state_to_query` goes back.
- Figure builders return a ``plotly.graph_objects.Figure`` and never show or save it.
- :func:`shower_numbers` gives the headline numbers of one shower.

Shower arrays are float32 ``(nx, ny, nz)`` in GeV, axes x, y (transverse cells) and layer (front to back),
as in :class:`calogen.io.ShowerSet`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from calogen.validation import features
from calogen.plots.figures import CELL_MM, style_figure

__all__ = [
    "DEVICES",
    "ENERGY_RANGE_GEV",
    "HIT_THRESHOLD_GEV",
    "MAX_SHOWERS",
    "THETA_RANGE_DEG",
    "ViewState",
    "block_sum",
    "angle_tolerance_deg",
    "bin_rows",
    "energy_bin_label",
    "format_card",
    "lateral_profiles",
    "layer_animation_figure",
    "lateral_profile_figure",
    "longitudinal_profile_figure",
    "mean_images_figure",
    "measured_theta_rad",
    "parse_view_state",
    "projection",
    "progress_text",
    "projections_figure",
    "sampling_fraction_figure",
    "shower_3d_figure",
    "shower_numbers",
    "side_by_side_figure",
    "speedup_sentence",
    "stale_batch_message",
    "theta_bin_label",
    "throughput_figure",
    "view_state_to_query",
]

ENERGY_RANGE_GEV = (2.0, 500.0)  # primary energy range of the 3DGAN angle data set, GeV
THETA_RANGE_DEG = (60.0, 120.0)  # polar-angle range of the 3DGAN angle data set, degrees
MAX_SHOWERS = 64  # showers per request in the app (CPU Monte Carlo takes seconds per GeV-shower)
DEVICES = ("auto", "cpu", "cuda")
HIT_THRESHOLD_GEV = features.HIT_THRESHOLD_GEV  # a hit: a cell above 0.2 MeV, as in the 3DGAN validation


@dataclass(frozen=True)
class ViewState:
    """What the URL can carry between pages (units as named)."""

    energy_gev: float = 50.0  # primary energy, GeV
    theta_deg: float = 90.0  # polar angle, degrees (90 = normal incidence)
    n_showers: int = 4  # showers per request
    seed: int = 0  # seed of the sampling request
    source: str = ""  # "Monte Carlo", "GFlash" or a model name; "" = the best available (see sources.rank_sources)
    shower_index: int = 0  # the shower shown in detail
    device: str = "auto"  # "auto", "cpu" or "cuda"

    @property
    def theta_rad(self) -> float:
        """Polar angle, radians."""
        return math.radians(self.theta_deg)


_QUERY_KEYS = {
    "energy_gev": "energy",
    "theta_deg": "theta",
    "n_showers": "n",
    "seed": "seed",
    "source": "source",
    "shower_index": "shower",
    "device": "device",
}


def _first(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else ""
    return str(value).strip()


def _parse_float(raw: str, key: str, lo: float, hi: float, unit: str, warnings: list[str]) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        warnings.append(f"{key}={raw!r} in the URL is not a number; using the default instead.")
        return None
    if not math.isfinite(value) or not lo <= value <= hi:
        warnings.append(
            f"{key}={raw} in the URL is outside {lo:g}-{hi:g} {unit}; using the default instead."
        )
        return None
    return value


def _parse_int(raw: str, key: str, lo: int, hi: int, warnings: list[str]) -> int | None:
    try:
        value = int(raw)
    except ValueError:
        warnings.append(f"{key}={raw!r} in the URL is not a whole number; using the default instead.")
        return None
    if not lo <= value <= hi:
        warnings.append(f"{key}={raw} in the URL is outside {lo}-{hi}; using the default instead.")
        return None
    return value


def parse_view_state(
    params: Mapping[str, Any],
    *,
    default: ViewState | None = None,
    sources: Sequence[str] | None = None,
) -> tuple[ViewState, list[str]]:
    """Validate query-string parameters; bad values fall back to ``default`` with a warning each.

    params:  mapping of key -> string (or list of strings, last one wins), e.g. ``st.query_params``.
             Keys: energy (GeV), theta (deg), n, seed, source, shower, device.
    sources: the valid source names; an unknown source falls back with a warning (None: accept any).
    Returns (state, warnings); warnings are sentences naming the key, the value and what was done.
    """
    state = default or ViewState()
    warnings: list[str] = []
    changes: dict[str, Any] = {}
    raw = {key: _first(params[key]) for key in _QUERY_KEYS.values() if key in params}
    if "energy" in raw:
        changes["energy_gev"] = _parse_float(raw["energy"], "energy", *ENERGY_RANGE_GEV, "GeV", warnings)
    if "theta" in raw:
        changes["theta_deg"] = _parse_float(raw["theta"], "theta", *THETA_RANGE_DEG, "deg", warnings)
    if "n" in raw:
        changes["n_showers"] = _parse_int(raw["n"], "n", 1, MAX_SHOWERS, warnings)
    if "seed" in raw:
        changes["seed"] = _parse_int(raw["seed"], "seed", 0, 2**31 - 1, warnings)
    if "shower" in raw:
        changes["shower_index"] = _parse_int(raw["shower"], "shower", 0, MAX_SHOWERS - 1, warnings)
    if "device" in raw:
        if raw["device"] in DEVICES:
            changes["device"] = raw["device"]
        else:
            warnings.append(
                f"device={raw['device']!r} in the URL is not one of {', '.join(DEVICES)}; using the default instead."
            )
    if "source" in raw:
        if sources is None or raw["source"] in sources:
            changes["source"] = raw["source"] or None
        else:
            warnings.append(
                f"source={raw['source']!r} in the URL is not an available source "
                f"({', '.join(sources) or 'none installed'}); using the default instead."
            )
    state = replace(state, **{k: v for k, v in changes.items() if v is not None})
    if state.shower_index >= state.n_showers:
        state = replace(state, shower_index=0)
    return state, warnings


def view_state_to_query(state: ViewState) -> dict[str, str]:
    """The query-string form of ``state`` (strings; floats without trailing zeros)."""
    out: dict[str, str] = {}
    for name, value in asdict(state).items():
        out[_QUERY_KEYS[name]] = f"{value:g}" if isinstance(value, float) else str(value)
    return out


def stale_batch_message(shown: ViewState, wanted: ViewState) -> str | None:
    """A sentence naming what differs between the batch on screen (``shown``) and the widgets (``wanted``),
    or None when the batch was made with the widgets' settings. The shower index is not a condition."""
    fields = (("source", "source", "{}"), ("energy_gev", "energy", "{:g} GeV"), ("theta_deg", "angle", "{:g} deg"),
              ("n_showers", "showers", "{}"), ("seed", "seed", "{}"))
    differ = [(label, fmt.format(getattr(shown, name)), fmt.format(getattr(wanted, name)))
              for name, label, fmt in fields if getattr(shown, name) != getattr(wanted, name)]
    if not differ:
        return None
    changes = ", ".join(f"{label} {new} (shown: {old})" for label, old, new in differ)
    return (f"The settings differ from the batch on screen: {changes}. Everything below, the Monte Carlo "
            "comparison included, is for the batch on screen; press Generate for the new settings.")


def progress_text(done: int, total: int, elapsed_s: float, *, unit: str = "showers") -> str:
    """Progress line with an estimate of the time left, from the rate so far: "2/4 showers, 12 s so far,
    about 12 s left" (no estimate before the first chunk is done)."""
    line = f"{done}/{total} {unit}, {_duration(elapsed_s)} so far"
    if 0 < done < total:
        line += f", about {_duration(elapsed_s / done * (total - done))} left"
    return line


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def _per_shower(ms: float) -> str:
    return f"{ms / 1e3:.3g} s" if ms >= 1e3 else f"{ms:.3g} ms"


def speedup_sentence(results: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> str | None:
    """The measured speed-up of the fastest trained generator (else GFlash, else a random-weight network)
    over the Monte Carlo, as a sentence, from calogen.bench rows (BenchResult.to_dict()) and the run's
    ``meta`` (device, energy_gev, measured). None when the rows hold no Monte Carlo or nothing to compare."""
    mc = next((r for r in results if r.get("kind") == "mc"), None)
    if mc is None:
        return None
    for kind in ("model", "gflash", "arch"):
        rows = [r for r in results if r.get("kind") == kind and r.get("ms_per_shower")]
        if rows:
            fast = min(rows, key=lambda r: float(r["ms_per_shower"]))
            break
    else:
        return None
    ratio = float(mc["ms_per_shower"]) / float(fast["ms_per_shower"])
    energy = meta.get("energy_gev")
    at = f" at {float(energy):g} GeV" if energy is not None else ""
    when = f", measured {str(meta['measured'])[:16].replace('T', ' ')}" if meta.get("measured") else ""
    return (f"On this machine ({fast.get('device', '?')}), {fast['name']} makes a shower in "
            f"{_per_shower(float(fast['ms_per_shower']))} (batches of {fast.get('batch_size', '?')}), the Monte "
            f"Carlo in {_per_shower(float(mc['ms_per_shower']))}{at}: {ratio:,.0f} times faster{when}.")


# ---------------------------------------------------------------- numbers for one shower


def measured_theta_rad(shower: npt.ArrayLike) -> float:
    """Polar angle measured from the layer barycentres of one (nx, ny, nz) shower, radians.

    The 3DGAN measurement (straight-line fit of the layer y barycentres against depth) of
    :func:`calogen.validation.features.measured_angle`; pi/2 = normal incidence.
    """
    return float(features.measured_angle(np.asarray(shower, dtype=np.float32)[None])[0])


def angle_tolerance_deg(energy_gev: float) -> float:
    """How far one shower's measured angle may sit from the true angle before it counts as wrong, degrees.

    About 3 standard deviations plus the bias of the barycentre fit in the Monte Carlo reference
    (data/reference.h5: spread 4.3 deg at 2 GeV, 1.6 at 10, 0.8 at 50, 0.5 at 200 GeV; bias up to 1.1 deg
    at 62 and 118 deg), i.e. 1.5 + 15 / sqrt(E / GeV).
    """
    return 1.5 + 15.0 / math.sqrt(max(float(energy_gev), 1e-3))


def shower_numbers(shower: npt.ArrayLike, energy_gev: float, theta_rad: float) -> dict[str, float]:
    """Headline numbers of one shower.

    shower: (nx, ny, nz) GeV. Returns deposited_gev (sum of cells), sampling_fraction (deposited / primary),
    hits (cells above HIT_THRESHOLD_GEV), max_layer (layer with the most energy, 0-based),
    theta_deg (true) and measured_theta_deg.
    """
    cells = np.asarray(shower, dtype=np.float64)
    deposited = float(cells.sum())
    return {
        "energy_gev": float(energy_gev),
        "deposited_gev": deposited,
        "sampling_fraction": deposited / float(energy_gev) if energy_gev > 0 else float("nan"),
        "hits": int((cells > HIT_THRESHOLD_GEV).sum()),
        "max_layer": int(np.argmax(cells.sum(axis=(0, 1)))),
        "theta_deg": math.degrees(float(theta_rad)),
        "measured_theta_deg": math.degrees(measured_theta_rad(cells)),
    }


# ---------------------------------------------------------------- figures


def _log10(values: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    out = np.full(values.shape, np.nan)
    positive = values > 0
    out[positive] = np.log10(values[positive])
    return out


def shower_3d_figure(
    shower: npt.ArrayLike,
    *,
    threshold_gev: float = HIT_THRESHOLD_GEV,
    mode: Literal["points", "volume"] = "points",
    max_points: int = 6000,
    max_volume_points: int = 8000,
    title: str = "",
) -> go.Figure:
    """Interactive 3D view of one shower.

    shower: (nx, ny, nz) GeV. mode "points": a Scatter3d of the cells above ``threshold_gev`` (the
    ``max_points`` most energetic ones), colour = log10(E/GeV), hover shows the cell and its energy in GeV.
    mode "volume": translucent log10(E) isosurfaces (go.Volume) of the energy summed in blocks of k x k cells
    in x and y, k the smallest that keeps at most ``max_volume_points`` grid points (3 for 51 x 51 x 25), so the
    browser draws it in about a second instead of seven.
    Axes: x and y in cells, layer along the third axis.
    """
    cells = np.asarray(shower, dtype=np.float32)
    fig = go.Figure()
    if mode == "volume":
        blocks, (step_x, step_y) = block_sum(cells, max_points=max_volume_points)
        centre = lambda n, step: (np.arange(n, dtype=np.float32) * step + (step - 1) / 2.0)  # noqa: E731
        x, y, z = np.meshgrid(centre(blocks.shape[0], step_x), centre(blocks.shape[1], step_y),
                              np.arange(blocks.shape[2], dtype=np.float32), indexing="ij")
        log_e = _log10(blocks)
        floor = math.log10(threshold_gev)
        fig.add_trace(
            go.Volume(
                x=x.ravel(), y=y.ravel(), z=z.ravel(),
                value=np.nan_to_num(log_e, nan=floor - 1).astype(np.float32).ravel(),
                isomin=floor, isomax=float(np.nanmax(log_e)) if np.isfinite(log_e).any() else floor + 1,
                opacity=0.2, surface_count=6, colorscale="Inferno", caps={"x_show": False, "y_show": False,
                                                                         "z_show": False},
                colorbar={"title": f"log10(E/GeV) per {step_x}x{step_y} cells" if step_x > 1 else "log10(E/GeV)"},
                hovertemplate="x=%{x} y=%{y} layer=%{z}<br>log10(E/GeV)=%{value:.2f}<extra></extra>",
            )
        )
    else:
        ix, iy, iz = np.nonzero(cells > threshold_gev)
        energy = cells[ix, iy, iz]
        if energy.size > max_points:
            keep = np.argsort(energy)[-max_points:]
            ix, iy, iz, energy = ix[keep], iy[keep], iz[keep], energy[keep]
        fig.add_trace(
            go.Scatter3d(
                x=ix, y=iy, z=iz, mode="markers",
                customdata=energy,
                marker={
                    "size": 3, "color": np.log10(energy), "colorscale": "Inferno", "opacity": 0.8,
                    "colorbar": {"title": "log10(E/GeV)"},
                },
                hovertemplate="x=%{x} y=%{y} layer=%{z}<br>E=%{customdata:.3g} GeV<extra></extra>",
                name="cells",
            )
        )
    axis = {"tickfont": {"size": 12, "color": "#1a1a1a"}, "title_font": {"size": 14, "color": "#1a1a1a"},
            "backgroundcolor": "#fafafa", "gridcolor": "#ddd"}
    fig.update_layout(
        title=title or None,
        scene={"xaxis": {**axis, "title": {"text": _X_TITLE}, "range": [-0.5, cells.shape[0] - 0.5]},
               "yaxis": {**axis, "title": {"text": _Y_TITLE}, "range": [-0.5, cells.shape[1] - 0.5]},
               "zaxis": {**axis, "title": {"text": "layer"}, "range": [-0.5, cells.shape[2] - 0.5]},
               "aspectmode": "manual", "aspectratio": {"x": 1, "y": 1, "z": 1.2},
               # the camera a little further out than plotly's default, so no axis title is cut at the edge
               "camera": {"eye": {"x": 1.7, "y": 1.7, "z": 1.1}}},
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        height=520,
    )
    return style_figure(fig)


def block_sum(cells: npt.ArrayLike, *, max_points: int) -> tuple[npt.NDArray[np.float32], tuple[int, int]]:
    """Energy of one (nx, ny, nz) shower summed over k x k blocks in x and y (layers kept), with the
    smallest k for which the grid has at most ``max_points`` points; edge blocks are zero-padded.
    Returns (blocks (ceil(nx/k), ceil(ny/k), nz) GeV, (k, k)). The total energy is unchanged."""
    grid = np.asarray(cells, dtype=np.float32)
    nx, ny, nz = grid.shape
    k = 1
    while math.ceil(nx / k) * math.ceil(ny / k) * nz > max_points and k < max(nx, ny):
        k += 1
    bx, by = math.ceil(nx / k), math.ceil(ny / k)
    padded = np.zeros((bx * k, by * k, nz), dtype=np.float32)
    padded[:nx, :ny] = grid
    return padded.reshape(bx, k, by, k, nz).sum(axis=(1, 3)), (k, k)  # (X/k, k, Y/k, k, Z) -> (X/k, Y/k, Z)


_X_TITLE = f"x [cell, {CELL_MM:g} mm]"
_Y_TITLE = f"y [cell, {CELL_MM:g} mm]"
_PLANES = {"xy": (2, _X_TITLE, _Y_TITLE), "xz": (1, "layer", _X_TITLE), "yz": (0, "layer", _Y_TITLE)}


def projection(shower: npt.ArrayLike, plane: Literal["xy", "xz", "yz"]) -> npt.NDArray[np.float64]:
    """Energy summed along the axis not in ``plane``, GeV; shape (first axis, second axis) of the plane."""
    axis = _PLANES[plane][0]
    return np.asarray(shower, dtype=np.float64).sum(axis=axis)


def projections_figure(shower: npt.ArrayLike, *, title: str = "") -> go.Figure:
    """XY, XZ and YZ projections of one shower (or a mean image) as log10(E/GeV) heatmaps side by side."""
    cells = np.asarray(shower, dtype=np.float64)
    fig = make_subplots(rows=1, cols=3, subplot_titles=("XY (front view)", "XZ (top view)", "YZ (side view)"),
                        horizontal_spacing=0.09)
    images = {plane: _log10(projection(cells, plane)) for plane in _PLANES}
    finite = np.concatenate([img[np.isfinite(img)] for img in images.values()])
    zmin, zmax = (float(finite.min()), float(finite.max())) if finite.size else (-4.0, 0.0)
    for col, (plane, (_, x_title, y_title)) in enumerate(_PLANES.items(), start=1):
        img = images[plane]
        # Heatmap z is (rows = y axis, columns = x axis): the xy image (x, y) is transposed so x runs across.
        z = img.T if plane == "xy" else img
        fig.add_trace(
            go.Heatmap(
                z=z, zmin=zmin, zmax=zmax, colorscale="Inferno", showscale=col == 3,
                colorbar={"title": "log10(E/GeV)"},
                hovertemplate=(f"{x_title.split(' [')[0]}=%{{x}} {y_title.split(' [')[0]}=%{{y}}"
                               "<br>log10(E/GeV)=%{z:.2f}<extra></extra>"),
            ),
            row=1, col=col,
        )
        fig.update_xaxes(title_text=x_title, row=1, col=col)
        fig.update_yaxes(title_text=y_title, row=1, col=col)
    fig.update_layout(title=title or None, height=340, margin={"l": 60, "r": 10, "t": 60, "b": 50})
    return style_figure(fig)


def _shared_range(images: Sequence[npt.NDArray[np.float64]]) -> tuple[float, float]:
    """(min, max) of the finite values of log10 images, one colour scale for all of them."""
    finite = np.concatenate([img[np.isfinite(img)].ravel() for img in images]) if images else np.array([])
    return (float(finite.min()), float(finite.max())) if finite.size else (-4.0, 0.0)


def side_by_side_figure(
    showers: Mapping[str, npt.ArrayLike], *, plane: Literal["xy", "xz", "yz"] = "yz", columns: int = 2,
    title: str = "", font_size: int = 14,
) -> go.Figure:
    """One projection per label on a grid of ``columns`` panels a row, all on one colour scale (one colour
    bar): a generator's shower next to a Monte Carlo shower, and below the means of many of each.

    showers: {label: (nx, ny, nz) GeV}; plane: the projection ("yz" = side view, the shower's development).
    """
    _, x_title, y_title = _PLANES[plane]
    images = {label: _log10(projection(cells, plane)) for label, cells in showers.items()}
    zmin, zmax = _shared_range(list(images.values()))
    cols = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(images), horizontal_spacing=0.06,
                        vertical_spacing=0.16 if rows > 1 else 0.0, shared_yaxes=True)
    for k, (label, img) in enumerate(images.items()):
        row, col = k // cols + 1, k % cols + 1
        fig.add_trace(go.Heatmap(
            z=img.T if plane == "xy" else img, zmin=zmin, zmax=zmax, colorscale="Inferno",
            showscale=k == len(images) - 1, colorbar={"title": "log10(E/GeV)"}, name=label,
            hovertemplate=f"{label}<br>%{{x}}, %{{y}}: log10(E/GeV)=%{{z:.2f}}<extra></extra>",
        ), row=row, col=col)
        fig.update_xaxes(title_text=x_title if row == rows else None, row=row, col=col)
        fig.update_yaxes(title_text=y_title if col == 1 else None, row=row, col=col)
    fig.update_layout(title=title or None, height=60 + 330 * rows,
                      margin={"l": 70, "r": 10, "t": 90 if title else 50, "b": 50})
    fig.update_annotations(font_size=font_size + 2)
    return style_figure(fig, font_size=font_size)


def layer_animation_figure(
    showers: Mapping[str, npt.ArrayLike], *, title: str = "Layer by layer", half_width: int = 12,
    font_size: int = 14,
) -> go.Figure:
    """Front views (x, y) of each label's shower one layer at a time, side by side on one colour scale, with a
    Plotly frames slider over the layers and a play button; it opens on the last label's layer of maximum.

    showers: {label: (nx, ny, nz) GeV}, centred on the shower axis as the readout window is; half_width: cells
    shown on each side of the centre (the core, and a figure small enough to send: frames carry only z).
    One frame per layer; the colour range is that of all layers together.
    """
    nx, ny, n_layers = np.asarray(next(iter(showers.values()))).shape
    lo_x, lo_y = max(nx // 2 - half_width, 0), max(ny // 2 - half_width, 0)
    hi_x, hi_y = min(nx // 2 + half_width + 1, nx), min(ny // 2 + half_width + 1, ny)
    stacks = {label: _log10(np.asarray(cells, dtype=np.float64)[lo_x:hi_x, lo_y:hi_y]).astype(np.float32)
              for label, cells in showers.items()}  # (x, y, layer) around the centre
    zmin, zmax = _shared_range(list(stacks.values()))
    xs, ys = np.arange(lo_x, hi_x), np.arange(lo_y, hi_y)  # cell indices
    last = np.asarray(list(showers.values())[-1], dtype=np.float64)
    start = int(np.argmax(last.sum(axis=(0, 1))))  # open on the last label's layer of maximum
    fig = make_subplots(rows=1, cols=len(stacks), subplot_titles=list(stacks), horizontal_spacing=0.06,
                        shared_yaxes=True)
    for col, (label, stack) in enumerate(stacks.items(), start=1):
        fig.add_trace(go.Heatmap(z=stack[:, :, start].T, x=xs, y=ys, zmin=zmin, zmax=zmax, colorscale="Inferno",
                                 showscale=col == len(stacks), colorbar={"title": "log10(E/GeV)"}, name=label,
                                 hovertemplate="x=%{x} y=%{y}<br>log10(E/GeV)=%{z:.2f}<extra></extra>"),
                      row=1, col=col)
        fig.update_xaxes(title_text=_X_TITLE, range=[lo_x - 0.5, hi_x - 0.5], row=1, col=col)
    fig.update_yaxes(title_text=_Y_TITLE, range=[lo_y - 0.5, hi_y - 0.5], row=1, col=1)
    fig.frames = [go.Frame(data=[go.Heatmap(z=stack[:, :, layer].T) for stack in stacks.values()],
                           traces=list(range(len(stacks))), name=str(layer))
                  for layer in range(n_layers)]
    step = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}
    fig.update_layout(
        title=title, height=540, margin={"l": 60, "r": 10, "t": 80, "b": 40},
        sliders=[{"active": start, "currentvalue": {"prefix": "layer "}, "pad": {"t": 60},
                  "steps": [{"label": str(layer), "method": "animate", "args": [[str(layer)], step]}
                            for layer in range(n_layers)]}],
        updatemenus=[{"type": "buttons", "showactive": False, "x": 0, "y": -0.14, "xanchor": "right",
                      "buttons": [{"label": "Play", "method": "animate",
                                   "args": [None, {**step, "frame": {"duration": 300, "redraw": True},
                                                   "fromcurrent": True}]}]}],
    )
    fig.update_annotations(font_size=font_size + 2)
    return style_figure(fig, font_size=font_size)


def mean_images_figure(showers: npt.ArrayLike, *, title: str = "Mean of the batch") -> go.Figure:
    """Projections of the batch-mean shower. showers: (N, nx, ny, nz) GeV."""
    return projections_figure(np.asarray(showers, dtype=np.float64).mean(axis=0), title=title)


def lateral_profiles(shower: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Energy per x column and per y row summed over the other axes, GeV: shapes (nx,), (ny,)."""
    cells = np.asarray(shower, dtype=np.float64)
    return cells.sum(axis=(1, 2)), cells.sum(axis=(0, 2))


def _curves(curves: Mapping[str, npt.ArrayLike] | npt.ArrayLike) -> dict[str, npt.NDArray[np.float64]]:
    if isinstance(curves, Mapping):
        return {label: np.asarray(c, dtype=np.float64) for label, c in curves.items()}
    return {"shower": np.asarray(curves, dtype=np.float64)}


def longitudinal_profile_figure(
    showers: Mapping[str, npt.ArrayLike] | npt.ArrayLike, *, log_y: bool = True
) -> go.Figure:
    """Energy per layer, GeV, one curve per label.

    showers: one (nx, ny, nz) shower, or {label: (nx, ny, nz) shower or (N, nx, ny, nz) batch (mean is drawn)}.
    """
    fig = go.Figure()
    for label, cells in _curves(showers).items():
        mean = cells.mean(axis=0) if cells.ndim == 4 else cells
        profile = mean.sum(axis=(0, 1))
        fig.add_trace(go.Scatter(x=np.arange(profile.size), y=profile, mode="lines+markers", name=label))
    fig.update_layout(
        title="Longitudinal profile", xaxis_title="layer", yaxis_title="energy per layer [GeV]",
        yaxis_type="log" if log_y else "linear", height=400, margin={"l": 60, "r": 10, "t": 50, "b": 110},
        legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0},
    )
    return style_figure(fig)


def lateral_profile_figure(
    showers: Mapping[str, npt.ArrayLike] | npt.ArrayLike, *, log_y: bool = True
) -> go.Figure:
    """Energy per x column (solid) and per y row (dashed), GeV, one pair of curves per label.

    showers: as for :func:`longitudinal_profile_figure`.
    """
    fig = go.Figure()
    for label, cells in _curves(showers).items():
        mean = cells.mean(axis=0) if cells.ndim == 4 else cells
        along_x, along_y = lateral_profiles(mean)
        fig.add_trace(go.Scatter(x=np.arange(along_x.size), y=along_x, mode="lines", name=f"{label}: x"))
        fig.add_trace(
            go.Scatter(x=np.arange(along_y.size), y=along_y, mode="lines", name=f"{label}: y",
                       line={"dash": "dash"})
        )
    fig.update_layout(
        title="Lateral profiles", xaxis_title=f"x or y [cell, {CELL_MM:g} mm]",
        yaxis_title="energy per column/row [GeV]",
        yaxis_type="log" if log_y else "linear", height=400, margin={"l": 60, "r": 10, "t": 50, "b": 110},
        legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0},
    )
    return style_figure(fig)


def sampling_fraction_figure(samples: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]]) -> go.Figure:
    """Spread of the sampling fraction (deposited / primary energy), one box per label.

    samples: {label: (showers (N, nx, ny, nz) GeV, energy_gev (N,))}.
    """
    fig = go.Figure()
    for label, (showers, energy_gev) in samples.items():
        cells = np.asarray(showers, dtype=np.float64)
        sf = cells.reshape(cells.shape[0], -1).sum(axis=1) / np.asarray(energy_gev, dtype=np.float64)
        fig.add_trace(go.Box(y=sf, name=label, boxpoints="all", jitter=0.3))
    fig.update_layout(
        title="Sampling fraction of the batch", yaxis_title="deposited / primary energy", height=340,
        margin={"l": 60, "r": 10, "t": 50, "b": 50},
    )
    return style_figure(fig)


_KIND_COLOURS = {"model": "#d1495b", "arch": "#e9a03b", "gflash": "#2a9d8f", "mc": "#1f3b73"}
_KIND_NAMES = {"model": "trained generator", "arch": "network, random weights", "gflash": "GFlash",
               "mc": "Monte Carlo"}


def throughput_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Showers per second of each benchmarked source as horizontal bars on a log axis (long names stay
    readable), fastest at the top, coloured by kind. rows: calogen.bench BenchResult.to_dict() rows."""
    ordered = sorted(rows, key=lambda r: float(r["showers_per_s"]))
    fig = go.Figure()
    for kind in dict.fromkeys(r["kind"] for r in ordered):
        mine = [r for r in ordered if r["kind"] == kind]
        fig.add_trace(go.Bar(
            x=[float(r["showers_per_s"]) for r in mine], y=[f"{r['name']} · {r['path']}" for r in mine],
            orientation="h", name=_KIND_NAMES.get(kind, kind), marker_color=_KIND_COLOURS.get(kind, "#777"),
            text=[f"{float(r['showers_per_s']):,.3g}/s" for r in mine], textposition="outside", cliponaxis=False,
        ))
    device = ordered[0]["device"] if ordered else "?"
    fig.update_layout(title=f"Throughput on {device}", xaxis_title="showers per second", xaxis_type="log",
                      yaxis={"categoryorder": "array",
                             "categoryarray": [f"{r['name']} · {r['path']}" for r in ordered]},
                      height=max(260, 60 + 34 * len(ordered)), margin={"l": 10, "r": 60, "t": 50, "b": 50},
                      legend={"orientation": "h", "y": -0.25})
    return style_figure(fig)


def format_card(card: Mapping[str, Any]) -> str:
    """A model card (card.json contents) as readable Markdown: what it is, what it was trained on and how,
    and where its validation figures come from (the figures themselves: :func:`calogen.plots.report.judged_rows`)."""
    lines = [f"### {card.get('name', 'unnamed model')}"]
    if card.get("description"):
        lines.append(str(card["description"]))
    facts = []
    if "arch" in card:
        params = card.get("parameters")
        facts.append(f"**Architecture:** `{card['arch']}`"
                     + (f", {params / 1e6:.2f} M parameters" if isinstance(params, (int, float)) else ""))
    ranges = card.get("condition_ranges") or {}
    if "energy_gev" in ranges:
        lo, hi = ranges["energy_gev"]
        facts.append(f"**Energy range:** {lo:g}-{hi:g} GeV")
    if "theta_deg" in ranges:
        lo, hi = ranges["theta_deg"]
        facts.append(f"**Angle range:** {lo:g}-{hi:g} deg")
    pre = card.get("preprocessing")
    if isinstance(pre, Mapping) and pre:
        facts.append("**Pre-processing:** " + ", ".join(f"{k} {v}" for k, v in pre.items()))
    training = card.get("training")
    if isinstance(training, Mapping) and training:
        facts.append("**Training:** " + _training_sentence(training))
    validation = card.get("validation")
    if isinstance(validation, Mapping) and validation:
        facts.append("**Validation:** " + _validation_sentence(validation))
    lines.extend(f"- {fact}" for fact in facts)
    return "\n".join(lines)


def energy_bin_label(lo_gev: float, hi_gev: float) -> str:
    """An energy bin for people: "45-55 GeV"; a lower edge below 0 (the +-5 GeV bin around 2 GeV) shows as 0."""
    return f"{max(lo_gev, 0.0):.3g}-{hi_gev:.3g} GeV"


def theta_bin_label(lo_rad: float, hi_rad: float) -> str:
    """An angle bin in whole degrees: "81-99 deg"."""
    return f"{math.degrees(lo_rad):.0f}-{math.degrees(hi_rad):.0f} deg"


def bin_rows(bins: Sequence[Mapping[str, Any]], *, name: str = "model") -> list[dict[str, str]]:
    """Per-bin rows of a comparison as readable strings: energy and angle bins, showers, mean sampling
    fractions and their relative error, and the mean measured angle in degrees where present.

    bins: the ``"bins"`` of a card's validation (energy_bin_gev, theta_bin_deg) or of
    :func:`calogen.validation.metrics.compare` (energy_gev, theta_rad); name: the source's column title.
    """
    rows = []
    for b in bins:
        if "energy_bin_gev" in b:
            e_lo, e_hi = b["energy_bin_gev"]
        else:
            e_lo, e_hi = b.get("energy_gev", (math.nan, math.nan))
        if "theta_bin_deg" in b:
            t_lo, t_hi = (math.radians(v) for v in b["theta_bin_deg"])
        else:
            t_lo, t_hi = b.get("theta_rad", (math.nan, math.nan))
        row = {
            "energy": energy_bin_label(e_lo, e_hi),
            "angle": theta_bin_label(t_lo, t_hi),
            f"showers (MC / {name})": f"{b.get('n_reference', '?')} / {b.get('n_candidate', '?')}",
            "SF Monte Carlo": _fmt_or_na(b.get("sf_reference"), ".4f"),
            f"SF {name}": _fmt_or_na(b.get("sf_candidate"), ".4f"),
            "SF error": _fmt_or_na(b.get("sf_relative_error"), ".0%"),
        }
        if "measured_angle_rad_reference" in b:
            for key, label in (("reference", "Monte Carlo"), ("candidate", name)):
                value = b.get(f"measured_angle_rad_{key}")
                row[f"angle {label} (deg)"] = _fmt_or_na(
                    math.degrees(value) if isinstance(value, (int, float)) else None, ".1f")
        rows.append(row)
    return rows


def _fmt_or_na(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def _training_sentence(training: Mapping[str, Any]) -> str:
    parts = []
    data = training.get("data_provenance")
    if isinstance(data, Mapping) and data.get("showers"):
        parts.append(f"{int(data['showers']):,} {'Monte Carlo ' if data.get('source') == 'mc' else ''}showers")
    elif training.get("data"):
        parts.append(f"data `{training['data']}`")
    if training.get("steps") is not None:
        parts.append(f"{int(training['steps']):,} steps")
    if training.get("epochs") is not None:
        epoch = training.get("selected_epoch")
        parts.append(f"{int(training['epochs'])} epochs" + (f" (epoch {epoch} kept)" if epoch is not None else ""))
    if training.get("device"):
        parts.append(f"on {training['device']}")
    wall = training.get("wall_time_s")
    if isinstance(wall, (int, float)):
        parts.append(f"{wall / 60:.0f} min" if wall >= 60 else f"{wall:.0f} s")
    return ", ".join(parts) or "no details recorded"


def _validation_sentence(validation: Mapping[str, Any]) -> str:
    reference = validation.get("reference")
    if not isinstance(reference, Mapping):
        return "figures without a recorded reference sample"
    held_out = " held-out" if reference.get("held_out") else ""
    when = f", measured {str(validation['measured'])[:10]}" if validation.get("measured") else ""
    return (f"against {reference.get('showers', '?')}{held_out} Monte Carlo showers of "
            f"`{reference.get('file', '?')}`{when}")

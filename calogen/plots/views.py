"""Figure builders for single showers and batches, and the labels of condition bins.

Every builder returns a ``plotly.graph_objects.Figure`` and never shows or saves it; nothing here imports
streamlit. Shower arrays are float32 ``(nx, ny, nz)`` in GeV, axes x, y (transverse cells) and layer (front to
back), as in :class:`calogen.showers.ShowerSet`. The app's URL state and sentences are in :mod:`calogen.app`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from calogen.plots.figures import CELL_MM, style_figure
from calogen.validation import features

__all__ = [
    "HIT_THRESHOLD_GEV",
    "Plane",
    "block_sum",
    "energy_bin_label",
    "lateral_profile_figure",
    "lateral_profiles",
    "layer_animation_figure",
    "longitudinal_profile_figure",
    "mean_images_figure",
    "projection",
    "projections_figure",
    "sampling_fraction_figure",
    "shower_3d_figure",
    "side_by_side_figure",
    "theta_bin_label",
    "throughput_figure",
]

HIT_THRESHOLD_GEV = features.HIT_THRESHOLD_GEV  # a hit: a cell above 0.2 MeV, as in the 3DGAN validation


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
    axis: dict[str, Any] = {"tickfont": {"size": 12, "color": "#1a1a1a"},
                            "title_font": {"size": 14, "color": "#1a1a1a"}, "backgroundcolor": "#fafafa",
                            "gridcolor": "#ddd"}
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
        uirevision="shower 3d",  # a chart updated in place keeps the camera the viewer turned it to
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
Plane = Literal["xy", "xz", "yz"]
_PLANES: dict[Plane, tuple[int, str, str]] = {  # plane -> (axis summed over, horizontal title, vertical title)
    "xy": (2, _X_TITLE, _Y_TITLE), "xz": (1, "layer", _X_TITLE), "yz": (0, "layer", _Y_TITLE)}


def projection(shower: npt.ArrayLike, plane: Plane) -> npt.NDArray[np.float64]:
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
    traces, axes = [], {}
    for col, (plane, (_, x_title, y_title)) in enumerate(_PLANES.items(), start=1):
        img = images[plane]
        # Heatmap z is (rows = y axis, columns = x axis): the xy image (x, y) is transposed so x runs across.
        z = img.T if plane == "xy" else img
        traces.append(go.Heatmap(
            z=z, zmin=zmin, zmax=zmax, colorscale="Inferno", showscale=col == 3, colorbar={"title": "log10(E/GeV)"},
            hovertemplate=(f"{x_title.split(' [')[0]}=%{{x}} {y_title.split(' [')[0]}=%{{y}}"
                           "<br>log10(E/GeV)=%{z:.2f}<extra></extra>"),
        ))
        suffix = "" if col == 1 else str(col)
        axes[f"xaxis{suffix}_title_text"], axes[f"yaxis{suffix}_title_text"] = x_title, y_title
    # one call each for the traces and the axes: plotly validates every call, per-panel calls cost ~10 ms each
    fig.add_traces(traces, rows=[1, 1, 1], cols=[1, 2, 3])
    fig.update_layout(**axes)
    fig.update_layout(title=title or None, height=340, margin={"l": 60, "r": 10, "t": 60, "b": 50})
    return style_figure(fig)


def _shared_range(images: Sequence[npt.NDArray[np.floating[Any]]]) -> tuple[float, float]:
    """(min, max) of the finite values of log10 images, one colour scale for all of them."""
    finite = np.concatenate([img[np.isfinite(img)].ravel() for img in images]) if images else np.array([])
    return (float(finite.min()), float(finite.max())) if finite.size else (-4.0, 0.0)


def side_by_side_figure(
    showers: Mapping[str, npt.ArrayLike], *, plane: Plane = "yz", columns: int = 2,
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


def energy_bin_label(lo_gev: float, hi_gev: float) -> str:
    """An energy bin for people: "45-55 GeV"; a lower edge below 0 (the +-5 GeV bin around 2 GeV) shows as 0."""
    return f"{max(lo_gev, 0.0):.3g}-{hi_gev:.3g} GeV"


def theta_bin_label(lo_rad: float, hi_rad: float) -> str:
    """An angle bin in whole degrees: "81-99 deg"."""
    return f"{math.degrees(lo_rad):.0f}-{math.degrees(hi_rad):.0f} deg"

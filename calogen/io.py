"""Shower files: the native HDF5 format, the public 3DGAN format and the CaloChallenge format.

Native format (one file per sample, key names compatible with the 3DGAN data):

- ``ECAL``   float32 (N, nx, ny, nz): energy deposited in the silicon of each cell, **GeV**;
  axes x, y (transverse, 5.1 mm cells) and z = layer, front to back.
- ``energy`` float32 (N,): primary energy, GeV.
- ``theta``  float32 (N,): polar angle of incidence, radians (pi/2 = normal to the layers).
- root attributes: ``format = "calogen-native"``, ``units = "GeV"``, ``particle``, ``source``,
  ``detector``, ``seed``, ``calogen_version`` and whatever else the producer records.

The 3DGAN files (Khattak et al.) store the same keys with cells in GeV x 50. The CaloChallenge-2022 files
store ``incident_energies`` (N, 1) and ``showers`` (N, nz*nx*ny), both in **MeV**, flattened layer-major.

Writers are atomic (a temporary file in the target folder, renamed at the end), so a failure never leaves a
half-written output. Readers validate keys, shapes, dtypes and values and raise :class:`ShowerFileError`
naming the file and the problem.
"""

from __future__ import annotations

import io as _io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from calogen.showers import ShowerSet, ShowerSetError, check_arrays

__all__ = [
    "GEANT_3DGAN_SCALE",
    "NATIVE_FORMAT",
    "ShowerFileError",
    "ShowerSet",
    "atomic_write",
    "count_showers",
    "detect_format",
    "iter_showers",
    "read_3dgan",
    "read_any",
    "read_calochallenge",
    "read_showers",
    "showers_to_bytes",
    "write_3dgan",
    "write_calochallenge",
    "write_showers",
]

NATIVE_FORMAT = "calogen-native"
GEANT_3DGAN_SCALE = 50.0  # the public 3DGAN files store cell energies in GeV x 50
_MEV_PER_GEV = 1000.0


class ShowerFileError(ShowerSetError):
    """A shower file is unreadable or inconsistent; the message names file and problem."""


def _check_arrays(showers: np.ndarray, energy_gev: np.ndarray, theta_rad: np.ndarray, *, where: str) -> None:
    try:
        check_arrays(showers, energy_gev, theta_rad, where=where)
    except ShowerSetError as exc:
        raise ShowerFileError(str(exc)) from None


def _json_attr(value: Any) -> Any:
    """HDF5 attributes hold scalars and strings; dicts and lists are stored as JSON text."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    if value is None:
        return ""
    return value


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Write ``path`` through ``write(tmp)`` on a temporary file in the same folder, then rename it over
    ``path``: readers never see half a file, and a failed write leaves no file behind. The file gets the
    usual permissions (0666 less the umask; mkstemp alone would give 0600)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    mask = os.umask(0)
    os.umask(mask)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _atomic_h5(path: str | os.PathLike[str], fill: Any) -> Path:
    """Write an HDF5 file through ``fill(h5file)`` atomically (:func:`atomic_write`)."""

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as h5:
            fill(h5)

    return atomic_write(path, write)


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    return (1, *shape[1:]) if shape[0] > 0 else None


def _fill_native(h5: h5py.File, shower_set: ShowerSet, compression: str | None) -> None:
    from calogen.version import __version__

    s = shower_set.showers
    h5.create_dataset("ECAL", data=s, dtype="float32", chunks=_chunks(s.shape), compression=compression)
    h5.create_dataset("energy", data=shower_set.energy_gev, dtype="float32")
    h5.create_dataset("theta", data=shower_set.theta_rad, dtype="float32")
    attrs = {"calogen_version": __version__, **shower_set.attrs}
    for key, value in attrs.items():
        h5.attrs[key] = _json_attr(value)
    h5.attrs["format"] = NATIVE_FORMAT
    h5.attrs["units"] = "GeV"


def write_showers(
    path: str | os.PathLike[str], shower_set: ShowerSet, *, compression: str | None = "gzip"
) -> Path:
    """Write ``shower_set`` as a native HDF5 shower file (atomic; chunked per shower, gzip by default)."""
    return _atomic_h5(path, lambda h5: _fill_native(h5, shower_set, compression))


def showers_to_bytes(shower_set: ShowerSet, *, compression: str | None = "gzip") -> bytes:
    """The native HDF5 file of ``shower_set`` as bytes (for downloads)."""
    buffer = _io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        _fill_native(h5, shower_set, compression)
    return buffer.getvalue()


def _open(path: str | os.PathLike[str]) -> h5py.File:
    p = Path(path)
    if not p.exists():
        raise ShowerFileError(f"{p}: no such file")
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        raise ShowerFileError(f"{p}: not a readable HDF5 file (corrupt or truncated?): {exc}") from exc


def _dataset(h5: h5py.File, key: str, path: Path) -> h5py.Dataset:
    if key not in h5:
        raise ShowerFileError(f"{path}: missing key '{key}' (found: {sorted(h5.keys())})")
    ds = h5[key]
    if not isinstance(ds, h5py.Dataset):
        raise ShowerFileError(f"{path}: '{key}' is a group, expected a dataset")
    if ds.dtype.kind not in "fiu":
        raise ShowerFileError(f"{path}: '{key}' has dtype {ds.dtype}; expected a numeric array")
    return ds


def _read_attrs(h5: h5py.File) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for key, value in h5.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, str) and value[:1] in "[{":
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        attrs[key] = value
    return attrs


def detect_format(path: str | os.PathLike[str]) -> str:
    """'native', '3dgan' or 'calochallenge', from the keys and attributes of an HDF5 file."""
    p = Path(path)
    with _open(p) as h5:
        if "showers" in h5 and "incident_energies" in h5:
            return "calochallenge"
        if "ECAL" in h5:
            return "native" if h5.attrs.get("format") == NATIVE_FORMAT else "3dgan"
        raise ShowerFileError(
            f"{p}: not a shower file: expected 'ECAL' (native/3DGAN) or 'showers' + 'incident_energies' "
            f"(CaloChallenge); found {sorted(h5.keys())}"
        )


def _read_ecal_file(
    path: str | os.PathLike[str], *, start: int, stop: int | None, scale: float, native: bool
) -> ShowerSet:
    p = Path(path)
    with _open(p) as h5:
        if native and h5.attrs.get("format") != NATIVE_FORMAT and "ECAL" in h5:
            raise ShowerFileError(
                f"{p}: this is not a native calogen file (no format attribute); if it is a 3DGAN file "
                "(cells in GeV x 50) read it with calogen.io.read_3dgan or read_any"
            )
        ecal = _dataset(h5, "ECAL", p)
        energy = _dataset(h5, "energy", p)
        theta = _dataset(h5, "theta", p)
        if ecal.ndim != 4:
            raise ShowerFileError(f"{p}: 'ECAL' has shape {ecal.shape}; expected (N, nx, ny, nz)")
        if native and h5.attrs.get("units", "GeV") != "GeV":
            raise ShowerFileError(f"{p}: cell units are '{h5.attrs.get('units')}'; expected 'GeV'")
        n = ecal.shape[0]
        stop = n if stop is None else min(stop, n)
        if not 0 <= start <= stop:
            raise ShowerFileError(f"{p}: requested showers [{start}, {stop}) outside the file's 0..{n}")
        for name, ds in (("energy", energy), ("theta", theta)):
            if ds.shape[0] != n:
                raise ShowerFileError(f"{p}: '{name}' has {ds.shape[0]} entries but 'ECAL' has {n} showers")
        showers = np.asarray(ecal[start:stop], dtype=np.float32)
        if scale != 1.0:
            showers = showers / np.float32(scale)
        energy_gev = np.asarray(energy[start:stop], dtype=np.float32).reshape(-1)
        theta_rad = np.asarray(theta[start:stop], dtype=np.float32).reshape(-1)
        attrs = _read_attrs(h5)
    _check_arrays(showers, energy_gev, theta_rad, where=str(p))
    attrs.setdefault("source", "unknown")
    return ShowerSet(showers, energy_gev, theta_rad, attrs)


def read_showers(path: str | os.PathLike[str], *, start: int = 0, stop: int | None = None) -> ShowerSet:
    """Read showers [start, stop) of a native calogen HDF5 file, validated."""
    return _read_ecal_file(path, start=start, stop=stop, scale=1.0, native=True)


def count_showers(path: str | os.PathLike[str]) -> int:
    """Number of showers in a native or 3DGAN file."""
    p = Path(path)
    with _open(p) as h5:
        return int(_dataset(h5, "ECAL", p).shape[0])


def iter_showers(path: str | os.PathLike[str], batch_size: int = 256) -> Iterator[ShowerSet]:
    """Stream a native file in chunks of ``batch_size`` showers (never the whole file in memory)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size={batch_size} must be positive")
    n = count_showers(path)
    for start in range(0, n, batch_size):
        yield read_showers(path, start=start, stop=start + batch_size)


def read_3dgan(path: str | os.PathLike[str], *, start: int = 0, stop: int | None = None) -> ShowerSet:
    """Read a public 3DGAN file (cells in GeV x 50, ``energy`` GeV, ``theta`` rad) into GeV."""
    shower_set = _read_ecal_file(path, start=start, stop=stop, scale=GEANT_3DGAN_SCALE, native=False)
    shower_set.attrs.setdefault("source", "3dgan-file")
    return shower_set


def write_3dgan(path: str | os.PathLike[str], shower_set: ShowerSet) -> Path:
    """Write the 3DGAN layout: ``ECAL`` in GeV x 50, ``energy`` GeV, ``theta`` rad (no native marker)."""

    def fill(h5: h5py.File) -> None:
        s = shower_set.showers * np.float32(GEANT_3DGAN_SCALE)
        h5.create_dataset("ECAL", data=s, dtype="float32", chunks=_chunks(s.shape), compression="gzip")
        h5.create_dataset("energy", data=shower_set.energy_gev, dtype="float32")
        h5.create_dataset("theta", data=shower_set.theta_rad, dtype="float32")

    return _atomic_h5(path, fill)


def write_calochallenge(path: str | os.PathLike[str], shower_set: ShowerSet) -> Path:
    """Write the CaloChallenge layout: ``incident_energies`` (N, 1) MeV, ``showers`` (N, nz*nx*ny) MeV.

    Voxels are flattened layer-major (index = ((z * nx) + x) * ny + y), as in the CaloChallenge datasets;
    the geometry and the angles are stored too (``geometry`` attribute, ``theta`` dataset in rad), which
    CaloChallenge readers ignore.
    """
    nx, ny, nz = shower_set.geometry

    def fill(h5: h5py.File) -> None:
        flat = np.transpose(shower_set.showers, (0, 3, 1, 2)).reshape(len(shower_set), nz * nx * ny)
        h5.create_dataset("showers", data=flat * np.float32(_MEV_PER_GEV), dtype="float32", compression="gzip")
        h5.create_dataset(
            "incident_energies", data=shower_set.energy_gev[:, None] * np.float32(_MEV_PER_GEV), dtype="float32"
        )
        h5.create_dataset("theta", data=shower_set.theta_rad, dtype="float32")
        h5.attrs["geometry"] = json.dumps([nx, ny, nz])

    return _atomic_h5(path, fill)


def read_calochallenge(
    path: str | os.PathLike[str],
    *,
    geometry: tuple[int, int, int] | None = None,
    theta_rad: float | None = None,
) -> ShowerSet:
    """Read a CaloChallenge file (MeV, flattened layer-major) into GeV (N, nx, ny, nz).

    geometry: (nx, ny, nz); taken from the file's ``geometry`` attribute when absent.
    theta_rad: angle for files without a ``theta`` dataset (CaloChallenge data are at fixed incidence).
    """
    p = Path(path)
    with _open(p) as h5:
        flat = np.asarray(_dataset(h5, "showers", p)[...], dtype=np.float32)
        inc = np.asarray(_dataset(h5, "incident_energies", p)[...], dtype=np.float32).reshape(-1)
        theta = np.asarray(h5["theta"][...], dtype=np.float32) if "theta" in h5 else None
        if geometry is None and "geometry" in h5.attrs:
            geometry = tuple(json.loads(h5.attrs["geometry"]))  # type: ignore[assignment]
    if geometry is None:
        raise ShowerFileError(f"{p}: no 'geometry' attribute; pass geometry=(nx, ny, nz)")
    nx, ny, nz = geometry
    if flat.ndim != 2 or flat.shape[1] != nx * ny * nz:
        raise ShowerFileError(
            f"{p}: 'showers' has shape {flat.shape}; expected (N, {nx * ny * nz}) for geometry {nx}x{ny}x{nz}"
        )
    if theta is None:
        if theta_rad is None:
            raise ShowerFileError(f"{p}: no 'theta' dataset; pass theta_rad= for fixed-angle data")
        theta = np.full(flat.shape[0], theta_rad, dtype=np.float32)
    showers = np.transpose(flat.reshape(-1, nz, nx, ny), (0, 2, 3, 1)) / np.float32(_MEV_PER_GEV)
    energy_gev = inc / np.float32(_MEV_PER_GEV)
    _check_arrays(np.ascontiguousarray(showers), energy_gev, theta, where=str(p))
    return ShowerSet(np.ascontiguousarray(showers), energy_gev, theta, {"source": "calochallenge-file"})


def read_any(path: str | os.PathLike[str]) -> ShowerSet:
    """Read a native, 3DGAN or CaloChallenge file, whichever ``path`` is."""
    fmt = detect_format(path)
    if fmt == "native":
        return read_showers(path)
    if fmt == "3dgan":
        return read_3dgan(path)
    return read_calochallenge(path)

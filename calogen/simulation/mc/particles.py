"""The particle table and the detector geometry of the cascade as torch tensors, and direction rotations."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from calogen.detector import Detector

__all__ = ["Geometry", "Particles", "normalise", "rotate"]


@dataclass
class Particles:
    """A table of particles. pos, dir: (N, 3) mm / unit; energy: (N,) MeV (kinetic for e+-);
    charge: (N,) -1, 0, +1 (float); slab, shower: (N,) int64."""

    pos: torch.Tensor
    dir: torch.Tensor
    energy: torch.Tensor
    charge: torch.Tensor
    slab: torch.Tensor
    shower: torch.Tensor

    def __len__(self) -> int:
        return int(self.energy.shape[0])

    def take(self, index: torch.Tensor | slice) -> Particles:
        """Rows selected by a boolean mask, an index tensor or a slice."""
        if isinstance(index, slice):
            return Particles(*(getattr(self, f.name)[index] for f in fields(self)))
        if index.dtype == torch.bool:
            index = index.nonzero().squeeze(1)
        return Particles(*(getattr(self, f.name).index_select(0, index) for f in fields(self)))

    @staticmethod
    def cat(parts: list[Particles]) -> Particles:
        """Concatenate particle tables."""
        return Particles(*(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Particles)))


@dataclass
class Geometry:
    """Detector as tensors: z boundaries (S+1,), material of each slab (S,), readout layer of each slab (S,)
    (-1 passive), cumulative thickness per material at each boundary (S+1, M)."""

    z_bounds: torch.Tensor
    slab_mat: torch.Tensor
    slab_layer: torch.Tensor
    thick_cum: torch.Tensor
    n_slabs: int
    n_materials: int
    n_layers: int
    cell_size_mm: float
    half_width_mm: float

    @staticmethod
    def from_detector(det: Detector, device: torch.device, dtype: torch.dtype) -> Geometry:
        """The detector's slabs as tensors on ``device`` (lengths in ``dtype``, indices int64)."""
        names = [m.name for m in det.materials]
        mat_idx = [names.index(s.material.name) for s in det.slabs]
        n_s, n_m = len(det.slabs), len(names)
        cum = torch.zeros(n_s + 1, n_m, dtype=torch.float64)
        for k, (s, mi) in enumerate(zip(det.slabs, mat_idx)):
            cum[k + 1] = cum[k]
            cum[k + 1, mi] += s.thickness_mm
        return Geometry(
            z_bounds=torch.tensor(det.boundaries_mm, dtype=dtype, device=device),
            slab_mat=torch.tensor(mat_idx, dtype=torch.long, device=device),
            slab_layer=torch.tensor(det.layer_of_slab, dtype=torch.long, device=device),
            thick_cum=cum.to(device=device, dtype=dtype),
            n_slabs=n_s,
            n_materials=n_m,
            n_layers=det.n_layers,
            cell_size_mm=det.cell_size_mm,
            half_width_mm=det.half_width_mm,
        )


def rotate(u: torch.Tensor, cos_t: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Turn unit vectors u (N, 3) by polar angle (cos_t) and azimuth phi around themselves (rotateUz)."""
    sin_t = torch.sqrt((1.0 - cos_t * cos_t).clamp_min(0.0))
    ux, uy, uz = u[:, 0], u[:, 1], u[:, 2]
    perp = torch.sqrt((ux * ux + uy * uy).clamp_min(1e-30))
    cp, sp = torch.cos(phi), torch.sin(phi)
    nx = (ux * uz * cp - uy * sp) / perp * sin_t + ux * cos_t
    ny = (uy * uz * cp + ux * sp) / perp * sin_t + uy * cos_t
    nz = -perp * cp * sin_t + uz * cos_t
    along = perp < 1e-7
    sgn = torch.where(uz >= 0, 1.0, -1.0).to(u.dtype)
    nx = torch.where(along, sin_t * cp, nx)
    ny = torch.where(along, sin_t * sp, ny)
    nz = torch.where(along, sgn * cos_t, nz)
    out = torch.stack((nx, ny, nz), dim=1)
    return out / out.norm(dim=1, keepdim=True).clamp_min(1e-30)


def normalise(v: torch.Tensor) -> torch.Tensor:
    """Vectors v (N, 3) scaled to unit length."""
    return v / v.norm(dim=1, keepdim=True).clamp_min(1e-30)


"""Detector geometry and materials: the CLIC_o1_v01 ECAL stack and simple test blocks.

A detector is a stack of transverse slabs along z (front to back); each slab has one material and a
thickness in mm, and slabs flagged ``sensitive`` are scored (one readout layer each). Cells are
``cell_size_mm`` squares on a ``n_cells`` grid in x, y. Another geometry is a configuration
(a TOML file, see :func:`load_detector`), not a code change.

Material constants follow the PDG review "Passage of particles through matter" and "Atomic and nuclear
properties of materials": radiation length from the Tsai formula (PDG eq. 34.26), critical energy from
the PDG fit for solids E_c = 610 MeV / (Z + 1.24), Moliere radius R_M = X0 E_s / E_c with
E_s = 21.2052 MeV, mean excitation energy of compounds by Bragg additivity.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

__all__ = [
    "DETECTORS",
    "ELEMENTS",
    "MATERIALS",
    "Detector",
    "Element",
    "Material",
    "Slab",
    "clic_ecal",
    "get_detector",
    "get_material",
    "homogeneous_block",
    "load_detector",
]

_ALPHA = 1.0 / 137.035999
_ES_MEV = 21.2052  # scale energy E_s = m_e sqrt(4 pi / alpha), MeV (PDG 34.4.3)
_X0_CONST_G_CM2 = 716.408  # 1 / (4 alpha r_e^2 N_A), g cm^-2 (PDG eq. 34.26)
_PACKAGED_DIR = Path(__file__).parent  # TOML geometries shipped with the package


@dataclass(frozen=True)
class Element:
    """A chemical element: symbol, atomic number Z, atomic mass A (g/mol), mean excitation energy I (eV)."""

    symbol: str
    z: int
    a: float  # atomic mass, g/mol
    i_ev: float  # mean excitation energy, eV (PDG atomic and nuclear properties)

    @property
    def radiation_length_g_cm2(self) -> float:
        """Radiation length, g/cm^2, Tsai formula with Coulomb correction f(Z) (PDG eq. 34.26-34.27)."""
        z = float(self.z)
        if self.z == 1:
            l_rad, l_rad_p = 5.31, 6.144
        elif self.z == 2:
            l_rad, l_rad_p = 4.79, 5.621
        elif self.z == 3:
            l_rad, l_rad_p = 4.74, 5.805
        elif self.z == 4:
            l_rad, l_rad_p = 4.71, 5.924
        else:
            l_rad = math.log(184.15 * z ** (-1.0 / 3.0))
            l_rad_p = math.log(1194.0 * z ** (-2.0 / 3.0))
        a2 = (_ALPHA * z) ** 2
        f_z = a2 * (1.0 / (1.0 + a2) + 0.20206 - 0.0369 * a2 + 0.0083 * a2**2 - 0.002 * a2**3)
        return _X0_CONST_G_CM2 * self.a / (z * z * (l_rad - f_z) + z * l_rad_p)

    @property
    def critical_energy_mev(self) -> float:
        """Critical energy for electrons in a solid, MeV: PDG fit 610 MeV / (Z + 1.24)."""
        return 610.0 / (self.z + 1.24)


# PDG "Atomic and nuclear properties of materials" (Z, A, I).
ELEMENTS: dict[str, Element] = {
    e.symbol: e
    for e in (
        Element("H", 1, 1.008, 19.2),
        Element("C", 6, 12.011, 78.0),
        Element("N", 7, 14.007, 82.0),
        Element("O", 8, 15.999, 95.0),
        Element("Si", 14, 28.0855, 173.0),
        Element("Ar", 18, 39.948, 188.0),
        Element("Fe", 26, 55.845, 286.0),
        Element("Ni", 28, 58.6934, 311.0),
        Element("Cu", 29, 63.546, 322.0),
        Element("Pb", 82, 207.2, 823.0),
        Element("W", 74, 183.84, 727.0),
        Element("Br", 35, 79.904, 343.0),
        Element("Cl", 17, 35.453, 174.0),
    )
}


@dataclass(frozen=True)
class Material:
    """A material: name, density (g/cm^3) and element mass fractions (summing to 1).

    Derived quantities are properties: radiation length (mm), critical energy (MeV), Moliere radius (mm),
    mean excitation energy (eV), effective Z (mass-weighted, as in GFlash).
    """

    name: str
    density_g_cm3: float  # g/cm^3
    mass_fractions: tuple[tuple[str, float], ...]  # ((symbol, mass fraction), ...), sums to 1
    i_ev: float | None = None  # mean excitation energy, eV, where measured; None: Bragg additivity

    def __post_init__(self) -> None:
        if self.density_g_cm3 <= 0:
            raise ValueError(
                f"material {self.name!r}: density {self.density_g_cm3} g/cm3 must be positive"
            )
        total = sum(w for _, w in self.mass_fractions)
        if abs(total - 1.0) > 1e-3:
            raise ValueError(
                f"material {self.name!r}: mass fractions sum to {total:.4f}, not 1; fix the fractions"
            )
        for sym, _ in self.mass_fractions:
            if sym not in ELEMENTS:
                raise ValueError(
                    f"material {self.name!r}: unknown element {sym!r}; known: {sorted(ELEMENTS)}"
                )

    @property
    def elements(self) -> list[tuple[Element, float]]:
        """[(Element, mass fraction normalised to 1)]."""
        total = sum(w for _, w in self.mass_fractions)
        return [(ELEMENTS[s], w / total) for s, w in self.mass_fractions]

    @cached_property
    def radiation_length_g_cm2(self) -> float:
        """Radiation length, g/cm^2: 1/X0 = sum_i w_i / X0_i (PDG eq. 34.28)."""
        return 1.0 / sum(w / el.radiation_length_g_cm2 for el, w in self.elements)

    @property
    def radiation_length_mm(self) -> float:
        """Radiation length, mm."""
        return 10.0 * self.radiation_length_g_cm2 / self.density_g_cm3

    @cached_property
    def critical_energy_mev(self) -> float:
        """Critical energy, MeV: E_c = X0 sum_i w_i E_c,i / X0_i (energy-loss weighted, as in GFlash)."""
        x0 = self.radiation_length_g_cm2
        return x0 * sum(w * el.critical_energy_mev / el.radiation_length_g_cm2 for el, w in self.elements)

    @property
    def moliere_radius_mm(self) -> float:
        """Moliere radius, mm: R_M = X0 E_s / E_c (PDG eq. 34.35)."""
        return self.radiation_length_mm * _ES_MEV / self.critical_energy_mev

    @cached_property
    def z_over_a(self) -> float:
        """<Z/A>, mol/g."""
        return sum(w * el.z / el.a for el, w in self.elements)

    @cached_property
    def mean_excitation_ev(self) -> float:
        """Mean excitation energy, eV: the given value, else Bragg additivity ln I = sum w_i (Z/A)_i ln I_i / <Z/A>."""
        if self.i_ev is not None:
            return self.i_ev
        num = sum(w * el.z / el.a * math.log(el.i_ev) for el, w in self.elements)
        return math.exp(num / self.z_over_a)

    @property
    def z_eff(self) -> float:
        """Effective Z, mass-weighted sum w_i Z_i (GFlash convention)."""
        return sum(w * el.z for el, w in self.elements)

    @property
    def electron_density_per_mm3(self) -> float:
        """Electron density, electrons / mm^3."""
        return self.density_g_cm3 * self.z_over_a * 6.02214076e23 * 1e-3

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description with the derived constants."""
        return {
            "name": self.name,
            "density_g_cm3": self.density_g_cm3,
            "mass_fractions": dict(self.mass_fractions),
            "radiation_length_mm": self.radiation_length_mm,
            "critical_energy_mev": self.critical_energy_mev,
            "moliere_radius_mm": self.moliere_radius_mm,
            "mean_excitation_ev": self.mean_excitation_ev,
            "z_eff": self.z_eff,
        }


def _mat(name: str, density: float, **fractions: float) -> Material:
    return Material(name, density, tuple(fractions.items()))


# Built-in materials: pure elements (PDG densities) and air. Detector-specific mixtures, such as the CLIC ECAL's
# tungsten alloy and PCB, are defined with the detector in its TOML file (calogen/detector/).
MATERIALS: dict[str, Material] = {
    m.name: m
    for m in (
        _mat("W", 19.3, W=1.0),
        _mat("Si", 2.329, Si=1.0),
        _mat("Cu", 8.96, Cu=1.0),
        _mat("Pb", 11.35, Pb=1.0),
        _mat("Fe", 7.874, Fe=1.0),
        _mat("Air", 0.0012048, N=0.7553, O=0.2318, Ar=0.0129),
    )
}


def get_material(name: str) -> Material:
    """A material of :data:`MATERIALS` by name; raises KeyError naming the known ones."""
    if name not in MATERIALS:
        raise KeyError(f"unknown material {name!r}; known: {sorted(MATERIALS)}")
    return MATERIALS[name]


@dataclass(frozen=True)
class Slab:
    """One transverse slab: a material and a thickness (mm); ``sensitive`` slabs are scored layers."""

    material: Material
    thickness_mm: float  # mm
    sensitive: bool = False

    def __post_init__(self) -> None:
        if not self.thickness_mm > 0:
            raise ValueError(f"slab of {self.material.name}: thickness {self.thickness_mm} mm must be > 0")


@dataclass(frozen=True)
class Detector:
    """A layered calorimeter: slabs front to back along z, starting at z = 0.

    Scoring: energy deposited in the sensitive slabs, in square cells of ``cell_size_mm``; the readout
    window handed out is ``n_cells`` (x, y) cells by one layer per sensitive slab. ``half_width_mm`` is the
    transverse half-size of the volume (particles beyond it have leaked out of the sides).
    """

    name: str
    slabs: tuple[Slab, ...]
    cell_size_mm: float = 5.1  # mm
    n_cells: tuple[int, int] = (51, 51)  # (nx, ny) cells in the readout window
    half_width_mm: float = 1000.0  # mm, transverse half-size of the volume
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.slabs:
            raise ValueError(f"detector {self.name!r} has no slabs")
        if not any(s.sensitive for s in self.slabs):
            raise ValueError(f"detector {self.name!r} has no sensitive slab; mark at least one")
        if self.cell_size_mm <= 0 or min(self.n_cells) < 1:
            raise ValueError(
                f"detector {self.name!r}: cell size {self.cell_size_mm} mm / n_cells {self.n_cells} invalid"
            )

    @property
    def n_layers(self) -> int:
        """Number of sensitive (scored) layers."""
        return sum(1 for s in self.slabs if s.sensitive)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(nx, ny, n_layers) of the readout window."""
        return (self.n_cells[0], self.n_cells[1], self.n_layers)

    @property
    def depth_mm(self) -> float:
        """Total depth of the stack, mm."""
        return sum(s.thickness_mm for s in self.slabs)

    @property
    def boundaries_mm(self) -> list[float]:
        """z of the slab boundaries, mm: [0, z_1, ..., depth] (len = n_slabs + 1)."""
        z = [0.0]
        for s in self.slabs:
            z.append(z[-1] + s.thickness_mm)
        return z

    @property
    def layer_of_slab(self) -> list[int]:
        """Readout layer index of each slab, -1 for passive slabs."""
        out, k = [], 0
        for s in self.slabs:
            if s.sensitive:
                out.append(k)
                k += 1
            else:
                out.append(-1)
        return out

    @property
    def materials(self) -> list[Material]:
        """Distinct materials, in order of first appearance."""
        seen: dict[str, Material] = {}
        for s in self.slabs:
            seen.setdefault(s.material.name, s.material)
        return list(seen.values())

    @property
    def total_radiation_lengths(self) -> float:
        """Depth of the stack in radiation lengths (sum of thickness / X0)."""
        return sum(s.thickness_mm / s.material.radiation_length_mm for s in self.slabs)

    def effective_material(self) -> dict[str, float]:
        """Mass-weighted effective constants of the stack (GFlash sampling recipe).

        Returns dict with radiation_length_mm, critical_energy_mev, moliere_radius_mm, z_eff,
        density_g_cm3, sampling_fraction_mip (minimum-ionising fraction deposited in the sensitive slabs).
        """
        masses = [s.thickness_mm * s.material.density_g_cm3 for s in self.slabs]
        mass = sum(masses)
        inv_x0 = sum(m / mass / s.material.radiation_length_g_cm2 for m, s in zip(masses, self.slabs))
        x0_g = 1.0 / inv_x0
        density = mass / self.depth_mm
        ec = x0_g * sum(
            m / mass * s.material.critical_energy_mev / s.material.radiation_length_g_cm2
            for m, s in zip(masses, self.slabs)
        )
        x0_mm = 10.0 * x0_g / density
        z_eff = sum(m / mass * s.material.z_eff for m, s in zip(masses, self.slabs))
        # mip energy loss ~ density * <Z/A> (Bethe, up to the slowly varying logarithm)
        mip = [s.thickness_mm * s.material.density_g_cm3 * s.material.z_over_a for s in self.slabs]
        mip_sens = sum(m for m, s in zip(mip, self.slabs) if s.sensitive)
        return {
            "radiation_length_mm": x0_mm,
            "critical_energy_mev": ec,
            "moliere_radius_mm": x0_mm * _ES_MEV / ec,
            "z_eff": z_eff,
            "density_g_cm3": density,
            "sampling_fraction_mip": mip_sens / sum(mip),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (used in file attributes and model cards)."""
        return {
            "name": self.name,
            "cell_size_mm": self.cell_size_mm,
            "n_cells": list(self.n_cells),
            "n_layers": self.n_layers,
            "depth_mm": self.depth_mm,
            "total_radiation_lengths": self.total_radiation_lengths,
            "slabs": [
                {"material": s.material.name, "thickness_mm": s.thickness_mm, "sensitive": s.sensitive}
                for s in self.slabs
            ],
        }


@cache
def clic_ecal() -> Detector:
    """The CLIC_o1_v01 ECAL barrel, loaded from its description ``calogen/detector/clic_ecal.toml``.

    25 layers (17 with 2.4 mm, 8 with 4.8 mm of tungsten alloy), each W | 0.25 mm air | 0.10 mm ground/HV mix |
    0.50 mm Si | 0.10 mm air | 0.80 mm PCB mix | 0.25 mm air, behind a 1.6 mm carbon-fibre face and in front of
    a 4.8 mm tungsten plate and a 10 mm carbon-fibre wall (iLCSoft/lcgeo, CLIC_o1_v01 ECalBarrel_o1_v01_01.xml).
    """
    return load_detector(_PACKAGED_DIR / "clic_ecal.toml")


def homogeneous_block(
    material: str | Material,
    depth_mm: float | None = None,
    *,
    depth_x0: float = 30.0,
    n_layers: int = 60,
    cell_size_mm: float | None = None,
    n_cells: tuple[int, int] = (51, 51),
) -> Detector:
    """A block of one material, scored everywhere (no sampling): ``n_layers`` equal sensitive slabs.

    Args:
        material: material name (see MATERIALS) or Material.
        depth_mm: total depth, mm; default ``depth_x0`` radiation lengths.
        n_layers: number of scored layers.
        cell_size_mm: cell size, mm; default 0.25 Moliere radius.
    """
    mat = get_material(material) if isinstance(material, str) else material
    depth = depth_mm if depth_mm is not None else depth_x0 * mat.radiation_length_mm
    if n_layers < 1 or depth <= 0:
        raise ValueError(f"homogeneous block: depth {depth} mm and n_layers {n_layers} must be positive")
    cell = cell_size_mm if cell_size_mm is not None else 0.25 * mat.moliere_radius_mm
    slab = Slab(mat, depth / n_layers, sensitive=True)
    return Detector(
        name=f"block_{mat.name}",
        slabs=(slab,) * n_layers,
        cell_size_mm=cell,
        n_cells=n_cells,
        description=f"homogeneous {mat.name} block, {depth:.1f} mm, {n_layers} scored layers",
    )


def _material_from_toml(name: str, spec: Any, path: Path) -> Material:
    if isinstance(spec, str):
        return get_material(spec)
    try:
        fractions = tuple((k, float(v)) for k, v in spec["mass_fractions"].items())
        i_ev = float(spec["mean_excitation_ev"]) if "mean_excitation_ev" in spec else None
        return Material(name, float(spec["density_g_cm3"]), fractions, i_ev)
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: material {name!r} needs density_g_cm3 and a [materials.{name}.mass_fractions] table"
        ) from exc


def load_detector(path: str | Path) -> Detector:
    """Load a detector from a TOML file.

    Format::

        name = "my_ecal"
        cell_size_mm = 5.1
        n_cells = [51, 51]
        [materials.MyMix]                      # optional, besides the built-in MATERIALS
        density_g_cm3 = 5.0
        mean_excitation_ev = 260.0             # optional; default: Bragg additivity
        mass_fractions = { Cu = 0.8, C = 0.2 }
        [[block]]                              # repeated `repeat` times, slabs front to back
        repeat = 17
        slabs = [["W_alloy", 2.4], ["Si", 0.5, true], ["PCB", 1.3]]
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read detector file {p}: {exc}") from exc
    materials = dict(MATERIALS)
    for name, spec in data.get("materials", {}).items():
        materials[name] = _material_from_toml(name, spec, p)
    slabs: list[Slab] = []
    for block in data.get("block", []):
        for _ in range(int(block.get("repeat", 1))):
            for entry in block["slabs"]:
                mname, thick = entry[0], float(entry[1])
                sensitive = bool(entry[2]) if len(entry) > 2 else False
                if mname not in materials:
                    raise ValueError(f"{p}: unknown material {mname!r}; known: {sorted(materials)}")
                slabs.append(Slab(materials[mname], thick, sensitive))
    if not slabs:
        raise ValueError(f"{p}: no [[block]] with slabs; see calogen.detector.load_detector for the format")
    return Detector(
        name=str(data.get("name", p.stem)),
        slabs=tuple(slabs),
        cell_size_mm=float(data.get("cell_size_mm", 5.1)),
        n_cells=tuple(int(v) for v in data.get("n_cells", [51, 51])),  # type: ignore[arg-type]
        half_width_mm=float(data.get("half_width_mm", 1000.0)),
        description=str(data.get("description", "")),
    )


DETECTORS = {"clic_ecal": clic_ecal}


def get_detector(name_or_path: str | Path | Detector | None = None) -> Detector:
    """A detector by name ("clic_ecal"), TOML path, or Detector (returned as is); None gives clic_ecal."""
    if name_or_path is None:
        return clic_ecal()
    if isinstance(name_or_path, Detector):
        return name_or_path
    key = str(name_or_path)
    if key in DETECTORS:
        return DETECTORS[key]()
    if key.startswith("block_") and key[6:] in MATERIALS:
        return homogeneous_block(key[6:])
    p = Path(key)
    if p.suffix == ".toml" and p.exists():
        return load_detector(p)
    packaged = _PACKAGED_DIR / f"{key}.toml"
    if packaged.exists():
        return load_detector(packaged)
    raise ValueError(
        f"unknown detector {key!r}; use one of {sorted(DETECTORS)}, block_<material>, or a .toml file path"
    )

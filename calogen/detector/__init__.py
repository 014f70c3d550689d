"""The detector: the CLIC_o1_v01 ECAL layer stack, materials and cell grid as data (``geometry``), the
stack itself in ``clic_ecal.toml``."""

from calogen.detector.geometry import (
    DETECTORS,
    ELEMENTS,
    MATERIALS,
    Detector,
    Element,
    Material,
    Slab,
    clic_ecal,
    get_detector,
    get_material,
    homogeneous_block,
    load_detector,
)

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

"""Detector geometry and material constants against the PDG values and the CLIC_o1_v01 description
(iLCSoft/lcgeo, CLIC/compact/CLIC_o1_v01/ECalBarrel_o1_v01_01.xml, Materials_v01.xml)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calogen.detector import (
    MATERIALS,
    Detector,
    Material,
    Slab,
    clic_ecal,
    get_detector,
    get_material,
    homogeneous_block,
    load_detector,
)


@pytest.mark.parametrize(
    ("name", "x0_g_cm2", "x0_cm", "ec_mev", "rm_cm", "i_ev"),
    [
        ("W", 6.76, 0.3504, 7.97, 0.93, 727.0),
        ("Si", 21.82, 9.37, 40.19, 4.94, 173.0),
        ("Cu", 12.86, 1.436, 19.42, 1.57, 322.0),
    ],
)
def test_element_constants_match_pdg(name: str, x0_g_cm2: float, x0_cm: float, ec_mev: float,
                                     rm_cm: float, i_ev: float) -> None:
    m = get_material(name)
    assert m.radiation_length_g_cm2 == pytest.approx(x0_g_cm2, rel=0.005)
    assert m.radiation_length_mm == pytest.approx(10 * x0_cm, rel=0.005)
    # PDG fit 610/(Z+1.24) vs the tabulated Rossi-definition values: a few percent
    assert m.critical_energy_mev == pytest.approx(ec_mev, rel=0.05)
    assert m.moliere_radius_mm == pytest.approx(10 * rm_cm, rel=0.05)
    assert m.mean_excitation_ev == pytest.approx(i_ev)
    assert m.z_eff == pytest.approx({"W": 74, "Si": 14, "Cu": 29}[name])


def _clic_material(name: str) -> Material:
    return next(m for m in clic_ecal().materials if m.name == name)


def test_w_alloy_radiation_length() -> None:
    # TungstenDens24, 17.8 g/cm3 (W 0.93, Ni 0.061, Fe 0.009): X0 about 3.93 mm
    assert _clic_material("TungstenDens24").radiation_length_mm == pytest.approx(3.93, abs=0.03)


def test_measured_mean_excitation_energies_are_kept() -> None:
    # Materials_v01.xml gives I for the two copper mixtures; Bragg additivity is only the fallback
    assert _clic_material("GroundOrHVMix").mean_excitation_ev == pytest.approx(259.8)
    assert _clic_material("siPCBMix").mean_excitation_ev == pytest.approx(262.5)
    bragg = Material("Cu-mix", 5.0, (("Cu", 0.82), ("O", 0.18)))
    assert 100.0 < bragg.mean_excitation_ev < 322.0


def test_mixture_rules() -> None:
    # 1/X0 = sum w_i / X0_i and Bragg additivity for I: a 50/50 W-Si mix lies between the two
    mix = Material("mix", 10.0, (("W", 0.5), ("Si", 0.5)))
    w, si = get_material("W"), get_material("Si")
    inv = 0.5 / w.radiation_length_g_cm2 + 0.5 / si.radiation_length_g_cm2
    assert mix.radiation_length_g_cm2 == pytest.approx(1.0 / inv)
    assert si.mean_excitation_ev < mix.mean_excitation_ev < w.mean_excitation_ev
    assert mix.z_eff == pytest.approx(44.0)


def test_material_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="sum to"):
        Material("bad", 1.0, (("W", 0.5),))
    with pytest.raises(ValueError, match="unknown element"):
        Material("bad", 1.0, (("Xx", 1.0),))
    with pytest.raises(KeyError, match="unknown material"):
        get_material("Unobtainium")


def test_clic_stack() -> None:
    det = clic_ecal()
    assert det.n_layers == 25
    assert det.cell_size_mm == 5.1
    assert det.shape == (51, 51, 25)
    w = [s for s in det.slabs if s.material.name == "TungstenDens24"]
    # 17 x 2.4 mm and 8 x 4.8 mm in front of the 25 silicon layers, then the 4.8 mm plate behind the last one
    assert [s.thickness_mm for s in w] == [2.4] * 17 + [4.8] * 9
    si = [s for s in det.slabs if s.sensitive]
    assert all(s.material.name == "Si" and s.thickness_mm == 0.5 for s in si)
    per_layer = [(s.material.name, s.thickness_mm) for s in det.slabs[1:8]]
    assert per_layer == [("TungstenDens24", 2.4), ("Air", 0.25), ("GroundOrHVMix", 0.10), ("Si", 0.5),
                         ("Air", 0.10), ("siPCBMix", 0.80), ("Air", 0.25)]
    assert (det.slabs[0].material.name, det.slabs[0].thickness_mm) == ("CarbonFiber_25percent", 1.6)
    assert (det.slabs[-1].material.name, det.slabs[-1].thickness_mm) == ("CarbonFiber_25percent", 10.0)
    assert det.depth_mm == pytest.approx(1.6 + 17 * 2.4 + 8 * 4.8 + 25 * 2.0 + 4.8 + 10.0)
    assert det.layer_of_slab[4] == 0 and det.layer_of_slab[-6] == 24
    total_w_x0 = sum(s.thickness_mm for s in w) / w[0].material.radiation_length_mm
    assert total_w_x0 == pytest.approx(21.4, abs=0.1)  # 84 mm of W alloy
    eff = det.effective_material()
    assert 0.015 < eff["sampling_fraction_mip"] < 0.03  # mip fraction in Si of a Si-W stack


def test_homogeneous_block() -> None:
    det = homogeneous_block("W", depth_x0=20.0, n_layers=40)
    assert det.n_layers == 40
    assert all(s.sensitive for s in det.slabs)
    assert det.total_radiation_lengths == pytest.approx(20.0)
    assert det.cell_size_mm == pytest.approx(0.25 * MATERIALS["W"].moliere_radius_mm)


def test_toml_loader(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "my.toml"
    path.write_text(
        'name = "pb_scint"\ncell_size_mm = 10.0\nn_cells = [21, 21]\n'
        "[materials.Scint]\ndensity_g_cm3 = 1.032\nmass_fractions = { C = 0.915, H = 0.085 }\n"
        '[[block]]\nrepeat = 10\nslabs = [["Pb", 2.0], ["Scint", 5.0, true]]\n'
    )
    det = load_detector(path)
    assert det.name == "pb_scint" and det.n_layers == 10 and det.n_cells == (21, 21)
    assert det.slabs[1].material.name == "Scint" and det.slabs[1].sensitive
    assert get_detector(str(path)).depth_mm == pytest.approx(70.0)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[block]]\nslabs = [["Kryptonite", 1.0, true]]\n')
    with pytest.raises(ValueError, match="unknown material 'Kryptonite'"):
        load_detector(bad)


def test_get_detector_names() -> None:
    assert get_detector().name == "clic_ecal"
    assert get_detector("clic_ecal").n_layers == 25
    assert get_detector("block_W").slabs[0].material.name == "W"
    with pytest.raises(ValueError, match="unknown detector"):
        get_detector("atlas_lar")


def test_detector_validation() -> None:
    with pytest.raises(ValueError, match="no sensitive slab"):
        Detector("x", (Slab(get_material("W"), 1.0),))
    with pytest.raises(ValueError, match="thickness"):
        Slab(get_material("W"), 0.0)
    assert math.isfinite(clic_ecal().total_radiation_lengths)


def test_the_stack_has_one_source() -> None:
    from pathlib import Path

    import calogen.detector as detector_module
    from calogen.validation.features import clic_layer_depth_mm

    toml = load_detector(Path(detector_module.__file__).parent / "clic_ecal.toml")
    built_in = clic_ecal()
    assert toml.slabs == built_in.slabs
    assert toml.cell_size_mm == built_in.cell_size_mm and toml.n_cells == built_in.n_cells
    # the layer depths the angle measurement uses come from the same stack: 4.4 mm pitch, then 6.8 mm
    depth = clic_layer_depth_mm()
    assert depth[0] == pytest.approx(1.6 + 2.4 + 0.25 + 0.10 + 0.25)
    assert np.diff(depth)[:16] == pytest.approx([4.4] * 16) and np.diff(depth)[17:] == pytest.approx([6.8] * 7)

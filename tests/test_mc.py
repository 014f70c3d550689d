"""Behaviour of the cascade Monte Carlo: bookkeeping, reproducibility, window, angle, inputs, CLI, cross sections."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calogen.detector import get_material, homogeneous_block
from calogen.io import read_showers
from calogen.showers import Conditions, OutOfRangeError
from calogen.simulation.mc import MonteCarlo, simulate
from calogen.simulation.mc.physics import ELECTRON_MASS_MEV, photon_cross_sections_per_mm, restricted_dedx_mev_per_mm

NORMAL = math.pi / 2


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("particle", ["e-", "e+", "gamma"])
def test_energy_bookkeeping_closes(particle: str) -> None:
    showers, book = simulate([2.0, 3.0], [NORMAL, math.radians(65.0)], particle=particle, seed=3,
                             return_bookkeeping=True)
    assert np.all(book.relative_closure < 1e-4)
    assert np.all(book.deposited_sensitive > 0) and np.all(book.deposited_passive > 0)
    assert np.all(book.leak_side == 0)  # 1 m half-width: nothing leaves through the sides
    # what is in the file is the sensitive deposit inside the window
    np.testing.assert_allclose(showers.showers.sum(axis=(1, 2, 3)), book.in_window, rtol=1e-4)
    assert np.all(book.in_window <= book.deposited_sensitive * (1 + 1e-6))
    if particle == "e+":
        np.testing.assert_allclose(book.primary, [2.0 + 2 * ELECTRON_MASS_MEV / 1e3, 3.0 + 2 * ELECTRON_MASS_MEV / 1e3])


def test_output_format_and_reproducibility() -> None:
    a = simulate(1.0, NORMAL, n=2, seed=11)
    b = simulate(1.0, NORMAL, n=2, seed=11)
    c = simulate(1.0, NORMAL, n=2, seed=12)
    assert a.showers.shape == (2, 51, 51, 25) and a.showers.dtype == np.float32
    assert a.energy_gev.tolist() == [1.0, 1.0]
    assert a.attrs["particle"] == "e-" and a.attrs["source"] == "mc" and a.attrs["seed"] == 11
    assert a.attrs["detector"] == "clic_ecal"
    np.testing.assert_array_equal(a.showers, b.showers)
    assert not np.array_equal(a.showers, c.showers)
    assert np.all(a.showers >= 0)


def test_window_is_centred_on_the_barycentre() -> None:
    s = simulate(2.0, [NORMAL, math.radians(62.0)], seed=5)
    idx = np.arange(51)
    for shower in s.showers:
        total = shower.sum()
        bx = (shower.sum(axis=(1, 2)) * idx).sum() / total
        by = (shower.sum(axis=(0, 2)) * idx).sum() / total
        # the barycentre lies in the central cell (index 25) up to the rounding and the cut-off tails
        assert abs(bx - 25) < 0.75 and abs(by - 25) < 0.75


def test_angle_tilts_the_shower_in_y_z() -> None:
    def slopes(theta_deg: float) -> tuple[float, float]:
        s = simulate(3.0, math.radians(theta_deg), n=6, seed=2)
        e = s.showers.sum(axis=0)  # (x, y, layer)
        layers = np.arange(3, 15)
        idx = np.arange(51)
        by = [(e[:, :, k].sum(axis=0) * idx).sum() / e[:, :, k].sum() for k in layers]
        bx = [(e[:, :, k].sum(axis=1) * idx).sum() / e[:, :, k].sum() for k in layers]
        return float(np.polyfit(layers, by, 1)[0]), float(np.polyfit(layers, bx, 1)[0])

    dy60, dx60 = slopes(60.0)
    dy120, _ = slopes(120.0)
    dy90, _ = slopes(90.0)
    # layer pitch 3.4-5.8 mm, cells 5.1 mm: tan(30 deg) gives about 0.4-0.6 cells per layer
    assert dy60 > 0.25 and dy120 < -0.25
    assert abs(dy90) < 0.12 and abs(dx60) < 0.12


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(OutOfRangeError, match="energy 0.5 GeV is outside 1-500 GeV, the range the Monte Carlo "
                                              "accepts; pass allow_out_of_range=True for 0.01-2000 GeV, 1-179 deg"):
        simulate(0.5, NORMAL, n=1)
    with pytest.raises(OutOfRangeError, match="angle 30 deg is outside 60-120 deg"):
        simulate(10.0, math.radians(30.0), n=1)
    with pytest.raises(OutOfRangeError, match="angle 0.5 deg is outside 1-179 deg"):
        simulate(10.0, math.radians(0.5), n=1, allow_out_of_range=True)
    with pytest.raises(ValueError, match="not simulated"):
        simulate(10.0, NORMAL, n=1, particle="mu-")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n=3"):
        simulate([1.0, 2.0], NORMAL, n=3)


def test_progress_steps_split_a_request_without_depending_on_the_callback() -> None:
    """With progress_steps the showers come in chunks (progress during the run, for the app's Stop button); the
    chunking depends on progress_steps only, so the callback does not change the showers."""
    calls: list[tuple[int, int]] = []
    source = MonteCarlo(progress_steps=16)
    conditions = Conditions.broadcast(1.0, NORMAL, 3)
    batch = source.sample(conditions, seed=1, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]  # one call per shower, not one at the end
    np.testing.assert_array_equal(batch.showers, source.sample(conditions, seed=1).showers)
    assert MonteCarlo(wide=True).condition_range.describe() == "0.01-2000 GeV, 1-179 deg"


def test_photon_mean_free_path_tables() -> None:
    w = get_material("W")
    mfp = 1.0 / photon_cross_sections_per_mm(w, np.array([1.0, 10.0, 1e5, 0.1]))["total"]
    assert mfp[0] == pytest.approx(7.8, rel=0.03)  # NIST: 0.78 cm at 1 MeV
    assert mfp[1] == pytest.approx(10.9, rel=0.04)  # NIST: 1.09 cm at 10 MeV
    assert mfp[2] == pytest.approx(9.0 / 7.0 * w.radiation_length_mm, rel=0.02)  # 9/7 X0
    assert mfp[3] == pytest.approx(0.12, rel=0.1)  # 0.12 mm at 100 keV
    si = 1.0 / photon_cross_sections_per_mm(get_material("Si"), np.array([1.0]))["total"]
    assert si[0] > 60.0  # silicon nearly transparent to MeV photons


def test_electron_collision_stopping_power() -> None:
    # ESTAR collision stopping power of 1 MeV electrons (MeV cm2/g): Si 1.494, W 0.99 (unrestricted)
    t = np.array([1.0])
    for name, dedx, tol in (("Si", 1.494, 0.04), ("W", 0.99, 0.07)):
        m = get_material(name)
        value = restricted_dedx_mev_per_mm(m, t, 1e9)[0] * 10.0 / m.density_g_cm3
        assert value == pytest.approx(dedx, rel=tol)
    # restricting the delta rays lowers the loss
    si = get_material("Si")
    assert restricted_dedx_mev_per_mm(si, t, 0.1)[0] < restricted_dedx_mev_per_mm(si, t, 1e9)[0]


def test_photon_transmission_through_a_thin_block() -> None:
    # 10 MeV photons through 2 mm of W: unscattered fraction exp(-2 mm / 10.7 mm)
    det = homogeneous_block("W", depth_mm=2.0, n_layers=1, n_cells=(5, 5))
    n = 3000
    _, book = simulate(0.01, NORMAL, n=n, particle="gamma", detector=det, seed=1, return_bookkeeping=True,
                       allow_out_of_range=True, max_chunk_showers=n, chunk_energy_gev=1e9)
    unscattered = np.mean(np.isclose(book.leak_back, 0.01, rtol=1e-5))
    mfp = 1.0 / photon_cross_sections_per_mm(get_material("W"), np.array([10.0]))["total"][0]
    expected = math.exp(-2.0 / mfp)
    assert unscattered == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / n))


def test_cli_simulate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from calogen.__main__ import main

    out = tmp_path / "s.h5"
    code = main(["simulate", "--particle", "gamma", "--energy", "2", "--theta", "80", "-n", "2", "--seed", "4",
                 "--device", "cpu", "--quiet", "--out", str(out)])
    assert code == 0
    s = read_showers(out)
    assert len(s) == 2 and s.attrs["particle"] == "gamma" and s.attrs["seed"] == 4
    assert s.attrs["source"] == "mc" and s.attrs["detector"] == "clic_ecal" and "command" in s.attrs
    np.testing.assert_allclose(s.theta_rad, math.radians(80.0), rtol=1e-6)


def test_cli_rejects_bad_arguments(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from calogen.__main__ import main

    assert main(["simulate", "--energy", "900", "--out", str(tmp_path / "x.h5")]) == 2
    assert "1-500 GeV" in capsys.readouterr().err
    assert main(["simulate", "--theta-range", "40", "100", "--out", str(tmp_path / "x.h5")]) == 2
    assert "60-120 deg" in capsys.readouterr().err
    assert main(["simulate", "--detector", "nope", "--out", str(tmp_path / "x.h5")]) == 2
    assert not (tmp_path / "x.h5").exists()

"""Shower files: native, 3DGAN and CaloChallenge round trips; clear errors on bad files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from calogen.io import (
    ShowerFileError,
    ShowerSet,
    detect_format,
    iter_showers,
    read_3dgan,
    read_any,
    read_calochallenge,
    read_showers,
    showers_to_bytes,
    write_3dgan,
    write_calochallenge,
    write_showers,
)
from calogen.showers import ShowerSetError


@pytest.fixture()
def sample() -> ShowerSet:
    rng = np.random.default_rng(7)
    showers = rng.gamma(0.3, 1e-3, size=(5, 51, 51, 25)).astype(np.float32)
    showers[showers < 2e-4] = 0.0
    energy = np.array([2.0, 10.0, 50.0, 100.0, 500.0], dtype=np.float32)
    theta = np.deg2rad([62.0, 90.0, 118.0, 90.0, 60.0]).astype(np.float32)
    return ShowerSet(showers, energy, theta, {"particle": "e-", "source": "mc", "seed": 3, "detector": "clic_ecal"})


def assert_same(a: ShowerSet, b: ShowerSet, rtol: float = 0.0) -> None:
    np.testing.assert_allclose(a.showers, b.showers, rtol=rtol, atol=0)
    np.testing.assert_array_equal(a.energy_gev, b.energy_gev)
    np.testing.assert_array_equal(a.theta_rad, b.theta_rad)


def test_native_round_trip_keeps_showers_and_attrs(tmp_path, sample):
    path = write_showers(tmp_path / "s.h5", sample)
    back = read_showers(path)
    assert_same(sample, back)
    assert back.attrs["particle"] == "e-" and back.attrs["seed"] == 3 and back.attrs["units"] == "GeV"
    assert detect_format(path) == "native"
    with h5py.File(path) as h5:
        assert h5["ECAL"].chunks == (1, 51, 51, 25) and h5["ECAL"].compression == "gzip"


def test_native_to_3dgan_to_native(tmp_path, sample):
    write_3dgan(tmp_path / "g.h5", sample)
    with h5py.File(tmp_path / "g.h5") as h5:  # the 3DGAN files store GeV x 50
        np.testing.assert_allclose(h5["ECAL"][0], sample.showers[0] * 50, rtol=1e-6)
    assert detect_format(tmp_path / "g.h5") == "3dgan"
    via = read_3dgan(tmp_path / "g.h5")
    write_showers(tmp_path / "n.h5", via)
    assert_same(sample, read_showers(tmp_path / "n.h5"), rtol=1e-6)


def test_native_to_calochallenge_to_native(tmp_path, sample):
    write_calochallenge(tmp_path / "c.h5", sample)
    with h5py.File(tmp_path / "c.h5") as h5:
        assert h5["showers"].shape == (5, 25 * 51 * 51)
        np.testing.assert_allclose(h5["incident_energies"][:, 0], sample.energy_gev * 1000)  # MeV
        # layer-major flattening: voxel (x=3, y=4, layer=2) sits at ((2 * 51) + 3) * 51 + 4
        np.testing.assert_allclose(h5["showers"][1, (2 * 51 + 3) * 51 + 4], sample.showers[1, 3, 4, 2] * 1000)
    via = read_any(tmp_path / "c.h5")
    write_showers(tmp_path / "n.h5", via)
    assert_same(sample, read_showers(tmp_path / "n.h5"), rtol=1e-6)


def test_calochallenge_without_theta_needs_it(tmp_path, sample):
    with h5py.File(tmp_path / "c.h5", "w") as h5:
        h5["showers"] = np.zeros((2, 10 * 10 * 5), np.float32)
        h5["incident_energies"] = np.full((2, 1), 1000.0, np.float32)
    with pytest.raises(ShowerFileError, match="pass geometry"):
        read_calochallenge(tmp_path / "c.h5")
    with pytest.raises(ShowerFileError, match="theta_rad="):
        read_calochallenge(tmp_path / "c.h5", geometry=(10, 10, 5))
    s = read_calochallenge(tmp_path / "c.h5", geometry=(10, 10, 5), theta_rad=np.pi / 2)
    assert s.geometry == (10, 10, 5) and s.energy_gev.tolist() == [1.0, 1.0]


def test_iter_showers_streams_in_chunks(tmp_path, sample):
    write_showers(tmp_path / "s.h5", sample)
    sizes = [len(part) for part in iter_showers(tmp_path / "s.h5", batch_size=2)]
    assert sizes == [2, 2, 1]
    joined = ShowerSet.concatenate(list(iter_showers(tmp_path / "s.h5", batch_size=2)))
    assert_same(sample, joined)


def test_bytes_are_a_readable_native_file(tmp_path, sample):
    (tmp_path / "b.h5").write_bytes(showers_to_bytes(sample))
    assert_same(sample, read_showers(tmp_path / "b.h5"))


def test_corrupt_file_names_file_and_problem(tmp_path):
    bad = tmp_path / "corrupt.h5"
    bad.write_bytes(b"this is not hdf5" * 10)
    with pytest.raises(ShowerFileError, match="corrupt.h5: not a readable HDF5 file"):
        read_showers(bad)
    with pytest.raises(ShowerFileError, match="no such file"):
        read_showers(tmp_path / "absent.h5")


def test_missing_key_wrong_shape_and_nan_are_named(tmp_path, sample):
    write_showers(tmp_path / "s.h5", sample)
    with h5py.File(tmp_path / "s.h5", "a") as h5:
        del h5["theta"]
    with pytest.raises(ShowerFileError, match="missing key 'theta'"):
        read_showers(tmp_path / "s.h5")

    write_showers(tmp_path / "s.h5", sample)
    with h5py.File(tmp_path / "s.h5", "a") as h5:
        del h5["energy"]
        h5["energy"] = np.ones(3, np.float32)
    with pytest.raises(ShowerFileError, match="'energy' has 3 entries but 'ECAL' has 5"):
        read_showers(tmp_path / "s.h5")

    nan = sample.select(slice(None))
    nan.showers[0, 0, 0, 0] = np.nan
    with pytest.raises(ShowerSetError, match="non-finite"):
        ShowerSet(nan.showers, nan.energy_gev, nan.theta_rad)

    write_showers(tmp_path / "s.h5", sample)
    with h5py.File(tmp_path / "s.h5", "a") as h5:
        del h5["ECAL"]
        h5["ECAL"] = np.zeros((5, 51, 51), np.float32)
    with pytest.raises(ShowerFileError, match=r"shape \(5, 51, 51\)"):
        read_showers(tmp_path / "s.h5")


def test_3dgan_file_is_not_mistaken_for_native(tmp_path, sample):
    write_3dgan(tmp_path / "g.h5", sample)
    with pytest.raises(ShowerFileError, match="read_3dgan"):
        read_showers(tmp_path / "g.h5")


def test_failed_write_leaves_no_partial_file(tmp_path, sample, monkeypatch):
    target = tmp_path / "out.h5"
    write_showers(target, sample)
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(OSError, match="disk full"):
        write_showers(target, sample)
    assert target.read_bytes() == before  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"]  # no temporary left behind


def test_select_and_concatenate(sample):
    part = sample.select(sample.energy_gev > 20)
    assert len(part) == 3 and part.energy_gev.min() == 50.0
    with pytest.raises(ValueError, match="different geometries"):
        ShowerSet.concatenate([sample, ShowerSet(np.zeros((1, 5, 5, 5)), [1.0], [1.0])])

"""Tests for calogen.gan.preprocess: power transform and Box-Cox, NumPy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import special, stats

from calogen.gan.preprocess import (
    BoxCox,
    boxcox_forward,
    boxcox_inverse,
    fit_boxcox,
    from_network,
    from_network_card,
    to_network,
    to_network_card,
)


def test_power_transform_known_values() -> None:
    # 1 GeV -> (50 * 1) ** 0.85 ; 0 stays 0
    x = np.array([0.0, 1.0, 0.02], dtype=np.float32)
    y = to_network(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [0.0, 50.0**0.85, 1.0], rtol=1e-6)
    np.testing.assert_allclose(from_network(y), x, rtol=1e-6)


def test_power_round_trip_numpy_and_torch_agree() -> None:
    rng = np.random.default_rng(0)
    x = rng.exponential(0.05, size=(3, 51, 51, 25)).astype(np.float32)
    y_np = to_network(x, power=0.85, scale=50.0)
    y_t = to_network(torch.from_numpy(x), power=0.85, scale=50.0)
    np.testing.assert_allclose(y_t.numpy(), y_np, rtol=1e-5)
    np.testing.assert_allclose(from_network(y_np), x, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(from_network(y_t).numpy(), x, rtol=1e-5, atol=1e-9)


def test_from_network_clamps_negatives() -> None:
    out = from_network(np.array([-3.0, 0.0, 1.0], dtype=np.float32))
    assert np.all(np.isfinite(out)) and out[0] == 0.0 and out[1] == 0.0
    out_t = from_network(torch.tensor([-3.0, 1.0]))
    assert out_t[0].item() == 0.0 and torch.isfinite(out_t).all()


def test_power_must_be_positive() -> None:
    with pytest.raises(ValueError, match="power=0"):
        to_network(np.ones(3), power=0.0)


@pytest.mark.parametrize("lmbda", [-0.5, 0.0, 0.3, 1.0])
def test_boxcox_matches_scipy(lmbda: float) -> None:
    x = np.random.default_rng(1).exponential(2.0, size=1000) + 1e-3
    y = boxcox_forward(x, lmbda)
    np.testing.assert_allclose(y, stats.boxcox(x, lmbda), rtol=1e-10)
    np.testing.assert_allclose(boxcox_inverse(y, lmbda), special.inv_boxcox(y, lmbda), rtol=1e-10)
    yt = boxcox_forward(torch.from_numpy(x), lmbda)
    np.testing.assert_allclose(yt.numpy(), y, rtol=1e-10)
    np.testing.assert_allclose(boxcox_inverse(yt, lmbda).numpy(), x, rtol=1e-8)


def test_fit_boxcox_matches_scipy_lambda_and_round_trips() -> None:
    rng = np.random.default_rng(2)
    cells = rng.exponential(0.01, size=(20, 10)) * (rng.random((20, 10)) > 0.5)
    bc = fit_boxcox(cells, shift=1e-3, scale=50.0)
    _, lmbda = stats.boxcox(cells.ravel() * 50.0 + 1e-3)
    assert bc.lmbda == pytest.approx(lmbda, rel=1e-6)
    np.testing.assert_allclose(bc.inverse(bc.forward(cells)), cells, rtol=1e-5, atol=1e-8)
    card = bc.to_card()
    assert card["kind"] == "boxcox"
    np.testing.assert_allclose(from_network_card(to_network_card(cells, card), card), cells, rtol=1e-5, atol=1e-8)


def test_boxcox_rejects_non_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        boxcox_forward(np.array([0.0, 1.0]), 0.5)
    # the dataclass shifts empty cells, so zeros are fine there
    assert np.isfinite(BoxCox(lmbda=0.2).forward(np.zeros(4))).all()


def test_card_preprocessing_defaults_and_unknown_kind() -> None:
    x = np.array([0.5], dtype=np.float32)
    np.testing.assert_allclose(from_network_card(to_network(x), None), x, rtol=1e-6)
    np.testing.assert_allclose(from_network_card(x, {"kind": "identity"}), x)
    with pytest.raises(ValueError, match="unknown"):
        from_network_card(x, {"kind": "log"})

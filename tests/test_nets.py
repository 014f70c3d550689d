"""Tests for calogen.gan.nets: published shapes and parameter counts, heads, fast path."""

from __future__ import annotations

import math

import pytest
import torch

from calogen.gan.nets import (
    ARCHITECTURES,
    DiscriminatorOutput,
    build_discriminator,
    build_generator,
    build_regressor,
    count_parameters,
    measured_angle,
)
from calogen.gan.nets.conv3d import upsample_conv_as_pixel_shuffle
from calogen.gan.preprocess import to_network

torch.set_num_threads(2)


def _conditions(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.linspace(10.0, 400.0, batch), torch.linspace(1.1, 2.0, batch)


def test_conv3d_generator_matches_published_size_and_shape() -> None:
    torch.manual_seed(0)
    gen = build_generator("conv3d")
    # Dense 256 -> 5184: 1,332,288; Conv3D weights+biases 18,440 + 4,614 + 3,462 + 3,462 + 1,626 + 978 + 49;
    # batch-norm gamma/beta 64 and running mean/var 64 (Keras counts both: 1.365 M in Khattak et al. 2021)
    assert count_parameters(gen.dense) == 256 * 5184 + 5184 == 1_332_288
    assert count_parameters(gen) == 1_364_983
    assert count_parameters(gen, include_buffers=True) == 1_365_047
    assert gen.latent_dim == 254
    e, t = _conditions(2)
    out = gen.eval()(e, t, torch.randn(2, 254))
    assert out.shape == (2, 51, 51, 25) and out.dtype == torch.float32
    assert (out >= 0).all()  # ReLU output: network units are non-negative


def test_conv3d_discriminator_shapes_and_heads() -> None:
    torch.manual_seed(0)
    disc = build_discriminator("conv3d").eval()
    # 51x51x25 'same' -> 47x46x20 -> 43x41x15 -> 39x36x10 -> pool 19x18x5 x 8 channels
    assert disc.features.n_features == 19 * 18 * 5 * 8 == 13_680
    showers_gev = torch.rand(3, 51, 51, 25) * 0.01
    out = disc(to_network(showers_gev), *_conditions(3))
    assert isinstance(out, DiscriminatorOutput)
    for value in out:
        assert value.shape == (3,)
    torch.testing.assert_close(out.ecal_sum_gev, showers_gev.sum(dim=(1, 2, 3)), rtol=1e-4, atol=1e-6)


def test_pixel_shuffle_rewrite_equals_upsample_then_conv() -> None:
    torch.manual_seed(1)
    gen = build_generator("conv3d").eval()
    fast = build_generator("conv3d", fast_upsample=True).eval()
    fast.load_state_dict(gen.state_dict())  # same weights, same state-dict keys
    e, t = _conditions(3)
    z = torch.randn(3, 254)
    with torch.no_grad():
        a, b = gen(e, t, z), fast(e, t, z)
    assert a.abs().max() > 0.01  # a non-trivial output
    torch.testing.assert_close(b, a, rtol=0, atol=1e-4)
    with torch.no_grad():  # plus the channels-last layout
        c = fast.use_fast_path(True)(e, t, z)
    torch.testing.assert_close(c, a, rtol=0, atol=1e-4)
    # the layer-level rewrite on odd sizes and kernels too
    coarse = torch.randn(2, 3, 4, 5, 3)
    weight, bias = torch.randn(4, 3, 5, 7, 3), torch.randn(4)
    upsampled = torch.nn.functional.interpolate(coarse, scale_factor=3, mode="nearest")
    ref = torch.nn.functional.conv3d(upsampled, weight, bias)
    torch.testing.assert_close(upsample_conv_as_pixel_shuffle(coarse, weight, bias, 3), ref, rtol=1e-5, atol=1e-4)


def test_conv2d_generator_and_discriminator() -> None:
    torch.manual_seed(0)
    gen = build_generator("conv2d").eval()
    n = count_parameters(gen)
    assert 1.9e6 < n < 2.1e6  # "about 2 M generator parameters" (Rehm et al. 2021)
    e, t = _conditions(2)
    out = gen(e, t, torch.randn(2, gen.latent_dim))
    assert out.shape == (2, 51, 51, 25) and (out >= 0).all()
    disc = build_discriminator("conv2d").eval()
    d = disc(out, e, t)
    assert isinstance(d, DiscriminatorOutput) and d.logit.shape == (2,)


def test_wgan_gp_lhcb_networks() -> None:
    torch.manual_seed(0)
    gen = build_generator("wgan-gp-lhcb").eval()
    e, t = _conditions(2)
    out = gen(e, t, torch.randn(2, gen.latent_dim))
    assert out.shape == (2, 51, 51, 25)
    critic = build_discriminator("wgan-gp-lhcb")
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in critic.modules())
    assert critic(out, e, t).shape == (2,)
    energy, theta = build_regressor("wgan-gp-lhcb")(out)
    assert energy.shape == theta.shape == (2,)
    assert ARCHITECTURES["wgan-gp-lhcb"].discriminator_kind == "critic"


def test_wgan_gp_atlas_conserves_energy() -> None:
    torch.manual_seed(0)
    gen = build_generator("wgan-gp-atlas", shape=(1, 1, 247), energy_fraction=0.02).eval()
    assert gen.latent_dim == 100
    # 3 x 128 hidden: (101*128 + 128) + 2 * (128*128 + 128) + (128*247 + 247)
    assert count_parameters(gen) == 101 * 128 + 128 + 2 * (128 * 128 + 128) + 128 * 247 + 247
    e = torch.tensor([10.0, 250.0])
    out = gen(e, torch.full((2,), math.pi / 2), torch.randn(2, 100))
    assert out.shape == (2, 1, 1, 247) and (out >= 0).all()
    torch.testing.assert_close(out.sum(dim=(1, 2, 3)), 0.02 * e)
    critic = build_discriminator("wgan-gp-atlas", shape=(1, 1, 247))
    assert critic(out, e, torch.zeros(2)).shape == (2,)


def test_measured_angle_known_track() -> None:
    # one cell per layer on the line y = y0 + (z - z0): slope 1 gives pi/2 - atan(1) = 45 deg in every layer
    # except the barycentre layer (z = z_ref, where the reference code's slope is 0 -> 90 deg)
    showers = torch.zeros(2, 51, 51, 25)
    for k in range(25):
        showers[0, 25, 13 + k, k] = 1.0
    z = torch.arange(25) + 0.5
    angles = torch.full((25,), math.pi / 4)
    angles[12] = math.pi / 2
    expected = float((angles * z).sum() / z.sum())
    got = measured_angle(showers)
    assert got[0].item() == pytest.approx(expected, rel=1e-5)
    assert got[1].item() == 100.0  # empty shower marker of the 3DGAN code


def test_angle_head_is_differentiable() -> None:
    torch.manual_seed(0)
    gen = build_generator("conv3d")
    disc = build_discriminator("conv3d")
    e, t = _conditions(2)
    out = disc(gen(e, t, torch.randn(2, 254)), e, t)
    (out.angle_rad.sum() + out.ecal_sum_gev.sum()).backward()
    assert gen.dense.weight.grad is not None and torch.isfinite(gen.dense.weight.grad).all()


def test_unknown_architecture_and_bad_config() -> None:
    with pytest.raises(ValueError, match="unknown; choose one of"):
        build_generator("conv4d")
    with pytest.raises(ValueError, match="cannot build the generator of 'conv3d'"):
        build_generator("conv3d", width=3)
    with pytest.raises(ValueError, match="cannot build the regressor of 'conv3d'"):
        build_regressor("conv3d", shape=(8, 8, 6))  # too small for the 3DGAN kernels: one clear message


def test_every_architecture_has_a_condition_regressor() -> None:
    torch.manual_seed(0)
    showers = torch.rand(3, 51, 51, 25)
    energy, theta = build_regressor("conv3d")(showers)  # the 3DGAN body, for the 51 x 51 x 25 architectures
    assert energy.shape == theta.shape == (3,)
    small = build_regressor("conv3d", shape=(8, 8, 6), kernel=(3, 3, 3), filters=(4, 4))  # smaller kernels fit
    assert small(torch.rand(2, 8, 8, 6))[0].shape == (2,)
    # the dense regressor of wgan-gp-atlas: energy proportional to the deposited sum from the start
    dense = build_regressor("wgan-gp-atlas", shape=(1, 1, 247))
    cells = torch.rand(2, 1, 1, 247)
    e1, _ = dense(cells)
    e2, _ = dense(3.0 * cells)  # same shape, three times the deposit
    assert (e1 > 0).all()
    torch.testing.assert_close(e2 / e1, torch.full((2,), 3.0), rtol=0.2, atol=0.0)

"""GAN objectives: the loss maths, kept apart from the networks and from the training loop.

Two recipes are provided:

* :class:`ThreeDGANObjective` — the 3DGAN angle-version objective (Khattak et al., IEEE Access 9 (2021),
  doi:10.1109/ACCESS.2021.3056983, and its public Keras code): a real/fake head trained with binary
  cross-entropy, an energy-regression head (MAPE against E/100), and two *non-trainable* heads computed from
  the image itself, the measured angle (MAE against the true theta) and the deposited-energy sum (MAPE against
  the sum of the real shower), weighted [3, 0.1, 25, 0.1]; 5 % of the discriminator labels are flipped; the
  generator is updated twice per discriminator update.
* :class:`WGANGPObjective` — Wasserstein loss with gradient penalty (Gulrajani et al., arXiv:1704.00028,
  lambda = 10, five critic updates per generator update), with the same energy/angle/sum auxiliary terms so
  that the generator stays conditioned.

The networks only map tensors; this module turns their outputs into losses. Images arrive in *network units*
with shape (B, X, Y, Z), described by the run's ``preprocessing`` card entry (see :mod:`calogen.gan.preprocess`;
3DGAN: cell energy in GeV x 50 raised to the power 0.85).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from calogen.gan.nets.layers import ENERGY_SCALE_GEV, DiscriminatorOutput, measured_angle
from calogen.gan.preprocess import from_network_card

__all__ = [
    "EPSILON",
    "DiscriminatorOutputs",
    "GANObjective",
    "ThreeDGANObjective",
    "WGANGPObjective",
    "build_objective",
    "call_discriminator",
]

EPSILON = 1e-7  # Keras K.epsilon(): guards the MAPE against a zero target


@dataclass
class DiscriminatorOutputs:
    """What a discriminator returned, normalised.

    score:        (B,) real/fake logit (3DGAN) or critic value (WGAN-GP).
    energy:       (B,) regressed primary energy / 100 GeV, or None when the network has no such head.
    ecal_sum_gev: (B,) deposited energy of the input, GeV (non-trainable head), or None.
    angle_rad:    (B,) angle measured from the input's layer barycentres (non-trainable head), or None.
    """

    score: torch.Tensor
    energy: torch.Tensor | None
    ecal_sum_gev: torch.Tensor | None = None
    angle_rad: torch.Tensor | None = None


def _accepts_conditions(discriminator: torch.nn.Module) -> bool:
    module = getattr(discriminator, "module", discriminator)  # unwrap DistributedDataParallel
    try:
        params = [p for p in inspect.signature(module.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    except (TypeError, ValueError):
        return False
    return len(params) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in params)


def call_discriminator(
    discriminator: torch.nn.Module, images: torch.Tensor, energy_gev: torch.Tensor, theta_rad: torch.Tensor
) -> DiscriminatorOutputs:
    """Run ``discriminator`` on images (B, X, Y, Z) in network units and normalise what it returns.

    Networks that take conditions (``forward(x, energy_gev, theta_rad)``) get them; image-only networks
    (``forward(x)``, as in 3DGAN) do not. Accepted outputs: :class:`calogen.gan.nets.layers.DiscriminatorOutput`
    (logit, energy_gev, ecal_sum_gev, angle_rad); a plain tensor (the score); a tuple (score, energy / 100).
    """
    if _accepts_conditions(discriminator):
        out: Any = discriminator(images, energy_gev, theta_rad)
    else:
        out = discriminator(images)
    if isinstance(out, DiscriminatorOutput):
        return DiscriminatorOutputs(
            score=out.logit.float().reshape(-1),
            energy=out.energy_gev.float().reshape(-1) / ENERGY_SCALE_GEV,
            ecal_sum_gev=out.ecal_sum_gev.float().reshape(-1),
            angle_rad=out.angle_rad.float().reshape(-1),
        )
    if isinstance(out, (tuple, list)):
        energy = out[1].float().reshape(-1) if len(out) > 1 else None
        return DiscriminatorOutputs(score=out[0].float().reshape(-1), energy=energy)
    return DiscriminatorOutputs(score=out.float().reshape(-1), energy=None)


def _mape(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute percentage error in percent, as Keras defines it (the 3DGAN weights assume percent)."""
    return 100.0 * ((prediction - target).abs() / target.abs().clamp_min(EPSILON)).mean()


class GANObjective(ABC):
    """Common interface of the recipes.

    ``critic_steps``: discriminator phases per generator phase; ``generator_steps``: generator updates in a
    generator phase. :meth:`discriminator_updates` yields one ``(loss, parts)`` per optimiser update, computed
    lazily so that each one sees the weights left by the previous update; :meth:`generator_loss` returns one
    ``(loss, parts)``. ``parts`` maps head names to floats for logging.
    """

    name: str = ""
    critic_steps: int = 1
    generator_steps: int = 1
    head_names: tuple[str, ...] = ()

    def __init__(self, *, preprocessing: dict[str, Any] | None = None) -> None:
        self.preprocessing = dict(preprocessing or {"kind": "power", "power": 0.85, "scale": 50.0})

    def to_gev(self, images: torch.Tensor) -> torch.Tensor:
        """Network units -> GeV with the run's pre-processing (:func:`calogen.gan.preprocess.from_network_card`)."""
        return from_network_card(images.float(), self.preprocessing)

    @abstractmethod
    def discriminator_updates(
        self,
        discriminator: torch.nn.Module,
        real: torch.Tensor,
        fake: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, dict[str, float]]]:
        """Losses for the discriminator updates of one step; real/fake (B, X, Y, Z) in network units."""

    @abstractmethod
    def generator_loss(
        self,
        discriminator: torch.nn.Module,
        fake: torch.Tensor,
        real_sum: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss for one generator update; ``real_sum`` (B,) is the deposited sum of the real batch, GeV."""

    def _aux_terms(
        self, outputs: DiscriminatorOutputs, images: torch.Tensor, real_sum: torch.Tensor,
        energy_gev: torch.Tensor, theta_rad: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Energy-regression MAPE (vs E/100), measured-angle MAE (rad), deposited-sum MAPE (vs real sum, GeV).

        The angle and sum come from the discriminator's non-trainable heads when it has them, otherwise they
        are computed here from the images with the same functions.
        """
        target_energy = energy_gev.float() / ENERGY_SCALE_GEV
        if outputs.energy is None:
            energy_term = torch.zeros((), device=images.device)
        else:
            energy_term = _mape(outputs.energy, target_energy)
        angle, total = outputs.angle_rad, outputs.ecal_sum_gev
        if angle is None or total is None:
            showers_gev = self.to_gev(images)
            angle = measured_angle(showers_gev) if angle is None else angle
            total = showers_gev.sum(dim=(1, 2, 3)) if total is None else total
        angle_term = (angle - theta_rad.float()).abs().mean()
        sum_term = _mape(total, real_sum.float())
        return energy_term, angle_term, sum_term


class ThreeDGANObjective(GANObjective):
    """The 3DGAN angle-version losses (Khattak et al. 2021): weights [3, 0.1, 25, 0.1], 5 % label flips.

    The discriminator is updated on the real batch and then on the fake batch (two updates, as the Keras
    ``train_on_batch`` calls do): :meth:`discriminator_updates` yields two losses.
    """

    name = "3dgan"
    critic_steps = 1
    generator_steps = 2  # "the generator is trained twice per discriminator step" (3DGAN training script)
    head_names = ("bce", "energy_mape", "angle_mae", "sum_mape")

    def __init__(
        self,
        *,
        preprocessing: dict[str, Any] | None = None,
        weights: tuple[float, float, float, float] = (3.0, 0.1, 25.0, 0.1),
        label_flip: float = 0.05,
    ) -> None:
        super().__init__(preprocessing=preprocessing)
        if not 0.0 <= label_flip < 0.5:
            raise ValueError(f"label_flip={label_flip} must be in [0, 0.5); the 3DGAN recipe uses 0.05")
        self.weights = tuple(float(w) for w in weights)
        self.label_flip = label_flip

    def _weighted(
        self, outputs: DiscriminatorOutputs, images: torch.Tensor, labels: torch.Tensor, real_sum: torch.Tensor,
        energy_gev: torch.Tensor, theta_rad: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        bce = F.binary_cross_entropy_with_logits(outputs.score, labels)
        energy_term, angle_term, sum_term = self._aux_terms(outputs, images, real_sum, energy_gev, theta_rad)
        w_bce, w_energy, w_angle, w_sum = self.weights
        loss = w_bce * bce + w_energy * energy_term + w_angle * angle_term + w_sum * sum_term
        parts = {"bce": bce.item(), "energy_mape": energy_term.item(), "angle_mae": angle_term.item(),
                 "sum_mape": sum_term.item()}
        return loss, parts

    def batch_loss(
        self,
        discriminator: torch.nn.Module,
        images: torch.Tensor,
        *,
        real: bool,
        real_sum: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Discriminator loss on one batch, real (label 1) or fake (label 0), 5 % of labels flipped."""
        batch = images.shape[0]
        labels = torch.full((batch,), 1.0 if real else 0.0, device=images.device)
        flip = torch.rand(batch, generator=generator, device="cpu") < self.label_flip
        labels = torch.where(flip.to(images.device), 1.0 - labels, labels)
        outputs = call_discriminator(discriminator, images, energy_gev, theta_rad)
        return self._weighted(outputs, images, labels, real_sum, energy_gev, theta_rad)

    def discriminator_updates(
        self,
        discriminator: torch.nn.Module,
        real: torch.Tensor,
        fake: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, dict[str, float]]]:
        """Two updates, first on the real batch, then on the fake batch with the real batch's conditions."""
        real_sum = self.to_gev(real).sum(dim=(1, 2, 3))  # (B,) GeV
        yield self.batch_loss(discriminator, real, real=True, real_sum=real_sum,
                              energy_gev=energy_gev, theta_rad=theta_rad, generator=generator)
        yield self.batch_loss(discriminator, fake.detach(), real=False, real_sum=real_sum,
                              energy_gev=energy_gev, theta_rad=theta_rad, generator=generator)

    def generator_loss(
        self,
        discriminator: torch.nn.Module,
        fake: torch.Tensor,
        real_sum: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Generator loss: fake images labelled real (no flips), same heads and weights as the discriminator."""
        labels = torch.ones(fake.shape[0], device=fake.device)
        outputs = call_discriminator(discriminator, fake, energy_gev, theta_rad)
        return self._weighted(outputs, fake, labels, real_sum, energy_gev, theta_rad)


class WGANGPObjective(GANObjective):
    """Wasserstein loss with gradient penalty (Gulrajani et al. 2017): lambda 10, five critic updates.

    Conditioning: the critic gets the conditions when its network accepts them; in addition the energy head
    (if any) is trained on real showers and, with the measured-angle and deposited-sum terms, steers the
    generator (as the LHCb WGAN-GP does with a regressor, Chekalina et al.). ``aux_weights`` are
    (energy MAPE, angle MAE, sum MAPE).
    """

    name = "wgan-gp"
    critic_steps = 5
    generator_steps = 1
    head_names = ("wasserstein", "gradient_penalty", "energy_mape", "angle_mae", "sum_mape")

    def __init__(
        self,
        *,
        preprocessing: dict[str, Any] | None = None,
        gp_weight: float = 10.0,
        critic_steps: int = 5,
        aux_weights: tuple[float, float, float] = (0.1, 25.0, 0.1),
    ) -> None:
        super().__init__(preprocessing=preprocessing)
        self.gp_weight = float(gp_weight)
        self.critic_steps = int(critic_steps)
        self.aux_weights = tuple(float(w) for w in aux_weights)

    def gradient_penalty(
        self, discriminator: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor,
        energy_gev: torch.Tensor, theta_rad: torch.Tensor, generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates x_hat between real and fake (B, X, Y, Z)."""
        alpha = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real.device)
        interpolates = (alpha * real.detach().float() + (1 - alpha) * fake.detach().float()).requires_grad_(True)
        score = call_discriminator(discriminator, interpolates, energy_gev, theta_rad).score
        (grad,) = torch.autograd.grad(score.sum(), interpolates, create_graph=True)
        return ((grad.reshape(grad.shape[0], -1).norm(2, dim=1) - 1.0) ** 2).mean()

    def discriminator_updates(
        self,
        discriminator: torch.nn.Module,
        real: torch.Tensor,
        fake: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, dict[str, float]]]:
        """One critic update, see :meth:`critic_loss`."""
        yield self.critic_loss(discriminator, real, fake, energy_gev, theta_rad, generator)

    def critic_loss(
        self,
        discriminator: torch.nn.Module,
        real: torch.Tensor,
        fake: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Critic loss D(fake) - D(real) + lambda GP + w_E MAPE(energy head on real showers)."""
        out_real = call_discriminator(discriminator, real, energy_gev, theta_rad)
        out_fake = call_discriminator(discriminator, fake.detach(), energy_gev, theta_rad)
        wasserstein = out_fake.score.mean() - out_real.score.mean()
        penalty = self.gradient_penalty(discriminator, real, fake, energy_gev, theta_rad, generator)
        loss = wasserstein + self.gp_weight * penalty
        energy_term = torch.zeros((), device=real.device)
        if out_real.energy is not None:
            energy_term = _mape(out_real.energy, energy_gev.float() / ENERGY_SCALE_GEV)
            loss = loss + self.aux_weights[0] * energy_term
        parts = {"wasserstein": wasserstein.item(), "gradient_penalty": penalty.item(),
                 "energy_mape": energy_term.item(), "angle_mae": 0.0, "sum_mape": 0.0}
        return loss, parts

    def generator_loss(
        self,
        discriminator: torch.nn.Module,
        fake: torch.Tensor,
        real_sum: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """-D(fake) plus the weighted energy, angle and deposited-sum terms."""
        outputs = call_discriminator(discriminator, fake, energy_gev, theta_rad)
        energy_term, angle_term, sum_term = self._aux_terms(outputs, fake, real_sum, energy_gev, theta_rad)
        w_energy, w_angle, w_sum = self.aux_weights
        adversarial = -outputs.score.mean()
        loss = adversarial + w_energy * energy_term + w_angle * angle_term + w_sum * sum_term
        parts = {"wasserstein": adversarial.item(), "gradient_penalty": 0.0, "energy_mape": energy_term.item(),
                 "angle_mae": angle_term.item(), "sum_mape": sum_term.item()}
        return loss, parts


_OBJECTIVES: dict[str, Callable[..., GANObjective]] = {
    "3dgan": ThreeDGANObjective,
    "wgan-gp": WGANGPObjective,
}


def build_objective(recipe: str, *, preprocessing: dict[str, Any] | None = None) -> GANObjective:
    """The objective for a recipe name, ``"3dgan"`` or ``"wgan-gp"``; ``preprocessing`` is the run's card entry
    (default: the 3DGAN power transform)."""
    try:
        factory = _OBJECTIVES[recipe]
    except KeyError:
        raise ValueError(f"recipe={recipe!r} is unknown; choose one of {sorted(_OBJECTIVES)}") from None
    return factory(preprocessing=preprocessing)

"""What a factorised campaign measures of its generator as it trains: figures against the monitoring showers, the
data's last showers that it never trains on (never the held-out reference)."""

from __future__ import annotations

import math

import numpy as np
import torch

from calogen.gan.factorised.data import TrainingData
from calogen.gan.factorised.model import FactorisedGenerator
from calogen.gan.factorised.shower_figures import ring_hits
from calogen.gan.nets.layers import measured_angle
from calogen.validation import features
from calogen.validation.distances import fpd, kpd

__all__ = ["monitor_figures"]


def monitor_figures(model: FactorisedGenerator, holdout: TrainingData, cells_holdout: np.ndarray,
                    seed: int) -> dict[str, float]:
    """Figures of the current generator against the monitoring showers (never the reference).

    ``cells_holdout``: float32 (N, X, Y, Z) GeV of the monitoring showers. Returns relative errors of the mean
    sampling fraction, hit count (> 0.2 MeV), hits beyond 6 cells of the layer axis and core containment
    (5.1 mm), the mean measured-angle difference in degrees, generated minus Monte Carlo, and FPD and KPD (x 1e3)
    of the high-level features (:func:`calogen.validation.distances.fpd`; from 10 monitoring showers), the
    generated showers at the monitoring showers' conditions: means can stay put while the shower-to-shower
    distributions drift (a shipped conv2d trained 6,800 steps more kept its monitored means and went from KPD 48
    to 80 here, from 59 to 80 against the held-out reference).
    """
    generator = torch.Generator().manual_seed(seed)
    noise = model.truncate_noise(torch.randn(len(holdout), model.latent_dim, generator=generator), generator)
    device = model.energy_flow.shift.device
    model.eval()
    with torch.no_grad():
        fake = model(holdout.energy_gev.to(device), holdout.theta_rad.to(device), noise.to(device)).cpu().numpy()
    model.train()
    energy = holdout.energy_gev.numpy()
    sf_fake, sf_real = features.sampling_fraction(fake, energy), features.sampling_fraction(cells_holdout, energy)
    hits_fake, hits_real = features.n_hits(fake), features.n_hits(cells_holdout)
    core_fake = features.core_containment(fake, 5.1)
    core_real = features.core_containment(cells_holdout, 5.1)
    angle_fake = measured_angle(torch.from_numpy(fake)).numpy()
    far_fake = float(ring_hits(torch.from_numpy(fake), soft=False)[:, :, 3:].sum(dim=(1, 2)).mean())
    far_real = float(ring_hits(torch.from_numpy(cells_holdout), soft=False)[:, :, 3:].sum(dim=(1, 2)).mean())
    out = {
        "sf_rel_error": float(sf_fake.mean() / sf_real.mean() - 1.0),
        "hits_rel_error": float(hits_fake.mean() / hits_real.mean() - 1.0),
        # hits further than 6 cells from their layer's axis: where a generator strews noise
        "far_hits_rel_error": far_fake / max(far_real, 1e-9) - 1.0,
        "core_5mm_difference": float(core_fake.mean() - core_real.mean()),
        "angle_difference_deg": float(np.degrees(np.mean(angle_fake) - holdout.angle_rad.numpy().mean())),
    }
    if len(holdout) >= 10:  # FPD's smallest subsample
        high_fake, _ = features.high_level_features(fake, energy)
        high_real, _ = features.high_level_features(cells_holdout, energy)
        out["fpd_x1e3"] = fpd(high_real, high_fake, seed=seed)[0] * 1e3
        out["kpd_x1e3"] = kpd(high_real, high_fake, seed=seed)[0] * 1e3
    theta = holdout.theta_rad.numpy()
    for label, mask in (("below_80deg", theta < math.radians(80.0)), ("above_100deg", theta > math.radians(100.0))):
        if mask.any():  # the mean over all angles hides a shower axis that does not tilt enough
            out[f"angle_difference_deg_{label}"] = float(np.degrees(np.mean(angle_fake[mask])
                                                                    - holdout.angle_rad.numpy()[mask].mean()))
    return out

"""Classifier two-sample test (CaloChallenge 2022, arXiv:2410.21611, section 4).

A small MLP learns to tell reference showers (label 0) from candidate showers (label 1). Its output is
calibrated on a validation split (Platt scaling) and evaluated on a held-out test split. Reported: the ROC
AUC of its output on the test split (a ranking, which the calibration does not move; 0.5 = indistinguishable,
1 = perfectly separable) and the Jensen-Shannon divergence estimated from the calibrated binary cross-entropy,
JSD = 1 - BCE / ln 2 (in [0, 1]). Two inputs, as in the CaloChallenge:
'low' = every cell divided by the primary energy, 'high' = the high-level features of
:func:`calogen.validation.features.high_level_features`; both get log10(E / GeV) and theta as extra columns,
so the test is conditional. The CaloChallenge network is 2 x 2048; a smaller one (2 x 256, 2 x 128 on cells)
trains on two CPU cores in about a minute and is enough to detect the differences that matter at these sample
sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize, stats

from calogen.showers import ShowerSet
from calogen.validation import features as F
from calogen.validation.distances import HistogramPair

__all__ = ["ClassifierResult", "Level", "classifier_test", "roc_auc"]

Array = npt.NDArray[np.float64]
Level = Literal["low", "high"]


@dataclass(frozen=True)
class ClassifierResult:
    """Outcome of one classifier test.

    auc: ROC AUC on the held-out test split (0.5 = cannot tell the samples apart, 1 = separates them fully);
    auc_train: the same on the training split (far above ``auc`` means over-fitting); jsd: Jensen-Shannon
    divergence from the calibrated cross-entropy, in [0, 1]; output: calibrated P(candidate) on the test split
    per class, 40 bins on [0, 1]; n_train, n_test: showers of both samples together; epochs: the epoch kept.
    """

    level: Level
    auc: float
    jsd: float
    output: HistogramPair
    auc_train: float | None = None
    n_train: int | None = None
    n_test: int | None = None
    epochs: int | None = None


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve from the Mann-Whitney U statistic (ties count one half)."""
    y = np.asarray(labels).astype(bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs both classes; got {n_pos} positives and {n_neg} negatives")
    ranks = stats.rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _inputs(shower_set: ShowerSet, level: str, index: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    showers = shower_set.showers[index]
    energy = shower_set.energy_gev[index].astype(np.float64)
    theta = shower_set.theta_rad[index].astype(np.float64)
    x: npt.NDArray[np.floating[Any]]
    if level == "low":
        x = (showers.reshape(len(index), -1) / np.maximum(energy, F.EPSILON)[:, None]).astype(np.float32)
    else:
        x, _ = F.high_level_features(showers, energy)
    cond = np.stack([np.log10(energy), theta], axis=1)
    return np.concatenate([x, cond], axis=1).astype(np.float32)


def _platt(logits: Array, labels: Array) -> tuple[float, float]:
    """Fit p = sigmoid(a z + b) by maximum likelihood (Platt scaling), with a >= 0.

    A calibration keeps the classifier's order: unbounded, one over-confident validation shower (a logit of
    several hundred on the wrong side, which a cell-level net can give a shower with energy in a cell that the
    training showers almost never fill) pulls the fit to a slightly negative a, and the calibrated output
    would rank the test showers the other way round."""

    def nll(params: Array) -> float:
        z = params[0] * logits + params[1]
        return float(np.mean(np.logaddexp(0.0, z) - labels * z))

    res = optimize.minimize(nll, x0=np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(0.0, None), (None, None)])
    return float(res.x[0]), float(res.x[1])


def classifier_test(
    reference: ShowerSet,
    candidate: ShowerSet,
    *,
    level: Level = "high",
    seed: int = 0,
    max_showers: int = 4000,
    epochs: int | None = None,
    hidden: int | None = None,
    batch_size: int = 256,
    num_threads: int | None = None,
) -> ClassifierResult:
    """Train and evaluate the classifier test on two samples of the same geometry.

    Uses up to ``max_showers`` showers of each sample (equal numbers of both, at least 20), split 60 / 20 / 20
    into train, calibration/validation and test; early stopping keeps the epoch with the lowest validation
    loss. Seeded: the same inputs and ``seed`` give the same result.
    """
    import torch

    if level not in ("low", "high"):
        raise ValueError(f"level={level!r}; use 'low' (cells / E) or 'high' (high-level features)")
    previous = torch.get_num_threads()
    threads = num_threads if num_threads is not None else (1 if level == "high" else previous)
    torch.set_num_threads(max(1, threads))
    try:
        return _train_and_test(reference, candidate, level=level, seed=seed, max_showers=max_showers,
                               epochs=epochs, hidden=hidden, batch_size=batch_size)
    finally:
        torch.set_num_threads(previous)


def _train_and_test(
    reference: ShowerSet,
    candidate: ShowerSet,
    *,
    level: Level,
    seed: int,
    max_showers: int,
    epochs: int | None,
    hidden: int | None,
    batch_size: int,
) -> ClassifierResult:
    import torch
    from torch import nn

    rng = np.random.default_rng(seed)
    n = min(len(reference), len(candidate), max_showers)
    if n < 20:
        raise ValueError(f"the classifier test needs at least 20 showers per sample; got {n}")
    idx_r = np.sort(rng.choice(len(reference), size=n, replace=False))
    idx_c = np.sort(rng.choice(len(candidate), size=n, replace=False))
    x = np.concatenate([_inputs(reference, level, idx_r), _inputs(candidate, level, idx_c)])
    y = np.concatenate([np.zeros(n), np.ones(n)]).astype(np.float32)
    # the same split positions for both classes keep the splits balanced
    order = rng.permutation(n)
    n_train, n_val = int(0.6 * n), int(0.2 * n)
    parts = (order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :])
    train, val, test = (np.concatenate([p, p + n]) for p in parts)
    mean = x[train].mean(axis=0)
    std = x[train].std(axis=0)
    std[std <= 0] = 1.0
    x = (x - mean) / std

    epochs = epochs if epochs is not None else (15 if level == "low" else 60)
    width = hidden if hidden is not None else (128 if level == "low" else 256)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(x.shape[1], width), nn.LeakyReLU(0.2), nn.Dropout(0.2),
        nn.Linear(width, width), nn.LeakyReLU(0.2), nn.Dropout(0.2),
        nn.Linear(width, 1),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3 if level == "high" else 3e-4, weight_decay=1e-5)
    loss_fn = nn.BCEWithLogitsLoss()
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(y)

    def logits(index: npt.NDArray[np.int64]) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            return torch.cat([model(xt[index[i : i + 1024]]).squeeze(1) for i in range(0, len(index), 1024)])

    best_loss, best_state, best_epoch = math.inf, None, 0
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        perm = torch.from_numpy(train)[torch.randperm(len(train), generator=gen)]
        for start in range(0, len(perm), batch_size):
            batch = perm[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xt[batch]).squeeze(1), yt[batch])
            loss.backward()
            opt.step()
        val_loss = float(loss_fn(logits(val), yt[val]))
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch + 1
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)

    a, b = _platt(logits(val).double().numpy(), y[val].astype(np.float64))
    raw_test = logits(test).double().numpy()
    z_test = a * raw_test + b
    p_test = 1.0 / (1.0 + np.exp(-z_test))
    y_test = y[test].astype(np.float64)
    bce = float(np.mean(np.logaddexp(0.0, z_test) - y_test * z_test))  # nats
    edges = np.linspace(0.0, 1.0, 41)
    output = HistogramPair(edges, np.histogram(p_test[y_test == 0], bins=edges)[0].astype(np.float64),
                           np.histogram(p_test[y_test == 1], bins=edges)[0].astype(np.float64))
    return ClassifierResult(
        level=level,
        auc=roc_auc(y_test, raw_test),  # of the net's own output: the ranking, whatever the calibration
        jsd=max(0.0, 1.0 - bce / math.log(2.0)),
        output=output,
        auc_train=roc_auc(y[train], logits(train).numpy()),
        n_train=len(train),
        n_test=len(test),
        epochs=int(best_epoch),
    )

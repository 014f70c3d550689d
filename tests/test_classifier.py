"""The classifier two-sample test: it separates different samples and not two draws of one."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import synthetic_showers

from calogen.showers import ShowerSet
from calogen.validation.classifier import _platt, classifier_test, roc_auc


@pytest.fixture(scope="module")
def draws() -> dict[str, ShowerSet]:
    return {"a": synthetic_showers(300, seed=11, geometry=(9, 9, 25)),
            "b": synthetic_showers(300, seed=12, geometry=(9, 9, 25)),
            "shifted": synthetic_showers(300, seed=13, geometry=(9, 9, 25), layer_shift=3)}


def test_roc_auc_known_values() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([1, 1], [0.1, 0.2])


@pytest.mark.parametrize("level", ["high", "low"])
def test_separates_clearly_different_samples(draws: dict[str, ShowerSet], level: str) -> None:
    result = classifier_test(draws["a"], draws["shifted"], level=level, seed=0, epochs=10)
    assert result.auc > 0.9 and result.jsd > 0.3
    assert result.n_train == 360 and result.n_test == 120  # 60 % and 20 % of 2 x 300
    assert result.output.candidate[-10:].sum() > result.output.reference[-10:].sum()  # P(candidate) high


def test_does_not_separate_two_draws_of_one_sample(draws: dict[str, ShowerSet]) -> None:
    result = classifier_test(draws["a"], draws["b"], level="high", seed=0, epochs=10)
    assert result.auc < 0.65 and result.jsd < 0.1
    again = classifier_test(draws["a"], draws["b"], level="high", seed=0, epochs=10)
    assert again.auc == result.auc  # seeded


def test_too_few_showers_and_unknown_level_are_refused(draws: dict[str, ShowerSet]) -> None:
    with pytest.raises(ValueError, match="at least 20 showers"):
        classifier_test(draws["a"].select(slice(0, 10)), draws["b"])
    with pytest.raises(ValueError, match="level='mid'"):
        classifier_test(draws["a"], draws["b"], level="mid")
    assert np.isfinite(classifier_test(draws["a"], draws["b"], max_showers=20, epochs=1).auc)


def test_one_overconfident_validation_shower_does_not_turn_the_ranking_round() -> None:
    # a cell-level net gave one Monte Carlo validation shower a logit of 659: fitted freely, Platt scaling
    # went to a = -0.0003, and the calibrated test output ranked the showers the other way (AUC 0.08 for 0.92)
    rng = np.random.default_rng(0)
    logits = np.r_[rng.normal(-1.0, 1.0, 300), rng.normal(1.0, 1.0, 300), 659.0]
    labels = np.r_[np.zeros(300), np.ones(300), 0.0]
    a, _ = _platt(logits, labels)
    assert a >= 0.0
    assert _platt(logits[:-1], labels[:-1])[0] == pytest.approx(2.0, abs=0.3)  # the clean fit: unit-variance classes

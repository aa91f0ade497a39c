"""The Linear Learner's core against scikit-learn, its losses, calibration, metrics and table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    make_classification,
    make_regression,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    top_k_accuracy_score,
)
from sklearn.model_selection import train_test_split

from opensage.algorithms.base import HyperparameterError, UserError
from opensage.algorithms.linear_learner import core, evaluate, losses
from opensage.algorithms.linear_learner.config import settings as ll_settings
from opensage.algorithms.linear_learner.model import LinearModel
from opensage.algorithms.linear_learner.spec import TABLE, positive_weight

Array = np.ndarray[Any, Any]


def split(x: Array, y: Array) -> tuple[Array, Array, Array, Array]:
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.3, random_state=0)
    return xt.astype(np.float32), xv.astype(np.float32), yt, yv


def ll_fit(x: Array, y: Array, **hyperparameters: str) -> core.Fitted:
    return core.fit(x, y, ll_settings(hyperparameters))


# --- quality against scikit-learn ---------------------------------------------------------------


def _binary_sets() -> dict[str, tuple[Array, Array]]:
    digits = load_digits()
    x_cls, y_cls = make_classification(n_samples=3000, n_features=20, random_state=0)
    return {
        "breast_cancer": load_breast_cancer(return_X_y=True),
        "digits_zero": (digits.data, (digits.target == 0).astype(float)),
        "make_classification": (x_cls, y_cls),
    }


@pytest.mark.parametrize("name", ["breast_cancer", "digits_zero", "make_classification"])
def test_binary_accuracy_is_within_a_point_of_logistic_regression(name: str) -> None:
    xt, xv, yt, yv = split(*_binary_sets()[name])
    fitted = ll_fit(xt, yt, predictor_type="binary_classifier", mini_batch_size="64")
    _, labels = fitted.model.predict(xv)
    ours = float(np.mean(labels == yv))
    anchor = LogisticRegression(max_iter=5000).fit(xt, yt).score(xv, yv)
    assert ours >= anchor - 0.01, (ours, anchor)


def _regression_sets() -> dict[str, tuple[Array, Array]]:
    return {
        "diabetes": load_diabetes(return_X_y=True),
        "make_regression": make_regression(
            n_samples=3000, n_features=20, noise=10.0, random_state=0
        ),
    }


@pytest.mark.parametrize("name", ["diabetes", "make_regression"])
def test_regression_mse_is_within_two_percent_of_ridge(name: str) -> None:
    xt, xv, yt, yv = split(*_regression_sets()[name])
    fitted = ll_fit(xt, yt, predictor_type="regressor", mini_batch_size="64")
    predictions, _ = fitted.model.predict(xv)
    ours = float(np.mean((predictions - yv) ** 2))
    anchor = float(np.mean((Ridge().fit(xt, yt).predict(xv) - yv) ** 2))
    assert ours <= 1.02 * anchor, (ours, anchor)


def test_multiclass_digits_is_close_to_multinomial_logistic_regression() -> None:
    digits = load_digits()
    xt, xv, yt, yv = split(digits.data, digits.target.astype(float))
    fitted = ll_fit(
        xt, yt, predictor_type="multiclass_classifier", num_classes="10", mini_batch_size="64"
    )
    probabilities, labels = fitted.model.predict(xv)
    assert probabilities.shape == (len(yv), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-9)
    anchor = LogisticRegression(max_iter=5000).fit(xt, yt).score(xv, yv)
    assert float(np.mean(labels == yv)) >= anchor - 0.02


@pytest.mark.parametrize(
    "loss",
    ["absolute_loss", "huber_loss", "quantile_loss", "eps_insensitive_squared_loss",
     "eps_insensitive_absolute_loss"],
)  # fmt: skip
def test_every_regression_loss_fits_a_linear_target(loss: str) -> None:
    x, y = make_regression(n_samples=600, n_features=5, noise=1.0, random_state=1)
    xt, xv, yt, yv = split(x, y)
    fitted = ll_fit(xt, yt, predictor_type="regressor", loss=loss, mini_batch_size="32")
    predictions, _ = fitted.model.predict(xv)
    assert np.mean((predictions - yv) ** 2) < 0.05 * np.var(yv)


def test_quantile_loss_puts_the_right_share_of_labels_below() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 3)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=3000)
    fitted = ll_fit(
        x, y, predictor_type="regressor", loss="quantile_loss", quantile="0.9", mini_batch_size="64"
    )
    predictions, _ = fitted.model.predict(x)
    assert 0.86 < float(np.mean(y <= predictions)) < 0.94


def test_hinge_loss_scores_are_margins_and_labels_follow_the_threshold() -> None:
    xt, xv, yt, yv = split(*load_breast_cancer(return_X_y=True))
    fitted = ll_fit(xt, yt, predictor_type="binary_classifier", loss="hinge_loss")
    scores, labels = fitted.model.predict(xv)
    assert scores.min() < 0 < scores.max()
    np.testing.assert_array_equal(labels, scores >= fitted.model.threshold)
    assert np.mean(labels == yv) > 0.93


# --- training behaviour -------------------------------------------------------------------------


def test_training_is_bit_for_bit_reproducible() -> None:
    x, y = make_classification(n_samples=500, n_features=8, random_state=3)
    args: dict[str, str] = {"predictor_type": "binary_classifier", "mini_batch_size": "50"}
    first = ll_fit(x.astype(np.float32), y, **args).model
    second = ll_fit(x.astype(np.float32), y, **args).model
    assert first.weights.tobytes() == second.weights.tobytes()
    assert first.bias.tobytes() == second.bias.tobytes()
    assert first.threshold == second.threshold


def test_sparse_and_dense_records_train_the_same_model_without_centring() -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((400, 12)) < 0.3) * rng.normal(size=(400, 12))
    y = (dense[:, 0] - dense[:, 1] > 0).astype(float)
    args = {"predictor_type": "binary_classifier", "unbias_data": "false", "mini_batch_size": "40"}
    from_dense = ll_fit(dense.astype(np.float32), y, **args).model
    from_sparse = ll_fit(sp.csr_matrix(dense, dtype=np.float32), y, **args).model
    np.testing.assert_allclose(from_sparse.weights, from_dense.weights, rtol=1e-4, atol=1e-5)
    scores, _ = from_sparse.predict(sp.csr_matrix(dense, dtype=np.float32))
    np.testing.assert_allclose(scores, from_dense.predict(dense)[0], atol=1e-5)


def test_sparse_data_cannot_be_centred() -> None:
    x = sp.random(50, 5, density=0.3, format="csr", dtype=np.float32, rng=0)
    with pytest.raises(UserError, match="unbias_data=true"):
        ll_fit(x, np.zeros(50), predictor_type="regressor", unbias_data="true")


def test_early_stopping_ends_training_before_the_last_epoch() -> None:
    x, y = make_regression(n_samples=2000, n_features=5, noise=5.0, random_state=0)
    fitted = ll_fit(
        x.astype(np.float32),
        y,
        predictor_type="regressor",
        epochs="50",
        early_stopping_patience="2",
        early_stopping_tolerance="0.05",
    )
    assert fitted.epochs < 50


def test_num_models_auto_searches_and_a_tuning_job_trains_one() -> None:
    x, y = make_classification(n_samples=300, n_features=5, random_state=0)
    x = x.astype(np.float32)
    assert ll_fit(x, y, predictor_type="binary_classifier", epochs="2").models == core.AUTO_MODELS
    tuned = core.fit(
        x,
        y,
        ll_settings(
            {"predictor_type": "binary_classifier", "epochs": "2", "_tuning_objective_metric": "x"}
        ),
    )
    assert tuned.models == 1
    fixed = ll_fit(
        x, y, predictor_type="binary_classifier", epochs="2", learning_rate="0.1", wd="0", l1="0"
    )
    assert fixed.models == 1  # nothing left to search


def test_balanced_positive_weight_raises_recall_on_rare_positives() -> None:
    x, y = make_classification(n_samples=3000, n_features=10, weights=[0.95], random_state=0)
    xt, xv, yt, yv = split(x, y)
    args = {
        "predictor_type": "binary_classifier",
        "binary_classifier_model_selection_criteria": "loss_function",
    }
    plain = ll_fit(xt, yt, **args).model
    balanced = ll_fit(xt, yt, positive_example_weight_mult="balanced", **args).model
    recall = [recall_score(yv, m.predict(xv)[1]) for m in (plain, balanced)]
    assert recall[1] > recall[0]


def test_recall_at_target_precision_calibrates_to_the_target() -> None:
    x, y = make_classification(n_samples=4000, n_features=10, flip_y=0.1, random_state=2)
    fitted = ll_fit(
        x.astype(np.float32),
        y,
        predictor_type="binary_classifier",
        binary_classifier_model_selection_criteria="recall_at_target_precision",
        target_precision="0.95",
    )
    _, labels = fitted.model.predict(x.astype(np.float32))
    assert precision_score(y, labels) >= 0.94


@pytest.mark.parametrize(
    ("labels", "kind", "message"),
    [([0, 1, 2], "binary_classifier", "labels 0 and 1"),
     ([0, 1, 3], "multiclass_classifier", "integers 0..2"),
     ([0, np.nan, 1], "regressor", "not finite")],
)  # fmt: skip
def test_bad_labels_are_a_user_error(labels: list[float], kind: str, message: str) -> None:
    y = np.array(labels * 10, dtype=float)
    x = np.ones((len(y), 2), np.float32)
    args = {"predictor_type": kind, "num_classes": "3"} if kind.startswith("multi") else {}
    with pytest.raises(UserError, match=message):
        ll_fit(x, y, **{"predictor_type": kind, **args})


def test_model_round_trips_through_its_file(tmp_path: Any) -> None:
    x, y = make_classification(n_samples=200, n_features=4, random_state=0)
    model = ll_fit(x.astype(np.float32), y, predictor_type="binary_classifier").model
    model.save(tmp_path)
    loaded = LinearModel.load(tmp_path)
    assert loaded.rows(x[:5]) == model.rows(x[:5])
    assert set(loaded.rows(x[:1])[0]) == {"score", "predicted_label"}


# --- losses, calibration, metrics ---------------------------------------------------------------

ALL_LOSSES = [
    "logistic", "hinge_loss", "squared_loss", "absolute_loss", "huber_loss", "quantile_loss",
    "eps_insensitive_squared_loss", "eps_insensitive_absolute_loss", "softmax_loss",
]  # fmt: skip


@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_gradient_is_the_derivative_of_the_loss(loss: str) -> None:
    rng = np.random.default_rng(5)
    params = losses.LossParams(margin=1.0, quantile=0.3, huber_delta=0.7, insensitivity=0.2)
    if loss == "softmax_loss":
        z = rng.normal(size=(20, 3, 4))
        y = rng.integers(0, 4, size=20).astype(float)
    else:
        z = rng.normal(size=(20, 3)) * 2
        y = (
            rng.integers(0, 2, size=20).astype(float)
            if loss in ALL_LOSSES[:2]
            else rng.normal(size=20)
        )
    step = 1e-6
    numeric = np.zeros_like(z)
    for index in np.ndindex(*z.shape):
        up, down = z.copy(), z.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = (
            losses.values(loss, up, y, params)[index[:2]]
            - losses.values(loss, down, y, params)[index[:2]]
        ) / (2 * step)
    analytic = losses.gradient(loss, z.copy(), y, params)
    np.testing.assert_allclose(analytic, numeric, atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 8), st.booleans()), min_size=1, max_size=40),
    st.sampled_from(["accuracy", "f_beta", "precision_at_target_recall",
                     "recall_at_target_precision"]),
)  # fmt: skip
def test_calibration_finds_the_best_threshold(
    points: list[tuple[int, bool]], criterion: str
) -> None:
    scores = np.array([p[0] / 8 for p in points])
    labels = np.array([float(p[1]) for p in points])
    (threshold,), (value,) = evaluate.calibrate(scores[:, None], labels, criterion, 1.0, 0.7, 0.7)

    def measure(t: float) -> float:
        predicted = scores >= t
        tp = float(np.sum(predicted & (labels == 1)))
        precision = tp / predicted.sum() if predicted.any() else 0.0
        recall = tp / labels.sum() if labels.any() else 0.0
        if criterion == "accuracy":
            return float(np.mean(predicted == (labels == 1)))
        if criterion == "f_beta":
            return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if criterion == "precision_at_target_recall":
            return precision if recall >= 0.7 else 0.0
        return recall if precision >= 0.7 else 0.0

    candidates = [*np.unique(scores), np.inf]
    assert value == pytest.approx(max(measure(t) for t in candidates))
    assert measure(threshold) == pytest.approx(value)


def test_metrics_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(5), size=300)
    truth = rng.integers(0, 5, size=300).astype(float)
    ours = evaluate.multiclass_metrics(probabilities, truth, top_k=3, beta=1.0)
    predicted = probabilities.argmax(axis=1)
    assert ours["multiclass_accuracy"] == pytest.approx(np.mean(predicted == truth))
    assert ours["multiclass_top_k_accuracy"] == pytest.approx(
        top_k_accuracy_score(truth, probabilities, k=3, labels=range(5))
    )
    macro: dict[str, Any] = {"average": "macro", "zero_division": 0}
    assert ours["macro_precision"] == pytest.approx(precision_score(truth, predicted, **macro))
    assert ours["macro_recall"] == pytest.approx(recall_score(truth, predicted, **macro))
    assert ours["macro_f_beta"] == pytest.approx(f1_score(truth, predicted, **macro))
    assert 0 < ours["dcg"] <= 1
    scores = rng.random(200)
    labels = (rng.random(200) < scores).astype(float)
    binary = evaluate.binary_metrics(scores, labels, 0.5, 1.0)
    assert binary["roc_auc_score"] == pytest.approx(roc_auc_score(labels, scores))
    assert binary["binary_f_beta"] == pytest.approx(f1_score(labels, scores >= 0.5))


# --- the hyperparameter table --------------------------------------------------------------------


def test_multiclass_needs_num_classes_and_losses_must_fit_the_predictor() -> None:
    with pytest.raises(HyperparameterError, match="'num_classes' is required"):
        TABLE.validate({"predictor_type": "multiclass_classifier"})
    with pytest.raises(HyperparameterError, match="'loss'"):
        TABLE.validate({"predictor_type": "regressor", "loss": "logistic"})
    with pytest.raises(HyperparameterError, match="'unbias_data'"):
        TABLE.validate({"predictor_type": "regressor", "use_bias": "False", "unbias_data": "True"})
    values = TABLE.validate({"predictor_type": "binary_classifier", "use_bias": "True"})
    assert values["use_bias"] is True


@given(st.floats(min_value=1e-6, max_value=1e6))
def test_positive_example_weight_mult_takes_numbers_balanced_and_auto(number: float) -> None:
    assert positive_weight(repr(number)) == pytest.approx(number)
    TABLE.validate({"predictor_type": "binary_classifier", "positive_example_weight_mult": "auto"})
    for bad in ("0", "-1", "heavy", "inf"):
        with pytest.raises(HyperparameterError, match="'positive_example_weight_mult'"):
            TABLE.validate(
                {"predictor_type": "binary_classifier", "positive_example_weight_mult": bad}
            )

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
from sklearn.linear_model import ElasticNet, LogisticRegression, Ridge
from sklearn.metrics import (
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    top_k_accuracy_score,
)
from sklearn.model_selection import train_test_split

from opensage.algorithms.base import HyperparameterError, UserError
from opensage.algorithms.linear_learner import core, evaluate, exact, losses
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


@pytest.mark.parametrize("name", ["diabetes", "make_regression"])
def test_exact_regression_mse_is_within_two_percent_of_ridge(name: str) -> None:
    xt, xv, yt, yv = split(*_regression_sets()[name])
    fitted = ll_fit(xt, yt, predictor_type="regressor", l1="0")
    assert fitted.model.info["solver"] == "exact"
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
    before, after = model.columns(x[:5]), loaded.columns(x[:5])
    assert set(after) == {"score", "predicted_label"}
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


# --- the exact solver for the squared loss --------------------------------------------------------


def _exact_data(rows: int = 400, features: int = 8) -> tuple[Array, Array]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(rows, features)) * rng.uniform(0.5, 20, features) + rng.normal(
        0, 30, features
    )
    y = x @ rng.normal(size=features) + 50 + rng.normal(0, 5, rows)
    return x.astype(np.float32), y


def _normalised(x: Any, y: Array, s: Any) -> tuple[Any, Array, Array, core.Scaler]:
    scaler = core.fit_scaler(x, y, s, np.random.default_rng(core.SEED))
    dense = x.toarray() if sp.issparse(x) else np.asarray(x)
    xn = (dense.astype(np.float64) - scaler.mean) / scaler.scale
    yn = (y - scaler.label_mean) / scaler.label_scale
    return xn, yn, dense, scaler


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("use_bias", ["true", "false"])
def test_exact_solution_is_ridge_on_the_normalised_objective(sparse: bool, use_bias: str) -> None:
    x, y = _exact_data()
    if sparse:
        x[np.random.default_rng(1).random(x.shape) < 0.6] = 0.0
    data: Any = sp.csr_matrix(x) if sparse else x
    args = {"predictor_type": "regressor", "l1": "0", "wd": "0.05", "use_bias": use_bias}
    fitted = ll_fit(data, y, **args)
    assert fitted.model.info["solver"] == "exact"
    xn, yn, _, scaler = _normalised(data, y, ll_settings(args))
    # The SGD objective: mean (x w + b - y)^2 + wd / 2 |w|^2, i.e. Ridge with alpha = n wd / 2.
    ridge = Ridge(alpha=len(y) * 0.05 / 2, fit_intercept=use_bias == "true", solver="cholesky")
    ridge.fit(xn, yn)
    raw_w = ridge.coef_ / scaler.scale * scaler.label_scale
    raw_b = (ridge.intercept_ - (scaler.mean / scaler.scale) @ ridge.coef_) * scaler.label_scale
    np.testing.assert_allclose(fitted.model.weights[:, 0], raw_w, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(fitted.model.bias[0], raw_b + scaler.label_mean, rtol=1e-5)


@pytest.mark.parametrize("sparse", [False, True])
def test_exact_l1_solution_is_the_elastic_net_of_the_objective(sparse: bool) -> None:
    """mean r^2 + wd/2 |w|^2 + l1 |w|_1, halved, is scikit-learn's ElasticNet with
    alpha = (l1 + wd) / 2 and l1_ratio = l1 / (l1 + wd)."""
    x, y = _exact_data(features=12)
    if sparse:
        x[np.random.default_rng(2).random(x.shape) < 0.5] = 0.0
    data: Any = sp.csr_matrix(x) if sparse else x
    args = {"predictor_type": "regressor", "l1": "0.08", "wd": "0.02"}
    fitted = ll_fit(data, y, **args)
    assert fitted.model.info["solver"] == "exact"
    xn, yn, _, scaler = _normalised(data, y, ll_settings(args))
    net = ElasticNet(alpha=0.05, l1_ratio=0.8, tol=1e-12, max_iter=100_000).fit(xn, yn)
    assert np.count_nonzero(net.coef_) < len(net.coef_)  # the l1 term zeroes some weights
    raw_w = net.coef_ / scaler.scale * scaler.label_scale
    np.testing.assert_allclose(fitted.model.weights[:, 0], raw_w, rtol=1e-4, atol=1e-6)
    assert np.count_nonzero(fitted.model.weights[:, 0]) == np.count_nonzero(net.coef_)


@pytest.mark.parametrize("bias_wd_mult", ["0", "0.5"])
def test_exact_solution_zeroes_the_sgd_gradient(bias_wd_mult: str) -> None:
    """The minimiser of the loop's own objective: the gradient `_Trainer._step` follows
    (the squared loss's, plus `wd * w`, plus `bias_wd_mult * wd * b`) vanishes there."""
    x, y = _exact_data()
    s = ll_settings(
        {"predictor_type": "regressor", "l1": "0", "learning_rate": "0.01",
         "bias_wd_mult": bias_wd_mult}
    )  # fmt: skip
    models = core.grid(s, x.shape[1])
    assert len(set(models.wd)) == len(models) > 1
    xn, yn, _, scaler = _normalised(x, y, s)
    stats = exact.statistics(x, yn, scaler.mean, scaler.scale)
    w, b = exact.solve(stats, models.wd, s)
    z = xn @ w + b
    g = losses.gradient("squared_loss", z, yn, losses.LossParams())
    grad_w = xn.T @ g / len(yn) + models.wd * w
    grad_b = g.mean(axis=0) + float(bias_wd_mult) * models.wd * b
    assert np.abs(grad_w).max() < 1e-5
    assert np.abs(grad_b).max() < 1e-5
    columns = {tuple(np.round(w[:, k], 8)) for k in range(len(models))}
    assert len(columns) == len(models)  # a distinct solution per wd


def test_several_wd_values_give_each_models_ridge_solution() -> None:
    x, y = _exact_data()
    s = ll_settings({"predictor_type": "regressor", "l1": "0", "learning_rate": "0.01"})
    models = core.grid(s, x.shape[1])
    xn, yn, _, scaler = _normalised(x, y, s)
    w, b = exact.solve(exact.statistics(x, yn, scaler.mean, scaler.scale), models.wd, s)
    for k, wd in enumerate(models.wd):
        ridge = Ridge(alpha=len(y) * wd / 2, solver="cholesky").fit(xn, yn)
        np.testing.assert_allclose(w[:, k], ridge.coef_, rtol=1e-5, atol=1e-9)
        assert b[k] == pytest.approx(ridge.intercept_, rel=1e-5, abs=1e-6)  # y' is O(1)


def test_exact_path_is_taken_only_where_it_is_the_same_objective() -> None:
    regressor = ll_settings({"predictor_type": "regressor"})
    assert exact.applies(regressor, np.zeros(3), 10)
    assert exact.applies(regressor.with_(loss="squared_loss"), np.zeros(3), 10)
    assert exact.applies(regressor, np.array([0.0, 1e-4]), 10)  # l1 > 0: coordinate descent
    assert not exact.applies(regressor, np.array([0.0, 1e-4]), exact.MAX_L1_FEATURES + 1)
    assert not exact.applies(regressor.with_(loss="huber_loss"), np.zeros(3), 10)
    assert not exact.applies(regressor, np.zeros(3), exact.MAX_FEATURES + 1)
    binary = ll_settings({"predictor_type": "binary_classifier"})
    assert not exact.applies(binary, np.zeros(3), 10)
    x, y = _exact_data()
    assert ll_fit(x, y, predictor_type="regressor", l1="0").model.info["solver"] == "exact"
    searched = ll_fit(x, y, predictor_type="regressor", epochs="2")  # l1 auto searches l1 > 0
    assert searched.model.info["solver"] == "exact"
    huber = ll_fit(x, y, predictor_type="regressor", loss="huber_loss", epochs="2")
    assert "solver" not in huber.model.info
    huber = ll_fit(x, y, predictor_type="regressor", l1="0", loss="huber_loss", epochs="2")
    assert "solver" not in huber.model.info


def test_exact_path_rejects_features_that_are_not_finite() -> None:
    x, y = _exact_data()
    x[5, 1] = np.nan
    with pytest.raises(UserError, match="not finite"):
        ll_fit(x, y, predictor_type="regressor", l1="0")


def test_exact_selection_picks_the_best_validation_mse() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(90, 40)).astype(np.float32)
    y = x[:, 0] + rng.normal(0, 1.5, 90)
    xt, xv, yt, yv = x[:50], x[50:], y[:50], y[50:]
    s = ll_settings({"predictor_type": "regressor", "l1": "0", "learning_rate": "0.01"})
    lines: list[tuple[int, float]] = []
    fitted = core.fit(xt, yt, s, (xv, yv), lambda epoch, loss: lines.append((epoch, loss)))
    assert fitted.epochs == 1
    assert [epoch for epoch, _ in lines] == [0]
    models = core.grid(s, x.shape[1])
    scaler = core.fit_scaler(xt, yt, s, np.random.default_rng(core.SEED))
    labels = (yt - scaler.label_mean) / scaler.label_scale
    w, b = exact.solve(exact.statistics(xt, labels, scaler.mean, scaler.scale), models.wd, s)
    weights, bias = core._fold(w, b, scaler)
    mse = np.mean((xv.astype(np.float64) @ weights + bias - yv[:, None]) ** 2, axis=0)
    best = int(np.argmin(mse))
    assert fitted.model.info["model"] == best
    assert models.wd[best] > 0  # regularising wins on these few, noisy rows
    assert fitted.selection_loss == pytest.approx(mse[best])
    assert lines[0][1] == pytest.approx(mse[best] / scaler.label_scale**2)


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

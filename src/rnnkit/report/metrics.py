"""Metrics, written once for every task, on top of scikit-learn.

* :func:`classification_metrics`: one label per example (accuracy, macro-F1, ROC AUC for two classes,
  per-class precision/recall/F1, the confusion matrix);
* :func:`multilabel_metrics`: any number of 0/1 labels per example (micro/macro ROC AUC and F1,
  precision at k and its ceiling).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(y: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """y (N,) true labels, probs (N, K) with columns in the order of ``classes``."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support, roc_auc_score

    y = np.asarray(y).astype(str)
    pred = np.array(classes)[probs.argmax(1)]
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=classes, zero_division=0)
    out: dict[str, Any] = {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=classes, average="macro", zero_division=0)),
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(y, pred, labels=classes).tolist(),   # rows: true, columns: predicted
        "classes": list(classes),
    }
    if len(classes) == 2 and len(set(y)) == 2:
        out["roc_auc"] = float(roc_auc_score(y == classes[1], probs[:, 1]))
    return out


def multilabel_metrics(y: np.ndarray, probs: np.ndarray, threshold: float = 0.5, k: int = 10) -> dict[str, float]:
    """y (N, L) 0/1 labels, probs (N, L); a label is predicted where its probability is >= ``threshold``.

    ``precision_at_k``: the share of true labels among each example's k highest-scored labels, averaged;
    its ceiling is reported too, since an example with fewer than k true labels cannot reach 1.
    """
    from sklearn.metrics import f1_score, roc_auc_score

    pred = probs >= threshold
    # Macro AUC over the labels that have both classes in y (AUC is undefined otherwise).
    both = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
    k = min(k, y.shape[1])
    top = np.argsort(-probs, axis=1)[:, :k]                         # (N, k) highest-scored labels
    hits = np.take_along_axis(y, top, axis=1).sum(1)
    return {
        "micro_auc": float(roc_auc_score(y.ravel(), probs.ravel())),
        "macro_auc": float(roc_auc_score(y[:, both], probs[:, both], average="macro")) if both else float("nan"),
        "micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        f"precision_at_{k}": float((hits / k).mean()),
        f"precision_at_{k}_ceiling": float((np.minimum(y.sum(1), k) / k).mean()),
    }


# ---------------------------------------------------------------------------------------------------------
# Forecasting (rnnkit.tasks.forecast)
# ---------------------------------------------------------------------------------------------------------

def mae_per_target(pred: np.ndarray, truth: np.ndarray, scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Mean absolute error of forecasts (N, H, K) against the truth (N, H, K), one value per target (K,):
    the mean over windows and horizon steps. Errors of normalised values times ``scale`` (K,) (the
    normaliser's standard deviations) are errors in the targets' own units."""
    err = np.abs(np.asarray(pred, dtype=np.float64) - np.asarray(truth, dtype=np.float64))
    return err.reshape(-1, err.shape[-1]).mean(axis=0) * scale


def forecast_metrics(pred: np.ndarray, truth: np.ndarray, naive: np.ndarray, scale: np.ndarray,
                     targets: list[str]) -> dict[str, float]:
    """The forecast report on normalised forecasts (N, H, K) of the model and of the naive forecast (the
    last observed value): MAE in the targets' own units (``mae``, the mean over the K targets) and
    normalised (``mae_norm``), the same for naive, the model's gain over naive in percent, and the MAE of
    each target in its own units (``mae[<target>]``)."""
    own = mae_per_target(pred, truth, scale)                             # (K,) original units
    norm = mae_per_target(pred, truth)
    naive_own, naive_norm = mae_per_target(naive, truth, scale), mae_per_target(naive, truth)
    out = {"windows": int(len(truth)), "mae": float(own.mean()), "mae_norm": float(norm.mean()),
           "naive_mae": float(naive_own.mean()), "naive_mae_norm": float(naive_norm.mean())}
    out["vs_naive_pct"] = 100 * (1 - out["mae"] / out["naive_mae"]) if out["naive_mae"] > 0 else float("nan")
    out.update({f"mae[{t}]": float(v) for t, v in zip(targets, own)})
    return out

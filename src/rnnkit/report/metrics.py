"""Metrics, written once for every task, on top of scikit-learn.

* :func:`classification_metrics`: one label per example (accuracy, macro-F1, ROC AUC for two classes,
  per-class precision/recall/F1, the confusion matrix);
* :func:`multilabel_metrics`: any number of 0/1 labels per example (micro/macro ROC AUC and F1,
  precision at k and its ceiling);
* :func:`bleu_chrf` and :func:`edit_distance_rates`: sequence to sequence outputs against one or more
  references each (BLEU and chrF by sacrebleu; token and sequence error rates by rapidfuzz).
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


# ---------------------------------------------------------------------------------------------------------
# Sequence to sequence (rnnkit.tasks.seq2seq): outputs against one or more references each
# ---------------------------------------------------------------------------------------------------------

def bleu_chrf(hypotheses: list[str], references: list[list[str]], tokenize: str = "13a") -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu, 0-100) of ``hypotheses`` against each one's references (any number
    per hypothesis; missing ones are filled with None, which sacrebleu skips). ``tokenize``: sacrebleu's
    BLEU tokenizer (``"13a"`` for words, ``"char"`` to count character n-grams)."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"references: {len(references)} lists for {len(hypotheses)} hypotheses; expected one "
                         f"list per hypothesis")
    if not hypotheses:
        return {"bleu": float("nan"), "chrf": float("nan")}
    k = max(len(r) for r in references)
    streams = [[r[j] if j < len(r) else None for r in references] for j in range(k)]
    bleu = sacrebleu.metrics.BLEU(tokenize=tokenize, effective_order=True).corpus_score(hypotheses, streams)
    chrf = sacrebleu.metrics.CHRF().corpus_score(hypotheses, streams)
    return {"bleu": float(bleu.score), "chrf": float(chrf.score)}


def edit_distance_rates(hypotheses: list[list[str]], references: list[list[list[str]]]) -> dict[str, float]:
    """Token and sequence error rates of token sequences against each one's references (rapidfuzz's
    Levenshtein distance over tokens: phonemes, words or characters).

    ``token_error_rate``: the edit distance to the closest reference, summed, over the summed lengths of
    those references (PER when the tokens are phonemes, WER when they are words of a sentence);
    ``sequence_error_rate``: the share of hypotheses equal to none of their references (the "word error
    rate" of grapheme-to-phoneme conversion, where a sequence is one word)."""
    from rapidfuzz.distance import Levenshtein

    if len(hypotheses) != len(references):
        raise ValueError(f"references: {len(references)} lists for {len(hypotheses)} hypotheses; expected one "
                         f"list per hypothesis")
    errors = length = wrong = 0
    for hyp, refs in zip(hypotheses, references):
        if not refs:
            raise ValueError("references: an empty list; expected at least one reference per hypothesis")
        # The closest reference (the shorter one on a tie) is the one the output is scored against.
        dist, ref = min(((Levenshtein.distance(hyp, r), len(r)) for r in refs))
        errors += dist
        length += ref
        wrong += dist > 0
    n = len(hypotheses)
    return {"token_error_rate": errors / length if length else float("nan"),
            "sequence_error_rate": wrong / n if n else float("nan")}

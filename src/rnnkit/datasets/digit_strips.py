"""Digit strips: real handwriting for image captioning, built from scikit-learn's 1,797 handwritten 8x8 digits.

A strip is 3 to 6 digit images side by side, left-aligned on a white strip wide enough for 6 (unused slots stay
blank), drawn as dark ink on white (scaled up ``scale`` times if asked); its caption is the digits' words::

    [4][2][7][ ][ ][ ]  ->  "four two seven"

The 1,797 digits are split once, by a seeded permutation within each class, into disjoint pools: 70% train,
10% validation, 20% test. A strip of a split takes its digit images only from that split's pool, so a test strip
is made of digit images that no training strip contains (the model is scored on handwriting it never saw). The
strips are drawn from ``numpy.random.default_rng([seed, split])``: the same arguments rebuild the same strips,
pixel for pixel, every time.

    from rnnkit.datasets.digit_strips import digit_strips
    parts = digit_strips(train=5000, val=300, test=500, seed=0)   # {"train": ImageCaptions, "val": ..., "test": ...}
    parts["train"].images.shape      # (5000, 8, 48, 3) float32 in [0, 1]
    parts["train"].captions[0]       # ["four two seven"]
"""

from __future__ import annotations

import numpy as np

from rnnkit import _checks

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MIN_DIGITS, MAX_DIGITS = 3, 6
POOL_SHARES = {"train": 0.7, "val": 0.1, "test": 0.2}   # of each class's digit images, disjoint
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
DIGIT = 8                                                # sklearn's digits are 8x8, ink 0..16
MAX_STRIPS = 1_000_000


def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits: images (1797, 8, 8) float32 ink in [0, 1], labels (1797,)."""
    from sklearn.datasets import load_digits       # ships inside scikit-learn: nothing is downloaded

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def digit_pools(labels: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Indices of the digit images of each split: disjoint, every class in every split (a seeded permutation
    within each class, cut at POOL_SHARES)."""
    rng = np.random.default_rng([seed, 99])
    pools: dict[str, list[int]] = {name: [] for name in POOL_SHARES}
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        a = int(round(POOL_SHARES["train"] * len(idx)))
        b = a + int(round(POOL_SHARES["val"] * len(idx)))
        pools["train"] += idx[:a].tolist()
        pools["val"] += idx[a:b].tolist()
        pools["test"] += idx[b:].tolist()
    return {name: np.sort(np.asarray(v, dtype=np.int64)) for name, v in pools.items()}


def render_strip(digits: list[np.ndarray], scale: int = 2) -> np.ndarray:
    """8x8 ink images (values in [0, 1]) side by side on a 6-slot white strip -> (8s, 48s, 3) float32 in [0, 1]."""
    strip = np.zeros((DIGIT, DIGIT * MAX_DIGITS), dtype=np.float32)
    for k, image in enumerate(digits):
        strip[:, k * DIGIT:(k + 1) * DIGIT] = image
    grey = 1.0 - np.kron(strip, np.ones((scale, scale), dtype=np.float32))     # dark ink on white paper
    return np.repeat(grey[:, :, None], 3, axis=2)


def digit_strips(train: int = 20_000, val: int = 500, test: int = 1_000, *, seed: int = 0, scale: int = 1,
                 min_digits: int = MIN_DIGITS, max_digits: int = MAX_DIGITS):
    """{"train", "val", "test"} -> ImageCaptions of that many strips (see the module docstring); ``scale``: pixels
    per digit pixel (1: 8x48 images, one 8x8 slot per digit; a 3-block small CNN gives a 1x6 grid, a cell per slot)."""
    from rnnkit.datasets.images import ImageCaptions

    for name, value in (("train", train), ("val", val), ("test", test)):
        _checks.check_int(name, value, min=0, cap=MAX_STRIPS)
    _checks.check_int("seed", seed, min=0, cap=_checks.MAX_SEED)
    _checks.check_int("scale", scale, min=1, max=16)
    _checks.check_int("min_digits", min_digits, min=1, max=MAX_DIGITS)
    _checks.check_int("max_digits", max_digits, min=min_digits, max=MAX_DIGITS)
    images, labels = load_digit_images()
    pools = digit_pools(labels, seed)
    out = {}
    for split, count in (("train", train), ("val", val), ("test", test)):
        rng = np.random.default_rng([seed, SPLIT_IDS[split]])
        pool = pools[split]
        by_class = [pool[labels[pool] == d] for d in range(10)]
        strips = np.empty((count, DIGIT * scale, DIGIT * MAX_DIGITS * scale, 3), dtype=np.float32)
        captions, ids = [], []
        for i in range(count):
            k = int(rng.integers(min_digits, max_digits + 1))
            classes = rng.integers(0, 10, size=k)
            chosen = [int(rng.choice(by_class[c])) for c in classes]
            strips[i] = render_strip([images[j] for j in chosen], scale)
            captions.append([" ".join(WORDS[c] for c in classes)])
            ids.append(f"{split}-{i:06d}")
        out[split] = ImageCaptions(strips, captions, ids)
    return out


def used_digits(seed: int = 0) -> dict[str, set[int]]:
    """The digit-image indices each split's strips may use (its pool): for the test that they never overlap."""
    _, labels = load_digit_images()
    return {name: set(v.tolist()) for name, v in digit_pools(labels, seed).items()}

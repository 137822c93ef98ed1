"""Captioned scenes that rnnkit renders itself: a SYNTHETIC data set (no photo is involved).

Each scene is a white 48x48 canvas with one to three shapes (square, circle, triangle) in one of six colours
and two sizes, drawn by :mod:`rnnkit.datasets.shapes`. Its captions say what is there, how many, and where one
object is relative to another:

    one object                      "a large red square"
    two or three identical objects  "two small blue circles", "three large green triangles"
    two different objects           "a small grey circle left of a large orange square"
                                    "a large orange square right of a small grey circle"   (the same scene)

Two different objects are related along the axis on which they are further apart (left of / right of, above /
below); both orders are references of the scene (several captions per image, as in Flickr8k), so either one
scores as right.

Splits:

* ``train``, ``val``, ``test``: scenes in which every object's (colour, shape) pair is one of the 12 of
  ``seen_pairs()``; the test split is in-distribution (new scenes, same kinds of object).
* ``compositional``: every scene holds at least one object whose (colour, shape) pair never occurs in
  training (``HELD_OUT``, e.g. a red circle, though red things and circles both do): a model that composes
  colour and shape words describes them; one that memorised whole objects does not.

Rebuilt identically from ``seed`` (``numpy.random.default_rng([seed, split])``).
"""

from __future__ import annotations

import numpy as np

from rnnkit import _checks

SIZE = 48                                       # pixels a side: a 3-block small CNN gives a 6x6 grid
COLOUR_NAMES = ("red", "green", "blue", "orange", "purple", "grey")
SHAPE_NAMES = ("square", "circle", "triangle")
SIZES = {"small": 8.0, "large": 16.0}           # side / diameter in pixels on a 48-pixel canvas
# One (colour, shape) pair per colour never occurs in training: each colour and each shape still does.
HELD_OUT = (("red", "circle"), ("green", "triangle"), ("blue", "square"), ("orange", "circle"),
            ("purple", "triangle"), ("grey", "square"))
SPLIT_IDS = {"train": 0, "val": 1, "test": 2, "compositional": 3}
COUNT_WORDS = {2: "two", 3: "three"}
MAX_SCENES = 1_000_000


def seen_pairs() -> list[tuple[str, str]]:
    return [(c, s) for c in COLOUR_NAMES for s in SHAPE_NAMES if (c, s) not in HELD_OUT]


def _phrase(obj: tuple[str, str, str], article: str = "a") -> str:
    size, colour, shape = obj
    return f"{article} {size} {colour} {shape}"


def _positions(rng: np.random.Generator, n: int, radius: float) -> list[tuple[float, float]]:
    """n centres in the canvas, each object wholly inside it, no two closer than 2 * radius + 2 pixels."""
    for _ in range(1000):
        pts = rng.uniform(radius + 1, SIZE - radius - 1, size=(n, 2))
        if n == 1 or min(np.hypot(*(pts[i] - pts[j])) for i in range(n) for j in range(i + 1, n)) > 2 * radius + 2:
            return [(float(r), float(c)) for r, c in pts]
    raise RuntimeError("scenes: no room for the objects")       # not reached with these sizes


def _relation(a: tuple[float, float], b: tuple[float, float]) -> tuple[str, str]:
    """Where a is relative to b, and b relative to a (on the axis where they are further apart)."""
    dr, dc = b[0] - a[0], b[1] - a[1]
    if abs(dc) >= abs(dr):
        return ("left of", "right of") if dc > 0 else ("right of", "left of")
    return ("above", "below") if dr > 0 else ("below", "above")


def make_scene(rng: np.random.Generator, pairs: list[tuple[str, str]], must: list[tuple[str, str]] | None = None
               ) -> tuple[np.ndarray, list[str]]:
    """One scene and its captions; ``pairs``: the (colour, shape) pairs objects take; ``must``: one object takes a
    pair from this list (the compositional split)."""
    from rnnkit.datasets.shapes import blank, draw

    def pick(from_: list[tuple[str, str]]) -> tuple[str, str, str]:
        colour, shape = from_[int(rng.integers(len(from_)))]
        return (str(rng.choice(list(SIZES))), colour, shape)

    kind = rng.choice(["one", "same", "pair"], p=[0.3, 0.3, 0.4])
    first = pick(must if must else pairs)
    canvas = blank(SIZE, SIZE)
    if kind == "one":
        objects, captions = [first], [_phrase(first)]
    elif kind == "same":
        n = int(rng.integers(2, 4))
        objects = [first] * n
        captions = [f"{COUNT_WORDS[n]} {first[0]} {first[1]} {first[2]}s"]
    else:
        second = pick(pairs)
        while second == first:
            second = pick(pairs)
        objects = [first, second]
        captions = []
    centres = _positions(rng, len(objects), SIZES["large"] / 2)
    for (size, colour, shape), centre in zip(objects, centres):
        draw(canvas, shape, colour, centre=centre, size=SIZES[size])
    if kind == "pair":
        ab, ba = _relation(centres[0], centres[1])
        captions = [f"{_phrase(objects[0])} {ab} {_phrase(objects[1])}",
                    f"{_phrase(objects[1])} {ba} {_phrase(objects[0])}"]
    return canvas, captions


def scenes(train: int = 20_000, val: int = 500, test: int = 1_000, compositional: int = 1_000, *, seed: int = 0):
    """{"train", "val", "test", "compositional"} -> ImageCaptions of that many 48x48 scenes (module docstring)."""
    from rnnkit.datasets.images import ImageCaptions

    for name, value in (("train", train), ("val", val), ("test", test), ("compositional", compositional)):
        _checks.check_int(name, value, min=0, cap=MAX_SCENES)
    _checks.check_int("seed", seed, min=0, cap=_checks.MAX_SEED)
    pairs = seen_pairs()
    out = {}
    for split, count in (("train", train), ("val", val), ("test", test), ("compositional", compositional)):
        rng = np.random.default_rng([seed, SPLIT_IDS[split]])
        images = np.empty((count, SIZE, SIZE, 3), dtype=np.float32)
        captions, ids = [], []
        must = list(HELD_OUT) if split == "compositional" else None
        for i in range(count):
            images[i], caps = make_scene(rng, pairs, must)
            captions.append(caps)
            ids.append(f"{split}-{i:06d}")
        out[split] = ImageCaptions(images, captions, ids)
    return out

"""Sort-of-CLEVR scenes with questions, rendered by rnnkit (synthetic: no file is read or fetched).

After Santoro et al. 2017 ("A simple neural network module for relational reasoning"): every scene holds
``objects`` (default 6) objects, each a different colour, each a square or a circle, on a white canvas (default
75x75). Every scene gets questions of each kind, each about an object named by its colour (by default one per
object, ``per_kind``), written as English text (the model reads it with a recurrent network) and answered with
one word:

non-relational (one object's own attributes)
  ``shape``     "what shape is the red object?"                       -> square | circle
  ``left``      "is the green object on the left?"                    -> yes | no  (left half of the image)
  ``top``       "is the blue object at the top?"                      -> yes | no  (top half of the image)
relational (the object compared with the others)
  ``closest``   "what colour is the object closest to the red one?"   -> a colour
  ``furthest``  "what shape is the object furthest from the red one?" -> square | circle
  ``count``     "how many objects have the shape of the blue one?"    -> one ... six (itself included)

Questions are asked only where the picture settles the answer: an object within ``MARGIN`` pixels of the
middle line is not asked about left/top, and a closest/furthest question whose two best candidates are within
``MARGIN`` pixels of each other's distance is not asked (a pixel grid cannot show such a difference). With
``per_kind`` below the number of objects, another object of the same scene is asked about instead; so the
questions' subject colours are not perfectly uniform.

Why every object by default: the image encoder is the costly part of a training step and runs once per image
of a batch, so 36 questions about a scene teach more per second than 6 (measured: with one question per kind,
the shape questions were still at chance after thousands of steps).

``make_split(n_scenes, seed)`` renders scenes and their questions; the same seed gives the same bytes on every
machine (numpy's PCG64 and arithmetic drawing). ``make_splits`` builds train/val/test from distinct seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from rnnkit import _checks

# The six colours of the original data set, in the order their questions are written.
COLOUR_NAMES = ("red", "green", "blue", "orange", "grey", "yellow")
SHAPE_NAMES = ("square", "circle")
NONRELATIONAL = ("shape", "left", "top")
RELATIONAL = ("closest", "furthest", "count")
KINDS = NONRELATIONAL + RELATIONAL
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
MARGIN = 2.0          # pixels: below this an answer hinges on a difference the rendering cannot show
MAX_OBJECTS = len(COLOUR_NAMES)
MAX_IMAGE_SIZE = 512

TEMPLATES = {
    "shape": "what shape is the {c} object?",
    "left": "is the {c} object on the left?",
    "top": "is the {c} object at the top?",
    "closest": "what colour is the object closest to the {c} one?",
    "furthest": "what shape is the object furthest from the {c} one?",
    "count": "how many objects have the shape of the {c} one?",
}


@dataclass
class Scene:
    """One rendered scene: ``image`` (H, W, 3) float32 in [0, 1]; per object its colour name, shape name and
    centre (row, col) in pixels."""

    image: np.ndarray
    colours: list[str]
    shapes: list[str]
    centres: np.ndarray                       # (objects, 2) float: row, col


@dataclass
class VQAData:
    """Images and questions about them. ``images`` (N, H, W, 3) float32 in [0, 1]; question ``i`` is about
    ``images[image_index[i]]``; ``kinds`` is None for a user's data without kinds. ``where(i)`` names the
    question's origin in messages (a file and line, or a scene)."""

    images: np.ndarray
    image_index: np.ndarray                   # (Q,) int64
    questions: list[str]
    answers: list[str] | None
    kinds: list[str] | None = None
    source: str = "data"
    lines: list[int] | None = None            # a file's line number of each question
    names: list[str] = field(default_factory=list)   # an image's name (file) when read from files

    def __len__(self) -> int:
        return len(self.questions)

    def where(self, i: int) -> str:
        if self.lines is not None:
            return f"{self.source}, line {self.lines[i]}"
        return f"{self.source}, question {i + 1}"

    def subset(self, idx: Sequence[int]) -> "VQAData":
        """The questions ``idx`` (with every image, so image_index stays valid)."""
        idx = list(idx)
        pick = lambda xs: None if xs is None else [xs[i] for i in idx]   # noqa: E731
        return VQAData(self.images, self.image_index[idx], [self.questions[i] for i in idx], pick(self.answers),
                       pick(self.kinds), self.source, pick(self.lines), self.names)


def render_scene(rng: np.random.Generator, *, size: int = 75, objects: int = 6, object_size: int = 10) -> Scene:
    """One scene: ``objects`` objects of distinct colours (COLOUR_NAMES order), each a square or a circle of side
    (diameter) ``object_size``, centres at least ``object_size * 1.5`` apart and inside the canvas."""
    from rnnkit.datasets import shapes as draw_lib

    half = object_size / 2
    centres: list[tuple[float, float]] = []
    while len(centres) < objects:
        # Integer pixel centres: the drawing is exact and the same on every machine.
        c = (float(rng.integers(int(np.ceil(half)), size - int(np.ceil(half)))),
             float(rng.integers(int(np.ceil(half)), size - int(np.ceil(half)))))
        if all((c[0] - r) ** 2 + (c[1] - k) ** 2 >= (1.5 * object_size) ** 2 for r, k in centres):
            centres.append(c)
    kinds = [SHAPE_NAMES[int(k)] for k in rng.integers(0, len(SHAPE_NAMES), objects)]
    canvas = draw_lib.blank(size, size)
    colours = list(COLOUR_NAMES[:objects])
    for colour, shape, centre in zip(colours, kinds, centres):
        draw_lib.draw(canvas, shape, draw_lib.COLOURS[colour], centre=centre, size=object_size)
    return Scene(canvas.astype(np.float32), colours, kinds, np.array(centres, dtype=np.float64))


def answer(scene: Scene, kind: str, subject: int, size: int) -> str | None:
    """The one-word answer to the ``kind`` question about object ``subject``; None where the picture does not
    settle it (see MARGIN)."""
    c = scene.centres
    if kind == "shape":
        return scene.shapes[subject]
    if kind in ("left", "top"):
        pos = c[subject, 1 if kind == "left" else 0]
        middle = size / 2                       # the canvas spans [0, size] in draw()'s coordinates
        if abs(pos - middle) < MARGIN:
            return None
        return "yes" if pos < middle else "no"
    if kind == "count":
        return NUMBER_WORDS[sum(s == scene.shapes[subject] for s in scene.shapes)]
    dist = np.hypot(*(c - c[subject]).T)
    dist[subject] = np.inf if kind == "closest" else -np.inf
    order = np.argsort(dist if kind == "closest" else -dist)
    if abs(dist[order[0]] - dist[order[1]]) < MARGIN:
        return None
    best = int(order[0])
    return scene.colours[best] if kind == "closest" else scene.shapes[best]


def make_split(n_scenes: int, seed: int, *, size: int = 75, objects: int = 6, object_size: int = 10,
               kinds: Sequence[str] = KINDS, per_kind: int | None = None,
               source: str = "sort-of-clevr") -> VQAData:
    """``n_scenes`` scenes with ``per_kind`` questions of each of ``kinds`` per scene, each about another object
    whose answer the picture settles (None: every such object; 1: one random object per kind). Seeded: the same
    arguments give the same data."""
    _checks.check_int("n_scenes", n_scenes, min=1, cap=10_000_000)
    _checks.check_int("per_kind", per_kind, min=1, cap=MAX_OBJECTS, allow_none=True)
    _checks.check_int("size", size, min=16, cap=MAX_IMAGE_SIZE)
    _checks.check_int("objects", objects, min=2, cap=MAX_OBJECTS)
    _checks.check_int("object_size", object_size, min=3, cap=size // 3)
    for k in kinds:
        _checks.check_choice("kinds", k, KINDS)
    if (1.5 * object_size) * np.sqrt(objects) > size:
        _checks.fail("objects", objects, f"at most as many objects as fit apart on a {size}x{size} canvas with "
                                         f"object_size {object_size}")
    rng = np.random.default_rng(seed)
    images = np.empty((n_scenes, size, size, 3), dtype=np.float32)
    index, questions, answers, kinds_out = [], [], [], []
    for s in range(n_scenes):
        scene = render_scene(rng, size=size, objects=objects, object_size=object_size)
        images[s] = scene.image
        for kind in kinds:
            asked = 0
            for subject in rng.permutation(objects):
                a = answer(scene, kind, int(subject), size)
                if a is not None:
                    index.append(s)
                    questions.append(TEMPLATES[kind].format(c=scene.colours[int(subject)]))
                    answers.append(a)
                    kinds_out.append(kind)
                    asked += 1
                    if asked == per_kind:
                        break
    return VQAData(images, np.array(index, dtype=np.int64), questions, answers, kinds_out, source)


def make_splits(train_scenes: int = 10_000, val_scenes: int = 500, test_scenes: int = 1_000, seed: int = 0,
                **kw) -> tuple[VQAData, VQAData, VQAData]:
    """(train, val, test), each from its own seed stream: the test scenes never depend on the training size."""
    return (make_split(train_scenes, _checks.check_int("seed", seed, min=0) * 3 + 1, source="sort-of-clevr train",
                       **kw),
            make_split(val_scenes, seed * 3 + 2, source="sort-of-clevr val", **kw),
            make_split(test_scenes, seed * 3 + 3, source="sort-of-clevr test", **kw))

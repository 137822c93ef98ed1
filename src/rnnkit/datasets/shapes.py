"""Drawing primitives on a NumPy canvas: the synthetic scenes of the captioning and VQA tasks.

A canvas is a float32 array ``(H, W, 3)`` in [0, 1], RGB, as ``rnnkit.datasets.images.read_image`` returns,
so a drawn scene and a photo go through the same encoders. No Pillow: a shape is a boolean mask computed
from pixel-centre coordinates, so the same call draws the same pixels everywhere.

    canvas = blank(64, 64)
    draw(canvas, "circle", "red", centre=(20, 40), size=16)     # a 16-pixel disc centred at row 20, col 40
    draw(canvas, "triangle", COLOURS["blue"], centre=(45, 15), size=12)

``size`` is the side of a square, the diameter of a circle, and the base (= height) of an upright triangle.
A shape may run over the edge of the canvas; the part outside is clipped.
"""

from __future__ import annotations

import numpy as np

from rnnkit._checks import fail

# Colours far apart in RGB, so a small CNN tells them apart at a few pixels; names are the words a caption uses.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.70, 0.20),
    "blue": (0.10, 0.25, 0.90),
    "orange": (1.00, 0.55, 0.00),
    "grey": (0.50, 0.50, 0.50),
    "yellow": (0.95, 0.90, 0.10),
    "purple": (0.55, 0.15, 0.75),
    "cyan": (0.10, 0.80, 0.85),
    "black": (0.0, 0.0, 0.0),
    "white": (1.0, 1.0, 1.0),
}
SHAPES = ("square", "circle", "triangle")


def blank(height: int, width: int, background=(1.0, 1.0, 1.0)) -> np.ndarray:
    """A ``(height, width, 3)`` float32 canvas filled with ``background`` (a colour name or an RGB triple)."""
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            fail(name, value, "an integer >= 1")
    canvas = np.empty((int(height), int(width), 3), dtype=np.float32)
    canvas[:] = _rgb("background", background)
    return canvas


def draw(canvas: np.ndarray, shape: str, colour, centre: tuple[float, float], size: float) -> None:
    """Paint ``shape`` in ``colour`` (a name from COLOURS or an RGB triple in [0, 1]) onto ``canvas`` in place.

    ``centre`` is (row, col) in pixels (fractions allowed); ``size`` the side / diameter / triangle base in pixels.
    A pixel is painted when its centre (r + 0.5, c + 0.5) lies inside the shape."""
    if not (isinstance(canvas, np.ndarray) and canvas.ndim == 3 and canvas.shape[2] == 3):
        fail("canvas", getattr(canvas, "shape", type(canvas).__name__), "a (H, W, 3) NumPy array")
    if shape not in SHAPES:
        fail("shape", shape, "one of " + ", ".join(repr(s) for s in SHAPES))
    rgb = _rgb("colour", colour)
    if not (isinstance(size, (int, float, np.number)) and not isinstance(size, bool) and size > 0):
        fail("size", size, "a number of pixels > 0")
    try:
        r0, c0 = (float(v) for v in centre)
    except (TypeError, ValueError):
        fail("centre", centre, "a (row, col) pair of numbers")
    height, width = canvas.shape[:2]
    half = size / 2.0
    # Only the bounding box is tested: drawing stays O(size^2) on a big canvas.
    top, bottom = max(int(np.floor(r0 - half)), 0), min(int(np.ceil(r0 + half)) + 1, height)
    left, right = max(int(np.floor(c0 - half)), 0), min(int(np.ceil(c0 + half)) + 1, width)
    if top >= bottom or left >= right:
        return                                   # entirely off the canvas
    rows = np.arange(top, bottom, dtype=np.float64)[:, None] + 0.5 - r0     # (h, 1) offsets from the centre
    cols = np.arange(left, right, dtype=np.float64)[None, :] + 0.5 - c0     # (1, w)
    if shape == "square":
        mask = (np.abs(rows) <= half) & (np.abs(cols) <= half)
    elif shape == "circle":
        mask = rows ** 2 + cols ** 2 <= half ** 2
    else:
        # Upright: apex at the top (row offset -half), base at +half; the half-width grows linearly downwards.
        depth = (rows + half) / size                     # 0 at the apex, 1 at the base
        mask = (depth >= 0) & (depth <= 1) & (np.abs(cols) <= depth * half)
    canvas[top:bottom, left:right][mask] = rgb


def _rgb(name: str, colour) -> np.ndarray:
    if isinstance(colour, str):
        if colour not in COLOURS:
            fail(name, colour, "a colour name, one of " + ", ".join(COLOURS) + ", or an RGB triple in [0, 1]")
        return np.asarray(COLOURS[colour], dtype=np.float32)
    try:
        rgb = np.asarray(colour, dtype=np.float32)
    except (TypeError, ValueError):
        rgb = None
    if rgb is None or rgb.shape != (3,) or not np.all((rgb >= 0) & (rgb <= 1)):
        fail(name, colour, "a colour name or an RGB triple of numbers in [0, 1]")
    return rgb

"""Reading the user's images and image-caption folders (captioning and VQA).

Every image becomes one thing: a float32 array ``(H, W, 3)`` in [0, 1], RGB, whatever the file held.

- ``read_image(source)`` reads a path or the bytes of a file with Pillow (PNG, JPEG, GIF, BMP, TIFF, WebP, ...).
  Greyscale and 1-bit images are repeated over the three channels; a palette is looked up; transparency
  (RGBA, LA, a palette's transparent index) is composited on WHITE, so a transparent background reads as the
  white of a scanned page rather than as black; 16-bit images keep their range (divided by 65535); CMYK, YCbCr
  and LAB are converted by Pillow; the EXIF orientation of a phone photo is applied; an animated GIF gives its
  first frame. A file that is not an image, a truncated file or an image with no pixels is refused with one
  line naming the file; so is an image over ``MAX_IMAGE_PIXELS`` (a "decompression bomb": a small PNG can
  claim 100,000 x 100,000 pixels, 120 GB as float32) -- this is checked from the header, before decoding.
- ``fit_size(image, (h, w))`` is THE resize rule that encoders use: scale the image, keeping its aspect ratio,
  so that it just covers h x w (the short side, relative to the target, becomes the target's), then cut the
  centre h x w. Nothing is stretched, and the centre (where a photo's subject usually is) is kept. Small images
  are upscaled by the same rule: a 1 x 1 image becomes a flat h x w image of its colour.
- ``resize(image, (h, w))`` scales to exactly h x w, stretching if the aspect ratios differ (for drawings whose
  whole extent matters).
  Both use Pillow's bilinear filter, which widens its support when shrinking (antialiasing: no aliasing of fine
  texture), per channel on float32 values, so no 8-bit rounding is added and values stay in [0, 1].
- ``read_caption_folder(images_dir, captions_file)`` reads a folder of images with a captions file in either
  layout of the public caption sets (see its docstring).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit._checks import fail

# 40 megapixels: a 7,000 x 5,700 photo (every current camera is below), 480 MB once float32 RGB. Pillow's own
# bomb check warns at 89 M and refuses at 179 M pixels; ours is lower because we hold float32, not uint8.
MAX_IMAGE_PIXELS = 40_000_000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_EXPECTED = "an image file Pillow can read (PNG, JPEG, GIF, BMP, TIFF, WebP, ...)"


def read_image(source: str | Path | bytes, *, name: str = "image") -> np.ndarray:
    """The image in ``source`` (a path, or the bytes of an image file) as float32 ``(H, W, 3)`` in [0, 1], RGB.

    ``name`` is the argument named in errors (a caller reading a folder passes e.g. ``"images_dir"``)."""
    from PIL import Image, ImageFile, ImageOps

    if isinstance(source, (bytes, bytearray, memoryview)):
        data, shown = bytes(source), f"<{len(source)} bytes>"
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            fail(name, str(source), "an image file (no such file)" if not path.exists() else "an image file, not a folder")
        data, shown = path.read_bytes(), str(source)
    else:
        fail(name, type(source).__name__, "a path (str or Path) or the bytes of an image file")
    if not data:
        fail(name, shown, f"{_EXPECTED}; the file is empty")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Another library in the process asked Pillow to pad truncated files with grey; we never want that.
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            # Pillow only warns about images between its two bomb limits; that warning becomes our one-line error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                fail(name, shown, f"an image of at most {MAX_IMAGE_PIXELS:,} pixels "
                                  f"(rnnkit.datasets.images.MAX_IMAGE_PIXELS); it claims {width} x {height}")
            if width == 0 or height == 0:
                fail(name, shown, f"an image with pixels; it is {width} x {height}")
            image.load()                           # decode now: a truncated file fails here, not later
            image = ImageOps.exif_transpose(image)
            array = _to_rgb(image)
    except ValueError as error:
        if str(error).startswith(f"{name}="):
            raise
        fail(name, shown, f"{_EXPECTED}; Pillow says: {_one_line(error)}")
    except (OSError, SyntaxError, EOFError, IndexError, TypeError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as error:
        # UnidentifiedImageError and "image file is truncated" are OSErrors; broken headers raise the others.
        fail(name, shown, f"{_EXPECTED}; Pillow says: {_one_line(error)}")
    return array


def _to_rgb(image) -> np.ndarray:
    """A decoded Pillow image in any mode -> float32 (H, W, 3) in [0, 1]."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit greyscale (PNG, TIFF). Pillow opens some as "I" (32-bit int); their values are still 16-bit.
        grey = np.asarray(image, dtype=np.float32) / 65535.0
        return np.repeat(np.clip(grey, 0.0, 1.0)[:, :, None], 3, axis=2)
    if mode == "F":
        # 32-bit float images (TIFF) have no agreed range; values are taken as already in [0, 1].
        grey = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0)
        return np.repeat(np.clip(grey, 0.0, 1.0)[:, :, None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0       # (H, W, 4)
        alpha = rgba[:, :, 3:]
        return (rgba[:, :, :3] * alpha + (1.0 - alpha)).astype(np.float32)       # over white
    if mode != "RGB":
        image = image.convert("RGB")     # 1, L, P, CMYK, YCbCr, LAB, HSV
    return np.asarray(image, dtype=np.float32) / 255.0


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:200]


def _check_image(image, name: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        fail(name, getattr(image, "shape", type(image).__name__), "a (H, W, 3) array (read_image returns one)")
    if image.shape[0] < 1 or image.shape[1] < 1:
        fail(name, image.shape, "an image with at least one pixel")
    return np.asarray(image, dtype=np.float32)


def _check_size(size) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
        if height < 1 or width < 1 or (height, width) != tuple(size):
            raise ValueError
    except (TypeError, ValueError):
        fail("size", size, "a (height, width) pair of integers >= 1")
    return height, width


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (H, W, 3) scaled to exactly ``size`` = (height, width), stretched if the aspects differ."""
    image = _check_image(image)
    height, width = _check_size(size)
    if image.shape[:2] == (height, width):
        return image.copy()
    from PIL import Image

    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, c]), mode="F")
                           .resize((width, height), Image.BILINEAR)) for c in range(3)]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0).astype(np.float32, copy=False)


def fit_size(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled, keeping its aspect ratio, to just cover ``size`` = (height, width); the centre is cut.

    A 500 x 375 photo to (224, 224): scaled to 299 x 224, then columns 37..261 kept."""
    image = _check_image(image)
    height, width = _check_size(size)
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    # round, but never below the target: the crop must fit
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    scaled = resize(image, (new_h, new_w))
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return np.ascontiguousarray(scaled[top:top + height, left:left + width])


# ----------------------------------------------------------------------------- caption folders


@dataclass
class ImageCaptions:
    """Images with one or more captions each, as ``read_caption_folder`` returns them."""

    images: list[np.ndarray] | np.ndarray   # each (H, W, 3) float32 in [0, 1]; an (N, H, W, 3) array if all equal
    captions: list[list[str]]               # captions[i]: the captions of images[i], in file order
    ids: list[str]                          # ids[i]: the image's file name as the captions file names it

    def __len__(self) -> int:
        return len(self.ids)


def read_caption_folder(images_dir: str | Path, captions_file: str | Path, *, size: tuple[int, int] | None = None,
                        limit: int | None = None) -> ImageCaptions:
    """A folder of images and a captions file naming them, in either layout of the public caption sets:

    - Flickr8k's ``Flickr8k.token.txt``: ``1000268201_693b08cb0e.jpg#0<TAB>A child in a pink dress ...``, one
      caption per line; the ``#n`` (the caption's number) is optional and dropped.
    - a CSV with a header naming an ``image`` and a ``caption`` column (Kaggle's Flickr8k ``captions.txt``:
      ``image,caption``); a caption may be quoted, and unquoted commas after the image name stay in the caption.

    Several lines may name one image: its captions are kept in file order, images in order of first mention.
    Image names are paths relative to ``images_dir``. An image the file names that is not in the folder, or a
    line with no caption, is refused with the captions file and line number; blank lines are skipped; images in
    the folder that no line names are ignored.

    ``size``: fit every image to (height, width) with ``fit_size`` as it is read, and return them as one
    ``(N, height, width, 3)`` array -- needed for big sets (Flickr8k's 8,091 photos at full size would take
    18 GB as float32; at 224 x 224, 4.9 GB). ``limit``: read only the first ``limit`` images named."""
    folder, path = Path(images_dir), Path(captions_file)
    if not folder.is_dir():
        fail("images_dir", str(images_dir), "a folder of images")
    if not path.is_file():
        fail("captions_file", str(captions_file), "a captions file (no such file)")
    if size is not None:
        size = _check_size(size)
    check_limit = limit is None or (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1)
    if not check_limit:
        fail("limit", limit, "None or an integer >= 1")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        fail("captions_file", str(captions_file), f"a UTF-8 text file; byte {error.start} is not UTF-8")
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    rows = _csv_rows(lines, path) if _is_csv_header(first) else _token_rows(lines, path)

    captions: dict[str, list[str]] = {}
    for number, image_id, caption in rows:
        if not caption:
            fail("captions_file", f"{path}, line {number}", f"a caption for image {image_id!r}; it is empty")
        if image_id not in captions:
            if limit is not None and len(captions) >= limit:
                continue
            if not (folder / image_id).is_file():
                fail("captions_file", f"{path}, line {number}",
                     f"an image in images_dir={str(folder)!r}; it names {image_id!r}, which is not there")
            captions[image_id] = []
        captions[image_id].append(caption)
    if not captions:
        fail("captions_file", str(path), "at least one line naming an image and its caption; it has none")
    ids = list(captions)
    images = [read_image(folder / image_id) for image_id in ids]
    if size is not None:
        images = np.stack([fit_size(image, size) for image in images])
    return ImageCaptions(images=images, captions=[captions[i] for i in ids], ids=ids)


def _is_csv_header(line: str) -> bool:
    fields = [f.strip().strip('"').lower() for f in line.split(",")]
    return len(fields) >= 2 and "image" in fields and "caption" in fields


def _csv_rows(lines: list[str], path: Path):
    """(line number, image id, caption) of each data row of an image,caption CSV."""
    start = next(i for i, line in enumerate(lines) if line.strip())
    header = [f.strip().lower() for f in next(csv.reader([lines[start]]))]
    image_col, caption_col = header.index("image"), header.index("caption")
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if not line.strip():
            continue
        fields = next(csv.reader([line]))
        if len(fields) > len(header) and caption_col == len(header) - 1:
            # an unquoted comma inside the last column (Kaggle's captions.txt has such lines)
            fields = fields[:caption_col] + [",".join(fields[caption_col:])]
        if len(fields) <= max(image_col, caption_col):
            fail("captions_file", f"{path}, line {index + 1}",
                 f"{len(header)} comma-separated fields ({', '.join(header)}); it has {len(fields)}")
        yield index + 1, fields[image_col].strip(), " ".join(fields[caption_col].split())


def _token_rows(lines: list[str], path: Path):
    """(line number, image id, caption) of each line of a Flickr8k token file."""
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        if "\t" not in line:
            fail("captions_file", f"{path}, line {index + 1}",
                 "lines 'image.jpg#0<TAB>caption' (Flickr8k) or a CSV with an 'image,caption' header; "
                 f"this line has no tab: {line[:60]!r}")
        name, caption = line.split("\t", 1)
        name = name.strip()
        head, sep, tail = name.rpartition("#")
        if sep and tail.isdigit():
            name = head                                # "x.jpg#3" -> "x.jpg"
        yield index + 1, name, " ".join(caption.split())


def decode_image_field(text: str) -> bytes:
    """The bytes of an image sent as base64, as the caption and vqa requests carry it (a browser's
    ``data:image/png;base64,`` prefix allowed); one-line errors naming the field."""
    if not isinstance(text, str) or not text.strip():
        fail("image", text, "an image file as base64")
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        fail("image", text[:20] + ("..." if len(text) > 20 else ""), "an image file as base64")
    if not data:
        fail("image", text[:20], "an image file as base64 (it decodes to no bytes)")
    return data

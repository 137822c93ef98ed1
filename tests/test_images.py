"""Tests for rnnkit.datasets.images: every kind of image file becomes (H, W, 3) float32 RGB in [0, 1], bad files
are refused in one line naming them, the resize rule keeps the centre, and caption folders read in both layouts."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rnnkit.datasets import images as I
from rnnkit.datasets.images import (
    ImageCaptions,
    fit_size,
    read_caption_folder,
    read_image,
    resize,
)


def encode(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def rgb_array(h=6, w=9, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- modes

def test_rgb_png_reads_exactly_from_a_path_and_from_bytes(tmp_path):
    pixels = rgb_array()
    path = tmp_path / "a.png"
    path.write_bytes(encode(Image.fromarray(pixels)))
    for source in (path, str(path), path.read_bytes()):
        image = read_image(source)
        assert image.dtype == np.float32 and image.shape == (6, 9, 3)
        np.testing.assert_array_equal(image, pixels.astype(np.float32) / 255)


def test_jpeg_bmp_gif_webp_tiff_read_close_to_their_pixels():
    flat = np.zeros((16, 16, 3), np.uint8)
    flat[:] = (200, 40, 90)
    for fmt, tolerance in (("JPEG", 3 / 255), ("BMP", 0), ("TIFF", 0), ("WEBP", 6 / 255)):
        image = read_image(encode(Image.fromarray(flat), fmt, **({"quality": 95} if fmt == "JPEG" else {})))
        assert image.shape == (16, 16, 3)
        assert np.abs(image - flat / 255).max() <= tolerance + 1e-6, fmt
    # a GIF is a palette image: its colours come back through the palette
    gif = read_image(encode(Image.fromarray(flat).quantize(colors=2), "GIF"))
    np.testing.assert_allclose(gif[0, 0], np.array([200, 40, 90]) / 255, atol=1e-6)


def test_greyscale_and_one_bit_images_repeat_over_three_channels():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    image = read_image(encode(Image.fromarray(grey, mode="L")))
    assert image.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(image[:, :, c], grey / np.float32(255))
    bits = Image.new("1", (5, 2), 0)
    bits.putpixel((3, 1), 1)
    one = read_image(encode(bits))
    assert one.sum() == 3.0 and one[1, 3].tolist() == [1.0, 1.0, 1.0]


def test_transparency_is_composited_on_white():
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)        # opaque red
    rgba[0, 1] = (255, 0, 0, 0)          # fully transparent: white
    rgba[0, 2] = (0, 0, 0, 51)           # black at alpha 0.2: 0.8 white
    image = read_image(encode(Image.fromarray(rgba, mode="RGBA")))
    np.testing.assert_allclose(image[0], [[1, 0, 0], [1, 1, 1], [0.8, 0.8, 0.8]], atol=1e-6)
    la = read_image(encode(Image.fromarray(np.array([[[0, 0], [0, 255]]], np.uint8), mode="LA")))
    np.testing.assert_allclose(la[0], [[1, 1, 1], [0, 0, 0]])
    # a palette PNG with a transparent index (tRNS): that index reads as white
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), mode="P")
    palette.putpalette([10, 20, 30, 200, 0, 0] + [0] * 762)
    image = read_image(encode(palette, transparency=0))
    np.testing.assert_allclose(image[0], [[1, 1, 1], [200 / 255, 0, 0]], atol=1e-6)


def test_sixteen_bit_greyscale_keeps_its_range():
    values = np.array([[0, 1000, 65535]], np.uint16)
    image = read_image(encode(Image.fromarray(values)))
    assert image.shape == (1, 3, 3)
    np.testing.assert_allclose(image[0, :, 0], values[0] / 65535, rtol=1e-6)


def test_cmyk_jpeg_is_converted_to_rgb():
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))    # no black, full magenta + yellow: red
    image = read_image(encode(cmyk, "JPEG", quality=100))
    assert image.shape == (4, 4, 3) and image[0, 0, 0] > 0.9 and image[0, 0, 1:].max() < 0.1


def test_exif_orientation_is_applied():
    pixels = np.zeros((2, 4, 3), np.uint8)           # 2 rows x 4 columns, stored sideways
    exif = Image.Exif()
    exif[0x0112] = 6                                 # "rotate 90 CW to display"
    image = read_image(encode(Image.fromarray(pixels), "JPEG", exif=exif.tobytes()))
    assert image.shape == (4, 2, 3)


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (3, 3), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    image = read_image(buf.getvalue())
    np.testing.assert_allclose(image[1, 1], [1, 0, 0], atol=1e-6)


def test_one_pixel_image_reads_and_fits():
    image = read_image(encode(Image.new("RGB", (1, 1), (10, 200, 30))))
    assert image.shape == (1, 1, 3)
    fitted = fit_size(image, (224, 224))
    assert fitted.shape == (224, 224, 3)
    np.testing.assert_allclose(fitted, np.broadcast_to(np.array([10, 200, 30]) / 255, (224, 224, 3)), atol=1e-6)


# ----------------------------------------------------------------------------- bad files

def test_a_file_that_is_not_an_image_is_refused_naming_it(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are not pixels\n")
    with pytest.raises(ValueError) as err:
        read_image(path)
    text = str(err.value)
    assert text.startswith(f"image={str(path)!r}: expected an image file Pillow can read (PNG, JPEG, GIF, BMP")
    assert "cannot identify image file" in text and "\n" not in text
    with pytest.raises(ValueError, match=r"^photo='<3 bytes>': expected an image file Pillow can read"):
        read_image(b"abc", name="photo")


def test_empty_missing_and_folder_sources_are_refused(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.jpg': expected an image file .*; the file is empty$"):
        read_image(tmp_path / "empty.jpg")
    with pytest.raises(ValueError, match=r"^image='.*nope.png': expected an image file \(no such file\)$"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ValueError, match=r"expected an image file, not a folder$"):
        read_image(tmp_path)
    with pytest.raises(ValueError, match=r"^image='ndarray': expected a path \(str or Path\) or the bytes"):
        read_image(np.zeros((2, 2, 3)))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_refused_not_padded(fmt, tmp_path):
    data = encode(Image.fromarray(rgb_array(64, 64)), fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as err:
        read_image(path)
    assert str(err.value).startswith(f"image={str(path)!r}: expected an image file Pillow can read")
    assert "truncated" in str(err.value) or "broken" in str(err.value) or "unrecognized" in str(err.value)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (1-bit grey) and whose data is one tiny compressed row."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def test_images_over_the_pixel_limit_are_refused_from_the_header():
    # 7,000 x 6,000 = 42 M pixels: over rnnkit's 40 M, under Pillow's own limit; nothing is decoded
    bomb = png_header_only(7000, 6000)
    with pytest.raises(ValueError) as err:
        read_image(bomb)
    assert str(err.value) == (f"image='<{len(bomb)} bytes>': expected an image of at most 40,000,000 pixels "
                              "(rnnkit.datasets.images.MAX_IMAGE_PIXELS); it claims 7000 x 6000")
    # 100,000 x 100,000 (a classic bomb): Pillow refuses it first; still one line
    with pytest.raises(ValueError, match=r"^image='<\d+ bytes>': expected (an image of at most|an image file)"):
        read_image(png_header_only(100_000, 100_000))


def test_the_limit_is_a_module_constant(monkeypatch):
    monkeypatch.setattr(I, "MAX_IMAGE_PIXELS", 50)
    read_image(encode(Image.new("RGB", (10, 5))))
    with pytest.raises(ValueError, match="at most 50 pixels .* it claims 10 x 6"):
        read_image(encode(Image.new("RGB", (10, 6))))


# ----------------------------------------------------------------------------- resize rule

def halves(h: int, w: int) -> np.ndarray:
    """Left third red, middle third green, right third blue."""
    image = np.zeros((h, w, 3), np.float32)
    image[:, : w // 3, 0] = 1
    image[:, w // 3: 2 * w // 3, 1] = 1
    image[:, 2 * w // 3:, 2] = 1
    return image


def test_fit_size_keeps_the_aspect_and_cuts_the_centre():
    wide = halves(100, 300)                       # scaled to 60 x 180, centre 60 columns kept: all green
    fitted = fit_size(wide, (60, 60))
    assert fitted.shape == (60, 60, 3) and fitted.dtype == np.float32
    np.testing.assert_allclose(fitted[:, 2:-2], np.broadcast_to([0, 1, 0], (60, 56, 3)), atol=1e-5)
    tall = np.transpose(halves(100, 300), (1, 0, 2))
    assert fit_size(tall, (20, 40)).shape == (20, 40, 3)     # 300x100 -> 120x40 -> rows 50..70
    photo = np.random.default_rng(0).random((375, 500, 3), dtype=np.float32)
    out = fit_size(photo, (224, 224))
    assert out.shape == (224, 224, 3) and 0 <= out.min() and out.max() <= 1


def test_resize_stretches_to_exactly_the_size_and_averages_when_shrinking():
    image = halves(10, 30)
    out = resize(image, (5, 3))                   # each output column mostly one third: red, green, blue
    assert out.shape == (5, 3, 3) and np.array_equal(out.argmax(axis=2), np.tile([0, 1, 2], (5, 1)))
    np.testing.assert_allclose(out[0], out[4])    # rows were all alike
    np.testing.assert_allclose(out.sum(axis=2), 1.0, atol=1e-5)   # a weighted average of the thirds
    checker = np.indices((64, 64)).sum(0) % 2     # a 1-pixel checkerboard shrinks to grey (antialiased)
    grey = resize(np.repeat(checker[:, :, None], 3, 2).astype(np.float32), (8, 8))
    np.testing.assert_allclose(grey, 0.5, atol=0.02)
    same = halves(4, 6)
    assert resize(same, (4, 6)) is not same and np.array_equal(resize(same, (4, 6)), same)


def test_resize_refuses_bad_sizes_and_images():
    with pytest.raises(ValueError, match=r"^size=\(0, 4\): expected a \(height, width\) pair of integers >= 1$"):
        fit_size(halves(3, 3), (0, 4))
    with pytest.raises(ValueError, match=r"^size=224: expected a \(height, width\) pair"):
        resize(halves(3, 3), 224)
    with pytest.raises(ValueError, match=r"^image=\(3, 3\): expected a \(H, W, 3\) array"):
        resize(np.zeros((3, 3)), (2, 2))


# ----------------------------------------------------------------------------- caption folders

@pytest.fixture
def folder(tmp_path) -> Path:
    for name, colour in (("a.jpg", (255, 0, 0)), ("b.png", (0, 0, 255))):
        Image.new("RGB", (8, 4), colour).save(tmp_path / name)
    return tmp_path


def test_flickr8k_token_layout(folder):
    (folder / "Flickr8k.token.txt").write_text(
        "a.jpg#0\tA red  thing .\na.jpg#1\tSomething red\n\nb.png#0\tA blue one\na.jpg#2\tred , again\n")
    data = read_caption_folder(folder, folder / "Flickr8k.token.txt")
    assert isinstance(data, ImageCaptions) and len(data) == 2
    assert data.ids == ["a.jpg", "b.png"]
    assert data.captions == [["A red thing .", "Something red", "red , again"], ["A blue one"]]
    assert [im.shape for im in data.images] == [(4, 8, 3), (4, 8, 3)]
    assert data.images[0][0, 0, 0] > 0.95 and data.images[1][0, 0, 2] > 0.95


def test_csv_layout_with_quoted_and_unquoted_commas(folder):
    (folder / "captions.txt").write_text(
        '\ufeffimage,caption\na.jpg,"A red thing, small"\nb.png,A blue one, seen from above\na.jpg,red\n',
        encoding="utf-8")
    data = read_caption_folder(str(folder), str(folder / "captions.txt"))
    assert data.ids == ["a.jpg", "b.png"]
    assert data.captions == [["A red thing, small", "red"], ["A blue one, seen from above"]]


def test_size_stacks_fitted_images_and_limit_reads_the_first(folder):
    (folder / "c.csv").write_text("caption,image\nred,a.jpg\nblue,b.png\n")
    data = read_caption_folder(folder, folder / "c.csv", size=(3, 3))
    assert isinstance(data.images, np.ndarray) and data.images.shape == (2, 3, 3, 3)
    assert data.captions == [["red"], ["blue"]]
    one = read_caption_folder(folder, folder / "c.csv", limit=1)
    assert one.ids == ["a.jpg"] and len(one.images) == 1


def test_a_missing_image_names_the_captions_file_and_line(folder):
    (folder / "t.txt").write_text("a.jpg#0\tred\nmissing.jpg#0\tnothing\n")
    with pytest.raises(ValueError) as err:
        read_caption_folder(folder, folder / "t.txt")
    assert str(err.value) == (f"captions_file='{folder / 't.txt'}, line 2': expected an image in "
                              f"images_dir={str(folder)!r}; it names 'missing.jpg', which is not there")
    (folder / "c.csv").write_text("image,caption\n\nb.png,blue\ngone.png,x\n")
    with pytest.raises(ValueError, match=r"c.csv, line 4': expected an image in images_dir=.*'gone.png'"):
        read_caption_folder(folder, folder / "c.csv")


def test_an_empty_caption_names_the_line(folder):
    (folder / "t.txt").write_text("a.jpg#0\tred\nb.png#0\t   \n")
    with pytest.raises(ValueError, match=r"^captions_file='.*t.txt, line 2': expected a caption for image "
                                         r"'b.png'; it is empty$"):
        read_caption_folder(folder, folder / "t.txt")
    (folder / "c.csv").write_text('image,caption\na.jpg,""\n')
    with pytest.raises(ValueError, match=r"c.csv, line 2': expected a caption for image 'a.jpg'; it is empty$"):
        read_caption_folder(folder, folder / "c.csv")


def test_malformed_caption_files_and_arguments_are_refused(folder):
    (folder / "t.txt").write_text("a.jpg red, no tab\n")
    with pytest.raises(ValueError, match=r"t.txt, line 1': expected lines 'image.jpg#0<TAB>caption' \(Flickr8k\) "
                                         r"or a CSV with an 'image,caption' header; this line has no tab"):
        read_caption_folder(folder, folder / "t.txt")
    (folder / "blank.txt").write_text("\n\n")
    with pytest.raises(ValueError, match=r"expected at least one line naming an image and its caption"):
        read_caption_folder(folder, folder / "blank.txt")
    (folder / "latin1.txt").write_bytes("a.jpg#0\tcaf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"expected a UTF-8 text file; byte 11 is not UTF-8"):
        read_caption_folder(folder, folder / "latin1.txt")
    with pytest.raises(ValueError, match=r"^images_dir='.*nowhere': expected a folder of images$"):
        read_caption_folder(folder / "nowhere", folder / "t.txt")
    with pytest.raises(ValueError, match=r"^captions_file='.*none.txt': expected a captions file"):
        read_caption_folder(folder, folder / "none.txt")
    with pytest.raises(ValueError, match=r"^limit=0: expected None or an integer >= 1$"):
        read_caption_folder(folder, folder / "t.txt", limit=0)


def test_a_broken_image_in_a_folder_names_the_image(folder):
    (folder / "a.jpg").write_bytes(b"not a jpeg")
    (folder / "t.txt").write_text("a.jpg#0\tred\n")
    with pytest.raises(ValueError, match=r"^image='.*a.jpg': expected an image file Pillow can read"):
        read_caption_folder(folder, folder / "t.txt")

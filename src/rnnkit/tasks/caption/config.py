"""Image captioning's configs: CaptionConfig (what `rnnkit caption train` and ``Captioner`` take), DescribeConfig
(how `rnnkit caption describe` and `eval` decode: the arguments of ``Captioner.caption``) and CaptionRequest (what
``Captioner.apply`` and ``POST .../caption`` take: the image as base64).

Imports no torch: every ``rnnkit caption ... --help`` is built from these classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rnnkit import _checks
from rnnkit.config import field
from rnnkit.training.config import TrainConfig

DATASETS = ("digit-strips", "scenes")
ENCODERS = ("small-cnn", "efficientnet-lite0")       # rnnkit.nn.vision.ENCODERS (that module imports torch)
MODELS = ("show-attend-tell", "show-tell")
CELLS = ("lstm", "gru")
MAX_IMAGES = 1_000_000
MAX_IMAGE_SIDE = 1024
# The decoding cap: an output that never writes <end> stops after CAP_FACTOR x the longest training caption +
# CAP_EXTRA words, and says so (``capped``); a request may ask for fewer, never for more than MAX_CAPTION_WORDS.
CAP_FACTOR, CAP_EXTRA = 2, 5
MAX_CAPTION_WORDS = 1000

# Training stops on evidence (4 epochs without a lower validation loss; the best epoch's weights kept) or at the
# time budget. min_steps: a small folder of photos still gets enough updates.
TRAIN_DEFAULTS = TrainConfig(epochs=60, batch_size=64, min_steps=1000, auto_batch=True, lr=2e-3, schedule="auto",
                             clip_grad_norm=5.0, early_stop_patience=4, log_every=50)


@dataclass
class CaptionConfig:
    """Everything `rnnkit caption train` takes: the data, the image encoder, the decoder, the training options."""

    dataset: Optional[str] = field("digit-strips", "named data when --images is not given: digit-strips (real "
                                                   "handwriting: 3-6 of scikit-learn's 8x8 digits side by side, "
                                                   "captioned with their words) or scenes (SYNTHETIC shapes, "
                                                   "colours, sizes, counts and positions that rnnkit draws)",
                                   choices=DATASETS, group="data")
    images: Optional[str] = field(None, "your own photos: a folder of images (with --captions, the Flickr8k "
                                        "layout)", group="data")
    captions: Optional[str] = field(None, "the captions of --images: lines 'image.jpg#0<TAB>a caption' (several "
                                          "per image) or a CSV with image,caption columns", group="data")
    train_images: int = field(10_000, f"digit-strips/scenes: training images built (at most {MAX_IMAGES:,})",
                              group="data")
    val_images: int = field(500, "digit-strips/scenes: validation images (another pool of digits for strips)",
                            group="data")
    test_images: int = field(1_000, "digit-strips/scenes: test images (strips of digit images no training strip "
                                    "uses; for scenes also as many of the compositional split)", group="data")
    data_seed: int = field(0, f"seed the strips and scenes are built from (0 to {_checks.MAX_SEED:,})",
                           group="data")
    val_frac: float = field(0.1, "--images: share of the images held out for validation (by a hash of the file "
                                 "name: all captions of an image stay together)", group="data")
    test_frac: float = field(0.1, "--images: share of the images held out for the test report", group="data")
    image_size: int = field(128, "--images with the small-cnn encoder: photos of different sizes are scaled so "
                                 "their shorter side is this many pixels and centre-cropped to a square (the "
                                 "pretrained encoder takes 224x224 the same way; strips and scenes keep their "
                                 f"own size); at most {MAX_IMAGE_SIDE}", group="data")
    num_words: Optional[int] = field(None, "keep the most frequent caption words; the rest become <unk> (None: "
                                           f"every word seen --min-count times; at most {_checks.MAX_VOCAB:,})",
                                     group="data")
    min_count: int = field(1, "caption words seen fewer times than this in training become <unk>", group="data")
    encoder: str = field("small-cnn", "image encoder: small-cnn (trained from scratch: strips, scenes) or "
                                      "efficientnet-lite0 (ImageNet-pretrained; 1280 x 7 x 7 features of a 224x224 "
                                      "image)", choices=ENCODERS, group="model")
    fine_tune_encoder: Optional[bool] = field(None, "train the encoder with the decoder (None: yes for small-cnn, "
                                                    "which starts from random weights; no for the pretrained "
                                                    "encoder, whose features are then computed once per image and "
                                                    "cached)", group="model")
    encoder_channels: int = field(32, "small-cnn: channels of its convolutions (at most 1024)", group="model")
    encoder_blocks: int = field(3, "small-cnn: conv blocks, each halving the grid (at most 6)", group="model")
    model: str = field("show-attend-tell", "decoder: show-attend-tell (soft attention over the feature grid at "
                                           "every step, doubly stochastic regulariser) or show-tell (the pooled "
                                           "image, embedded, is the decoder's first input)",
                       choices=MODELS, group="model")
    cell: str = field("lstm", "recurrent cell of the decoder", choices=CELLS, group="model")
    embedding_size: int = field(128, f"word embedding size (at most {_checks.MAX_WIDTH:,})", group="model")
    hidden_size: int = field(256, f"decoder units (at most {_checks.MAX_WIDTH:,})", group="model")
    attention_size: int = field(128, f"show-attend-tell: size of the additive attention's hidden layer (at most "
                                     f"{_checks.MAX_WIDTH:,})", group="model")
    doubly_stochastic: float = field(0.0, "show-attend-tell: weight of the regulariser mean_i (1 - sum_t "
                                          "alpha_ti)^2, which asks every grid cell to get about one step's "
                                          "attention over the caption (Xu et al. 2015 used 1; here it tied on "
                                          "strips and held scenes back, so 0: off)", group="model")
    dropout: float = field(0.2, "dropout before the output layer", group="model")
    train: TrainConfig = field(TRAIN_DEFAULTS, "training options, flat flags --lr, --epochs, ...")

    def __post_init__(self) -> None:
        if self.images is not None or self.captions is not None:
            if self.images is None or self.captions is None:
                missing = "images" if self.images is None else "captions"
                _checks.fail(missing, None, "--images DIR and --captions FILE together (a folder of photos and "
                                            "their captions)")
            self.dataset = None                  # the photos are the data: config.json names no dataset
        else:
            _checks.check_choice("dataset", self.dataset, DATASETS)
        for name in ("train_images", "val_images", "test_images"):
            _checks.check_int(name, getattr(self, name), min=1 if name == "train_images" else 0, cap=MAX_IMAGES)
        _checks.check_int("data_seed", self.data_seed, min=0, cap=_checks.MAX_SEED)
        _checks.check_float("val_frac", self.val_frac, min=0, max=0.5, min_open=True)
        _checks.check_float("test_frac", self.test_frac, min=0, max=0.5)
        _checks.check_int("image_size", self.image_size, min=8, cap=MAX_IMAGE_SIDE)
        _checks.check_int("num_words", self.num_words, min=5, cap=_checks.MAX_VOCAB, allow_none=True)
        _checks.check_int("min_count", self.min_count, min=1, cap=_checks.MAX_COUNT)
        _checks.check_choice("encoder", self.encoder, ENCODERS)
        if self.fine_tune_encoder is not None and not isinstance(self.fine_tune_encoder, bool):
            _checks.fail("fine_tune_encoder", self.fine_tune_encoder, "True, False or None")
        _checks.check_int("encoder_channels", self.encoder_channels, min=1, cap=1024)
        _checks.check_int("encoder_blocks", self.encoder_blocks, min=1, cap=6)
        _checks.check_choice("model", self.model, MODELS)
        _checks.check_choice("cell", self.cell, CELLS)
        for name in ("embedding_size", "hidden_size", "attention_size"):
            _checks.check_int(name, getattr(self, name), min=1, cap=_checks.MAX_WIDTH)
        _checks.check_float("doubly_stochastic", self.doubly_stochastic, min=0, max=_checks.MAX_PENALTY)
        _checks.check_float("dropout", self.dropout, min=0, max=1, max_open=True)
        h = self.hidden_size
        _checks.check_size("hidden_size, embedding_size", (h, self.embedding_size),
                           4 * h * (self.embedding_size + 2048 + h))
        if not isinstance(self.train, TrainConfig):
            _checks.fail("train", self.train, "a TrainConfig")

    @property
    def fine_tunes(self) -> bool:
        """Whether the encoder trains: fine_tune_encoder, or by default only a from-scratch encoder."""
        return self.encoder == "small-cnn" if self.fine_tune_encoder is None else self.fine_tune_encoder


@dataclass
class DescribeConfig:
    """How `rnnkit caption describe` and `eval` decode: the arguments of Captioner.caption (same names)."""

    beam: Optional[int] = field(None, f"beam search with this many beams per image (None: greedy; at most "
                                      f"{_checks.MAX_BEAM})", group="decoding")
    greedy: bool = field(True, "take the most likely word at each step; --no-greedy draws it at random (with "
                               "--temperature, --seed)", group="decoding")
    temperature: float = field(1.0, f"sampling: below 1 sharpens, above 1 flattens (at most "
                                    f"{_checks.MAX_TEMPERATURE:g})", group="decoding")
    seed: Optional[int] = field(None, "sampling: seed of the draws (None: random)", group="decoding")
    max_tokens: Optional[int] = field(None, f"most words of a caption (None: {CAP_FACTOR} x the longest training "
                                            f"caption + {CAP_EXTRA}; a caption that reaches it says so)",
                                      group="decoding")

    def __post_init__(self):
        _checks.check_int("beam", self.beam, min=1, cap=_checks.MAX_BEAM, allow_none=True)
        _checks.check_float("temperature", self.temperature, min=0, max=_checks.MAX_TEMPERATURE)
        _checks.check_int("seed", self.seed, min=0, max=2**63 - 1, allow_none=True)
        _checks.check_int("max_tokens", self.max_tokens, min=1, cap=MAX_CAPTION_WORDS, allow_none=True)


@dataclass
class CaptionRequest:
    """One image to describe: what ``Captioner.apply`` and ``POST .../caption`` take; ``limits`` are what the
    server holds a request to (see rnnkit.config.field)."""

    image: str = field("", "the image file (PNG, JPEG, GIF, BMP, ...) as base64 (a data: URL prefix is allowed)",
                       limits={"min_length": 1, "max_length": 20_000_000})
    beam: Optional[int] = field(None, "beam search with this many beams (none: greedy)",
                                limits={"ge": 1, "le": "max_beam"})
    greedy: bool = field(True, "take the most likely word at each step; false draws it at random")
    temperature: float = field(1.0, "sampling: below 1 sharpens the distribution, above 1 flattens it",
                               limits={"gt": 0, "le": 5})
    seed: Optional[int] = field(None, "sampling: seed of the draws (none: random)", limits={"ge": 0, "le": 2**63 - 1})
    max_tokens: Optional[int] = field(None, "most words (none: twice the longest training caption + 5)",
                                      limits={"ge": 1, "le": MAX_CAPTION_WORDS})
    attention: bool = field(False, "send each word's attention over the feature grid (rows x columns)")

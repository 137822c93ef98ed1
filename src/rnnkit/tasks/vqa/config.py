"""Visual question answering's configs: VQAConfig (the model and its training: what ``VisualQA`` takes),
DataConfig (where `rnnkit vqa train` reads its data) and VQARequest (what ``VisualQA.apply`` and
``POST .../answer`` take).

Imports no torch: every ``rnnkit vqa ... --help`` is built from these classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rnnkit import _checks
from rnnkit.config import field
from rnnkit.training.config import TrainConfig

CELLS = ("lstm", "gru")
MERGES = ("film", "none", "concat", "attention", "relation")
ENCODERS = ("small-cnn", "efficientnet-lite0")
DATASETS = ("sort-of-clevr",)
MAX_IMAGE_SIZE = 512           # pixels a side an image is resized to
MAX_GRID = 64                  # cells a side of the encoder's grid


@dataclass
class VQAConfig:
    merge: str = field("film", "how image and question meet: film (the question scales and shifts the grid's "
                               "channels in --film-blocks convolution blocks, then a max over the cells), "
                               "attention (two hops over the image's grid guided by the question: find the object "
                               "it names, then relate every cell to it), relation (a relation network over every "
                               "pair of cells, Santoro et al. 2017; quadratic in the cells), concat (the grid "
                               "flattened next to the question, CNN+MLP), or none (the question alone: a baseline "
                               "that shows how much the image is used)", choices=MERGES, group="model")
    encoder: str = field("small-cnn", "image encoder: small-cnn (trained from scratch; suits small images) or "
                                      "efficientnet-lite0 (ImageNet-pretrained, frozen unless --fine-tune)",
                         choices=ENCODERS, group="model")
    fine_tune: bool = field(False, "train the pretrained encoder's weights too (small-cnn always trains)",
                            group="model")
    channels: int = field(32, f"small-cnn: channels of each block (at most {_checks.MAX_WIDTH:,})", group="model")
    blocks: int = field(3, "small-cnn: blocks, each halving the image: 75x75 becomes a 10x10 grid with 3 (at "
                           "most 8)", group="model")
    film_blocks: int = field(3, "film: question-modulated convolution blocks over the grid (at most 8)",
                             group="model")
    image_size: int = field(75, "images are resized to this many pixels a side (short side, then centre crop; the "
                                "pretrained encoder takes 224 whatever this says; at most "
                                f"{MAX_IMAGE_SIZE})", group="data")
    cell: str = field("lstm", "recurrent cell that reads the question", choices=CELLS, group="model")
    embedding_size: int = field(32, f"word embedding size (at most {_checks.MAX_WIDTH:,})", group="model")
    question_size: int = field(128, f"recurrent units reading the question (at most {_checks.MAX_WIDTH:,})",
                               group="model")
    hidden_size: int = field(256, "units of the merge's and the answer's MLP layers (at most "
                                  f"{_checks.MAX_WIDTH:,})", group="model")
    dropout: float = field(0.0, "dropout before the answer layer", group="model")
    num_words: Optional[int] = field(None, "keep the most frequent question words, the rest become <unk> (None: "
                                           f"every word; at most {_checks.MAX_VOCAB:,})", group="data")
    # 30 minutes: where the film default passes 99% / 90% on Sort-of-CLEVR on one CPU thread (docs/vqa.md); an
    # epoch of the 10,000 default scenes is about 5,200 steps, so the budget, not the epochs, ends a default run.
    train: TrainConfig = field(TrainConfig(epochs=200, batch_size=64, lr=1e-3, clip_grad_norm=5.0,
                                           early_stop_patience=10, monitor="val_error", log_every=100,
                                           max_minutes=30.0),
                               "training options")

    def __post_init__(self):
        _checks.check_choice("merge", self.merge, MERGES)
        _checks.check_choice("encoder", self.encoder, ENCODERS)
        _checks.check_choice("cell", self.cell, CELLS)
        for name, cap in (("channels", _checks.MAX_WIDTH), ("blocks", 8), ("film_blocks", 8),
                          ("image_size", MAX_IMAGE_SIZE), ("embedding_size", _checks.MAX_WIDTH),
                          ("question_size", _checks.MAX_WIDTH), ("hidden_size", _checks.MAX_WIDTH)):
            _checks.check_int(name, getattr(self, name), min=1, cap=cap)
        if self.image_size < 8:
            _checks.fail("image_size", self.image_size, "at least 8 pixels a side")
        _checks.check_int("num_words", self.num_words, min=3, cap=_checks.MAX_VOCAB, allow_none=True)
        if not isinstance(self.fine_tune, bool):
            _checks.fail("fine_tune", self.fine_tune, "True or False")
        _checks.check_float("dropout", self.dropout, min=0, max=1, max_open=True)
        h = self.hidden_size
        _checks.check_size("hidden_size, question_size", (h, self.question_size),
                           4 * self.question_size * (self.embedding_size + self.question_size) + 6 * h * h)
        if not isinstance(self.train, TrainConfig):
            _checks.fail("train", self.train, "a TrainConfig")


@dataclass
class DataConfig:
    """Where `rnnkit vqa train` reads its data: the rendered Sort-of-CLEVR scenes, or a user's CSV files."""

    dataset: Optional[str] = field("sort-of-clevr", "scenes rnnkit renders (synthetic): 6 coloured squares and "
                                                    "circles, 6 questions each (3 non-relational, 3 relational); "
                                                    "ignored with --train", choices=DATASETS)
    scenes: int = field(10_000, "sort-of-clevr: training scenes (the validation and test scenes are "
                                "--val-scenes and --test-scenes more, from their own seeds)")
    val_scenes: int = field(500, "sort-of-clevr: validation scenes (pick the best epoch, stop early)")
    test_scenes: int = field(1_000, "sort-of-clevr: test scenes (the report after training)")
    data_seed: int = field(0, "sort-of-clevr: seed of the scenes (the same seed renders the same scenes)")
    train: Optional[str] = field(None, "a CSV of image,question,answer rows (a header line; image paths relative "
                                       "to the CSV's folder): your own training questions")
    dev: Optional[str] = field(None, "with --train: validation questions, the same CSV layout; none given: "
                                     "--val-frac of the training images' questions")
    test: Optional[str] = field(None, "with --train: test questions, the same CSV layout (the report after "
                                      "training)")
    val_frac: float = field(0.1, "with --train and no --dev: the share of training images held out for "
                                 "validation, with all their questions (0: none)")
    split_seed: int = field(0, "seed of the --val-frac hold-out (0 to " f"{_checks.MAX_SEED:,})")

    def __post_init__(self):
        _checks.check_choice("dataset", self.dataset, DATASETS + (None,))
        for name in ("scenes", "val_scenes", "test_scenes"):
            _checks.check_int(name, getattr(self, name), min=1 if name == "scenes" else 0, cap=1_000_000)
        _checks.check_int("data_seed", self.data_seed, min=0, cap=_checks.MAX_SEED)
        _checks.check_float("val_frac", self.val_frac, min=0, max=1, max_open=True)
        _checks.check_int("split_seed", self.split_seed, min=0, cap=_checks.MAX_SEED)


@dataclass
class VQARequest:
    """One question about one image: what ``VisualQA.apply`` and ``POST .../answer`` take."""

    image: str = field("", "the image, base64-encoded (PNG, JPEG, ...; a data: URL prefix is allowed)",
                       limits={"min_length": 1, "max_length": 20_000_000})
    question: str = field("", "the question about the image, in words", limits={"min_length": 1,
                                                                                 "max_length": "max_text_chars"})

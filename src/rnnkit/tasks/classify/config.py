"""Classification's configs: ClassifyConfig (the model and its training: what ``SequenceClassifier`` takes)
and DataConfig (where `rnnkit classify train` reads its data).

Imports no torch: every ``rnnkit classify ... --help`` is built from these classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rnnkit import _checks
from rnnkit.config import field
from rnnkit.datasets.files import SPLIT_NAMES
from rnnkit.datasets.long_format import TIME_INPUTS
from rnnkit.training.config import TrainConfig

# The models one run trains; "auto" picks one of them on validation (a short tournament, see auto.py).
TRAINED_MODELS = ("rnn", "gru", "lstm", "bilstm", "bigru", "mingru", "minlstm", "conv1d", "cnn-lstm", "bow", "rocket")
MODELS = ("auto", *TRAINED_MODELS)
# What --model auto tries when --candidates is not given. A default must earn its place on a registered set, and
# no network did: on IMDB and Rotten Tomatoes (2,000 reviews to all of them) every network scored below bow, and
# on the five UCR sets below ROCKET or level with it (bench/defaults_classify.py, docs/benchmarks.md). So the
# default is the baseline of the data's kind, fit at once; --candidates adds networks to a tournament.
AUTO_CANDIDATES = {"text": ("bow",), "series": ("rocket",)}
TEXT_ONLY, SERIES_ONLY = ("bow",), ("rocket",)
# --model auto compares by k-fold cross-validation below this many training + validation rows (a hold-out set
# of a few rows would pick on noise), else on the validation rows.
CV_BELOW = 500
CV_FOLDS = 5
MAX_SEEDS = 100
POOLINGS = ("last", "max", "mean", "maxmean", "concat")
CLASS_WEIGHTS = ("none", "balanced")
MIN_GRID_STEP, MAX_GRID_STEP = 1e-6, 1e9    # slot width of a time grid, in the step column's units
MAX_KERNEL_SIZE = 1024        # convolution width, in steps


@dataclass
class ClassifyConfig:
    model: str = field("auto", "model type; auto picks among --candidates on validation accuracy (cross-validated "
                               f"below {CV_BELOW} training + validation rows) within --max-minutes; bow is the tf-idf "
                               "logistic-regression baseline (text), rocket the random-convolution-kernels + ridge "
                               "baseline (series)", choices=MODELS, group="model")
    candidates: list[str] = field([], "the models --model auto tries, in this order (a later one must beat an "
                                      "earlier one by more than the noise), e.g. rocket conv1d gru; none given: "
                                      + " for texts, ".join(" and ".join(m) for m in AUTO_CANDIDATES.values())
                                      + " for series (no network beat them on the registered sets)",
                                  choices=TRAINED_MODELS, group="model")
    seeds: int = field(1, "train this many seeds (--seed, --seed + 1, ...) of the model and report the mean and "
                          "standard deviation of their accuracies, and the accuracy of their averaged probabilities; "
                          "the run keeps the first seed's model; each seed has the whole --max-minutes (at most "
                          f"{MAX_SEEDS})", group="training")
    hidden_size: int = field(64, "recurrent units per direction and layer (also conv filters; at most "
                                 f"{_checks.MAX_WIDTH:,})", group="model")
    num_layers: Optional[int] = field(None, "stacked recurrent (or conv) layers (None: 3 for conv1d, whose width-"
                                            "5 convolutions see little alone, else 1; at most "
                                            f"{_checks.MAX_LAYERS})", group="model")
    embedding_size: int = field(64, "word embedding size (text); set by --embeddings when given (at most "
                                    f"{_checks.MAX_WIDTH:,})", group="model")
    num_words: int = field(30000, "keep the most frequent words, the rest become <unk> (text; at most "
                                  f"{_checks.MAX_VOCAB:,})", group="data")
    maxlen: Optional[int] = field(None, "steps kept per sequence (None: 400 words of a text, every step of a "
                                        "series); longer ones are truncated, shorter ones padded (the padding "
                                        "is masked, so its side never matters; at most "
                                        f"{_checks.MAX_SEQ_LEN:,})", group="data")
    truncating: str = field("pre", "where long sequences lose steps: pre keeps the end, post keeps the start",
                            choices=("pre", "post"), group="data")
    pooling: str = field("maxmean", "how the sequence of outputs becomes one vector: the last state, max, mean, "
                                    "maxmean (both), concat (last, max and mean; ULMFiT's)", choices=POOLINGS,
                         group="model")
    dropout: float = field(0.3, "dropout on the inputs of every layer (one mask per sequence) and before the head",
                           group="model")
    recurrent_dropout: float = field(0.0, "recurrent dropout rate (weight-drop on the recurrent weights keeps "
                                          "the fused kernel)", group="model")
    kernel_size: int = field(5, f"convolution width (conv1d, cnn-lstm; at most {MAX_KERNEL_SIZE:,})", group="model")
    embeddings: Optional[str] = field(None, "pretrained word vectors: glove-50d or a GloVe text file", group="model")
    encoder_from: Optional[str] = field(None, "start the embedding and recurrent layers from this word-level "
                                              "language-model run (rnnkit textgen train --level word): its cell, "
                                              "width, layers and embedding size are taken, and fine-tuning uses "
                                              "--lr-decay, --gradual-unfreezing and the slanted schedule (see "
                                              "docs/transfer.md)", group="model")
    lr_decay: float = field(2.6, "with --encoder-from: each layer group below the head learns this many times "
                                 "slower than the one above (discriminative learning rates; 1: one rate)",
                            group="training")
    gradual_unfreezing: bool = field(True, "with --encoder-from: train the head alone for the first epoch, then "
                                           "one more layer group each epoch, top down", group="training")
    unfreeze_every: Optional[int] = field(None, "with --gradual-unfreezing: one more layer group after this many "
                                                "updates, or at an epoch's end if that comes first (None: at each "
                                                "epoch's end; a large set on a short budget may not finish one "
                                                f"epoch; at most {_checks.MAX_STEPS:,})", group="training")
    freeze_embeddings: bool = field(False, "keep the pretrained vectors fixed (else fine-tune them)", group="model")
    class_weight: str = field("none", "balanced: weight each class's loss by n / (classes x its count), so a "
                                      "rare class counts as much as a common one", choices=CLASS_WEIGHTS,
                              group="training")
    bow_c: float = field(4.0, "inverse regularisation strength of the bow logistic regression (at most "
                              f"{_checks.MAX_PENALTY:g})", group="model")
    bow_min_df: int = field(2, f"bow: ignore n-grams found in fewer documents (at most {_checks.MAX_COUNT:,})",
                            group="model")
    rocket_kernels: int = field(10000, "rocket: random convolution kernels (2 features each; fewer is faster; "
                                       f"at most {_checks.MAX_ROCKET_KERNELS:,})", group="model")
    # Budgets in updates and time, stopping on evidence: epochs go on until validation has not improved for 5
    # epochs, but at least 300 updates (a 36-series set at batch 8 is 4 updates an epoch) and at most 5 minutes
    # (the whole of --model auto's tournament). Measured in bench/defaults_classify.py.
    train: TrainConfig = field(TrainConfig(epochs=200, batch_size=64, lr=2e-3, clip_grad_norm=5.0,
                                           early_stop_patience=5, min_steps=300, auto_batch=True, max_minutes=5.0,
                                           log_every=20), "training options")

    def __post_init__(self):
        _checks.check_choice("model", self.model, MODELS)
        if not isinstance(self.candidates, (list, tuple)):
            _checks.fail("candidates", self.candidates, f"a list of models ({', '.join(TRAINED_MODELS)})")
        for name in self.candidates:
            _checks.check_choice("candidates", name, TRAINED_MODELS)
        if len(set(self.candidates)) != len(self.candidates):
            _checks.fail("candidates", list(self.candidates), "each model once")
        _checks.check_int("seeds", self.seeds, min=1, cap=MAX_SEEDS)
        _checks.check_int("num_layers", self.num_layers, min=1, cap=_checks.MAX_LAYERS, allow_none=True)
        for name, cap in (("hidden_size", _checks.MAX_WIDTH),
                          ("embedding_size", _checks.MAX_WIDTH), ("num_words", _checks.MAX_VOCAB),
                          ("kernel_size", MAX_KERNEL_SIZE), ("bow_min_df", _checks.MAX_COUNT),
                          ("rocket_kernels", _checks.MAX_ROCKET_KERNELS)):
            _checks.check_int(name, getattr(self, name), min=1, cap=cap)
        _checks.check_int("maxlen", self.maxlen, min=1, cap=_checks.MAX_SEQ_LEN, allow_none=True)
        # Bidirectional LSTM: 2 directions x 4 gates, each layer after the first reads 2 x hidden_size.
        h, layers = self.hidden_size, self.layers()
        _checks.check_size("hidden_size, num_layers", (h, layers),
                           8 * h * (self.embedding_size + h + (layers - 1) * 3 * h))
        _checks.check_choice("truncating", self.truncating, ("pre", "post"))
        _checks.check_choice("pooling", self.pooling, POOLINGS)
        _checks.check_choice("class_weight", self.class_weight, CLASS_WEIGHTS)
        _checks.check_float("dropout", self.dropout, min=0, max=1, max_open=True)
        _checks.check_float("recurrent_dropout", self.recurrent_dropout, min=0, max=1, max_open=True)
        _checks.check_float("bow_c", self.bow_c, min=0, min_open=True, max=_checks.MAX_PENALTY)
        if not isinstance(self.train, TrainConfig):
            _checks.fail("train", self.train, "a TrainConfig")
        _checks.check_float("lr_decay", self.lr_decay, min=1, max=100)
        _checks.check_int("unfreeze_every", self.unfreeze_every, min=1, cap=_checks.MAX_STEPS, allow_none=True)
        if self.encoder_from is not None:
            self._check_encoder_from()

    def _check_encoder_from(self) -> None:
        """--encoder-from starts a recurrent network read in one direction, from text: refuse what is not."""
        if not isinstance(self.encoder_from, str) or not self.encoder_from:
            _checks.fail("encoder_from", self.encoder_from, "the path of a language-model run directory")
        if self.model == "auto" and self.candidates:
            _checks.fail("model", "auto", "no --candidates with --encoder-from (it fine-tunes the language model's "
                                          "network; leave --model out, or name its cell: lstm, gru or rnn)")
        if self.model in ("bow", "rocket", "conv1d", "cnn-lstm"):
            _checks.fail("model", self.model, "lstm, gru or rnn with --encoder-from (it starts a recurrent "
                                              f"network from the language model; {self.model} has no such layers)")
        if self.model in ("bilstm", "bigru"):
            _checks.fail("model", self.model, f"{self.model[2:]} with --encoder-from (a forward language model "
                                              "has no backward direction to start)")
        if self.embeddings:
            _checks.fail("embeddings", self.embeddings, "None with --encoder-from (the embedding comes from the "
                                                        "language model)")

    def layers(self, model: str | None = None) -> int:
        """num_layers settled for ``model`` (default: this config's): None is 3 for conv1d, else 1."""
        if self.num_layers is not None:
            return self.num_layers
        return 3 if (model or self.model) == "conv1d" else 1


@dataclass
class DataConfig:
    """Where `rnnkit classify train` reads its data, and how it holds out validation and test rows."""

    dataset: Optional[str] = field(None, "a named dataset: imdb or rotten-tomatoes (texts); basic-motions, "
                                         "arrow-head, gun-point, italy-power-demand, osu-leaf or acsf1 (series, "
                                         "with their own train/test split)")
    csv: Optional[str] = field(None, "a CSV/TSV file of texts with a header (see --text-col, --label-col)")
    series: Optional[str] = field(None, "numeric sequences: a .ts file (a NAME_TEST.ts next to NAME_TRAIN.ts is "
                                        "its test set) or a long-format CSV (id, step, channels..., label)")
    text_col: str = field("text", "text column of --csv")
    label_col: str = field("label", "label column of --csv or --series")
    id_col: str = field("id", "sequence id column of a long-format --series CSV")
    step_col: Optional[str] = field("step", "time-step column of a long-format --series CSV: numbers or ISO "
                                            "timestamps (read as hours); None: file order")
    channels: list[str] = field([], "input columns of a long-format --series CSV (none given: every column "
                                    "but the id, step, label and split columns); text columns are one-hot encoded")
    exclude: list[str] = field([], "columns of a long-format --series CSV to leave out of the inputs (e.g. one "
                                   "that gives the label away)")
    time_input: str = field("none", "the step column as an input: none (it only orders rows), elapsed (time "
                                    "since the previous row, for irregular visits) or grid (resample to slots of "
                                    "--grid-step, forward fill, missing-value indicators)", choices=TIME_INPUTS)
    grid_step: float = field(1.0, "slot width of --time-input grid, in the step column's units (hours for "
                                  f"timestamps; {MIN_GRID_STEP:g} to {MAX_GRID_STEP:g})")
    split_col: Optional[str] = field(None, "a column saying which rows are for training, validation and test "
                                           "(values: --split-names); the file's own split, used as it is")
    split_names: str = field(SPLIT_NAMES, "the values of --split-col for training, validation and test rows, "
                                          "comma-separated")
    test_csv: Optional[str] = field(None, "a CSV of test texts (same columns as --csv): the test set")
    test_series: Optional[str] = field(None, "a file of test series (same format as --series): the test set")
    val_frac: float = field(0.1, "fraction held out for validation (early stopping; with a split of your own: "
                                 "of the training rows, when it marks none); 0: no validation, the last epoch's "
                                 "weights are kept")
    test_frac: float = field(0.2, "fraction held out for the test report (unless the data has its own split)")
    split_seed: int = field(0, "seed of the stratified split (fixed, so every model sees the same test set; 0 to "
                                f"{_checks.MAX_SEED:,})")

    def __post_init__(self):
        # Checked before any file is read. A tiny grid step would make billions of slots.
        _checks.check_float("grid_step", self.grid_step, min=MIN_GRID_STEP, max=MAX_GRID_STEP)
        _checks.check_float("val_frac", self.val_frac, min=0, max=1, max_open=True)
        _checks.check_float("test_frac", self.test_frac, min=0, max=1, max_open=True)
        _checks.check_int("split_seed", self.split_seed, min=0, cap=_checks.MAX_SEED)


@dataclass
class ClassifyRequest:
    """One request to classify inputs: what ``SequenceClassifier.apply`` and ``POST .../classify`` take. A text
    classifier takes ``texts``, a series classifier ``series``; ``limits`` are what the server holds a request
    to (see rnnkit.config.field)."""

    texts: Optional[list[str]] = field(None, "texts to classify (a text classifier)",
                                       limits={"min_length": 1, "max_length": "max_texts",
                                               "items": {"max_length": "max_text_chars"}})
    series: Optional[list[list[list[Optional[float]]]]] = field(None, "series to classify, each a list of steps "
                                                                      "of channel values (a series classifier); "
                                                                      "null: a missing value",
                                                      limits={"min_length": 1, "max_length": "max_texts"})

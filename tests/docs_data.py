"""Tiny stand-ins for the named datasets, written straight into rnnkit's dataset cache format.

tests/test_docs.py points ``RNNKIT_DATA`` at a temporary folder and calls :func:`fill_cache`, so the
commands in the docs that name a dataset (``--dataset imdb``, ``--embeddings glove-50d``, the Shakespeare
default, ...) load a few kilobytes of data made here instead of downloading the pinned packages. Each
entry is what ``rnnkit.datasets.fetching.fetch`` leaves behind: the converted files and an ``info.json``
written last, with the sha256 of every file (``verify_cache`` checks them on every load). The data have
the columns, types and vocabulary the documented commands use (the prompts' characters, the words of the
embedding examples); their values are made up.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path

import numpy as np

from rnnkit.datasets import fetching, registry

SPEAKERS = ("QUEEN", "KING", "ROMEO", "JULIET", "KING HENRY", "HAMLET")
LINES = ("To be, or not to be: that is the question.", "O Romeo, Romeo! wherefore art thou Romeo?",
         "Now is the winter of our discontent made glorious summer.", "All the world's a stage, and all the men "
         "and women merely players.", "Friends, Romans, countrymen, lend me your ears;",
         "If music be the food of love, play on.", "What's in a name? That which we call a rose",
         "Uneasy lies the head that wears a crown.", "Some are born great, some achieve greatness.",
         "Cowards die many times before their deaths; the valiant never taste of death but once.",
         "Be not amazed; the lazy hours make haste.")

# Words the embedding examples use (neighbours, analogies, the plot), then filler.
EMBEDDING_WORDS = ("the", "frog", "toad", "king", "queen", "man", "woman", "prince", "princess", "paris", "france",
                   "berlin", "germany", "rome", "italy", "athens", "greece", "boy", "girl", "brother", "sister",
                   "good", "bad", "film", "movie", "great", "dull", "moving", "beautifully", "shot", "a", "and",
                   "it", "was", "love", "sex", "tiger", "cat")


def plays(chars: int = 40_000) -> str:
    """Play text in the converted format: speeches as ``NAME:\\nline\\nline``, separated by blank lines."""
    rng = np.random.default_rng(0)
    speeches, size = [], 0
    while size < chars:
        lines = [LINES[i] for i in rng.integers(0, len(LINES), size=int(rng.integers(1, 4)))]
        speech = f"{SPEAKERS[int(rng.integers(len(SPEAKERS)))]}:\n" + "\n".join(lines)
        speeches.append(speech)
        size += len(speech) + 2
    return "\n\n".join(speeches) + "\n"


def reviews(n: int = 120) -> list[tuple[str, int]]:
    good = ("a moving film", "beautifully shot", "great acting", "i loved it", "a fine movie")
    bad = ("dull and slow", "a bad film", "i hated it", "the plot was thin", "a waste of time")
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        label = i % 2
        words = [(good if label else bad)[int(j)] for j in rng.integers(0, 5, size=3)]
        rows.append((f"Review {i}: " + ", ".join(words) + ".", label))
    return rows


def ts_text(name: str, n: int, steps: int, classes: tuple[str, ...], seed: int, channels: int = 1) -> str:
    """A ``.ts`` file (the UCR/UEA archive's format) of ``n`` noisy class-dependent waves."""
    rng = np.random.default_rng(seed)
    lines = [f"@problemName {name}", "@timeStamps false", "@missing false",
             f"@univariate {'true' if channels == 1 else 'false'}",
             *([] if channels == 1 else [f"@dimensions {channels}"]),
             "@equalLength true", f"@seriesLength {steps}", f"@classLabel true {' '.join(classes)}", "@data"]
    t = np.linspace(0, 2 * np.pi, steps)
    for i in range(n):
        k = i % len(classes)
        waves = [np.sin((k + 1 + c) * t) + 0.1 * rng.standard_normal(steps) for c in range(channels)]
        lines.append(":".join(",".join(f"{v:.4f}" for v in x) for x in waves) + f":{classes[k]}")
    return "\n".join(lines) + "\n"


def weather(start: str = "2013-01-01", days: int = 365, every_hours: int = 1) -> str:
    """nyc-weather's ``weather.csv``: hourly rows of EWR, JFK and LGA with nycflights13's columns and NAs."""
    header = ["origin", "year", "month", "day", "hour", "temp", "dewp", "humid", "wind_dir", "wind_speed",
              "wind_gust", "precip", "pressure", "visib", "time_hour"]
    rng = np.random.default_rng(2)
    t0 = dt.datetime.fromisoformat(start)
    rows = [",".join(header)]
    for s, origin in enumerate(("EWR", "JFK", "LGA")):
        for h in range(0, days * 24, every_hours):
            t = t0 + dt.timedelta(hours=h)
            temp = 55 - 20 * math.cos(2 * math.pi * h / (365 * 24)) - 8 * math.cos(2 * math.pi * h / 24) + s \
                + rng.normal(0, 2)
            wind_dir = "NA" if h % 97 == 5 else f"{int(rng.integers(0, 36)) * 10}"
            utc = t + dt.timedelta(hours=5)
            rows.append(f"{origin},{t.year},{t.month},{t.day},{t.hour},{temp:.2f},{temp - 10:.2f},"
                        f"{60 + 20 * rng.random():.2f},{wind_dir},{10 * rng.random():.4f},NA,0,"
                        f"{1015 + 5 * rng.standard_normal():.1f},10,{utc:%Y-%m-%dT%H:00:00Z}")
    return "\n".join(rows) + "\n"


def _tsv(path: Path, header: list[str], rows) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _csv(path: Path, header: list[str], rows) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _number_rows(numbers) -> list[tuple[str, int, str]]:
    from num2words import num2words   # a dependency of rnnkit; the real dataset is generated with it too
    from rnnkit.datasets.converters import NUMBER_LANGS

    return [(lang, n, num2words(n, lang=lang)) for lang in NUMBER_LANGS for n in numbers]


def _write_entries(out: Path, name: str) -> dict:
    """Write the converted files of dataset ``name`` into ``out``; returns its stats."""
    if name == "shakespeare":
        (out / "shakespeare.txt").write_text(plays(), encoding="utf-8")
    elif name == "xkcd-colors":
        colors = [("cloudy blue", "#acc2d9"), ("dark pastel green", "#56ae57"), ("dust", "#b2996e"),
                  ("electric lime", "#a8ff04"), ("fresh green", "#69d84f"), ("light eggplant", "#894585"),
                  ("nasty green", "#70b23f"), ("really light blue", "#d4ffff"), ("tea", "#65ab7c"),
                  ("warm purple", "#952e8f"), ("yellowish tan", "#fcfc81"), ("cement", "#a5a391")] * 4
        (out / "xkcd_colors.tsv").write_text("".join(f"{n}\t{h}\n" for n, h in colors), encoding="utf-8")
    elif name in ("imdb", "rotten-tomatoes"):
        _csv(out / "reviews.csv", ["text", "label"], reviews())
    elif name in ("basic-motions",) or name in {u[0] for u in registry.UCR_SETS}:
        from rnnkit.datasets.converters import parse_ts
        motions = name == "basic-motions"
        classes = ("Standing", "Running", "Walking", "Badminton") if motions else ("1", "2", "3")
        channels = 6 if motions else 1
        X_train, y_train, _ = parse_ts(ts_text(name, 24, 30, classes, 3, channels))
        X_test, y_test, _ = parse_ts(ts_text(name, 12, 30, classes, 4, channels))
        with open(out / "data.npz", "wb") as f:
            np.savez(f, X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
                     classes=np.array(classes, dtype=str))
    elif name == "airline":
        _csv(out / "airline.csv", ["month", "passengers"],
             [(f"{1949 + i // 12}-{i % 12 + 1:02d}", 112 + 2 * i + int(20 * math.sin(i / 2))) for i in range(144)])
    elif name == "nyc-weather":
        (out / "weather.csv").write_text(weather(), encoding="utf-8")
    elif name == "number-phrases":
        _tsv(out / "number_phrases.tsv", ["lang", "number", "words"],
             _number_rows(sorted(set(range(0, 300)) | set(range(1900, 2100)))))
    elif name == "cmudict":
        words = {"cat": "K AE1 T", "hat": "HH AE1 T", "bat": "B AE1 T", "tab": "T AE1 B", "act": "AE1 K T",
                 "tack": "T AE1 K", "back": "B AE1 K", "hack": "HH AE1 K", "cab": "K AE1 B", "bach": "B AA1 K"}
        _tsv(out / "cmudict.tsv", ["word", "phonemes"], sorted(words.items()) * 6)
    elif name == "greek-english":
        # Made-up verse pairs, each distinct: (Greek subject, English subject) x (Greek verb, English verb) ...
        subjects = [("ο λογος", "the Word"), ("ο θεος", "God"), ("ο κυριος", "the Lord"), ("ο ανθρωπος", "the man"),
                    ("η ζωη", "the life"), ("το φως", "the light"), ("ο υιος", "the Son"), ("ο πατηρ", "the Father")]
        verbs = [("ην", "was"), ("εστιν", "is"), ("ελεγεν", "said"), ("ηλθεν", "came"), ("ειδεν", "saw")]
        places = [("εν αρχη", "in the beginning"), ("εν τω κοσμω", "in the world"), ("εις την πολιν", "into the city"),
                  ("μετα ταυτα", "after these things"), ("εν τη οδω", "on the way")]
        pairs = [(f"{sg} {vg} {pg}", f"{se} {ve} {pe}") for sg, se in subjects for vg, ve in verbs for pg, pe in places]
        _tsv(out / "greek_english.tsv", ["verse", "greek", "english"],
             [(40001001 + i, g, e) for i, (g, e) in enumerate(pairs)])
    elif name == "glove-50d":
        rng = np.random.default_rng(5)
        words = list(EMBEDDING_WORDS) + [f"word{i}" for i in range(200)]
        vectors = rng.standard_normal((len(words), 50)).astype(np.float32)
        np.save(out / "vectors.npy", vectors)
        (out / "words.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    elif name == "analogy-questions":
        _tsv(out / "analogies.tsv", ["section", "a", "b", "c", "d"],
             [("capital-common-countries", "Athens", "Greece", "Paris", "France"),
              ("capital-common-countries", "Berlin", "Germany", "Rome", "Italy"),
              ("family", "boy", "girl", "brother", "sister"), ("family", "king", "queen", "man", "woman")])
    elif name == "wordsim353":
        _tsv(out / "wordsim353.tsv", ["word1", "word2", "score"],
             [("love", "sex", 6.77), ("tiger", "cat", 7.35), ("king", "queen", 8.58), ("frog", "toad", 7.0),
              ("film", "movie", 8.9), ("good", "bad", 2.1)])
    elif name == "efficientnet-lite0":
        # the network's own random initialisation: the names and shapes of the real weights, none of their skill
        import torch
        from safetensors.torch import save_file
        from rnnkit.nn.vision import EfficientNetLite0
        torch.manual_seed(0)
        save_file(EfficientNetLite0(pretrained=False).state_dict(), str(out / "weights.safetensors"))
    elif name == "imagenet-classes":
        names = [f"class {i}" for i in range(1000)]
        names[281], names[967] = "tabby cat", "espresso"
        (out / "names.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
        (out / "synonyms.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    else:
        raise KeyError(f"no tiny stand-in for dataset {name!r}: add one to tests/docs_data.py")
    return {"stand_in": "tests/docs_data.py"}


def fill_cache(root: Path, names=None) -> Path:
    """Write tiny stand-ins of the named datasets (default: every registered one) under ``root``, in the cache
    format with their digests: ``RNNKIT_DATA=root`` then loads them without a download."""
    root = Path(root)
    for name in names or registry.names():
        ds = registry.get(name)
        out = root / ds.name
        out.mkdir(parents=True, exist_ok=True)
        stats = _write_entries(out, ds.name)
        info = {"name": ds.name, "source": "a stand-in written by tests/docs_data.py", "filename": ds.filename,
                "sha256": ds.sha256, "members": list(ds.members), "license": ds.license, "stats": stats,
                "files": fetching.file_digests(out)}
        (out / fetching.INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return root

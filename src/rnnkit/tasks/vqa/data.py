"""VQA data: the reader of a user's CSV (image, question, answer), the question encoder, and batches grouped by
image (the CNN runs once per image of a batch, however many of its questions the batch holds).

The rendered Sort-of-CLEVR scenes come from :mod:`rnnkit.datasets.sort_of_clevr` as the same ``VQAData``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from rnnkit import _checks
from rnnkit.datasets.sort_of_clevr import VQAData
from rnnkit.text import Tokenizer, pad_sequences

MAX_QUESTION_WORDS = 64


def prepare_image(image: np.ndarray, size: int) -> np.ndarray:
    """An (H, W, 3) image in [0, 1] at ``size`` x ``size``: the short side scaled to it, the centre cut
    (rnnkit.datasets.images.fit_size: nothing stretched; small images upscaled)."""
    from rnnkit.datasets.images import fit_size

    return image if image.shape[:2] == (size, size) else fit_size(image, (size, size))


def read_csv(path: str | Path, size: int, *, labelled: bool = True) -> VQAData:
    """A CSV with a header ``image,question,answer`` (answer optional when not ``labelled``); image paths are
    relative to the CSV's folder. Each image is read once (rnnkit.datasets.images.read_image: greyscale, RGBA and
    palette images converted) and resized to ``size``. A missing image, an empty question or answer is refused
    naming the file and line."""
    from rnnkit.datasets.files import read_text
    from rnnkit.datasets.images import read_image

    path = Path(path)
    _checks.require_file("csv", str(path))
    rows = list(csv.reader(io.StringIO(read_text(path))))
    if not rows:
        raise ValueError(f"{path}: empty; expected a header line image,question,answer and one row per question")
    header = [h.strip().lower() for h in rows[0]]
    need = ["image", "question"] + (["answer"] if labelled else [])
    missing = [c for c in need if c not in header]
    if missing:
        raise ValueError(f"{path}, line 1: header {','.join(rows[0])!r} has no {missing[0]!r} column; expected "
                         f"columns {','.join(need)}")
    col = {c: header.index(c) for c in ("image", "question", "answer") if c in header}
    names: list[str] = []
    index: dict[str, int] = {}
    images: list[np.ndarray] = []
    image_index, questions, answers, lines = [], [], [], []
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise ValueError(f"{path}, line {n}: {len(row)} fields; expected {len(header)} ({','.join(header)})")
        name, question = row[col["image"]].strip(), row[col["question"]].strip()
        if not question:
            raise ValueError(f"{path}, line {n}: an empty question; expected a question in words")
        answer = row[col["answer"]].strip() if "answer" in col else ""
        if labelled and not answer:
            raise ValueError(f"{path}, line {n}: an empty answer; expected a one-word answer")
        if name not in index:
            file = path.parent / name
            if not file.is_file():
                raise ValueError(f"{path}, line {n}: image {name!r} not found ({file}); expected a path relative to "
                                 f"the CSV's folder")
            try:
                images.append(prepare_image(read_image(file, name=f"{path}, line {n}: image"), size))
            except ValueError as e:
                raise ValueError(str(e)) from None
            index[name] = len(names)
            names.append(name)
        image_index.append(index[name])
        questions.append(question)
        answers.append(answer)
        lines.append(n)
    if not questions:
        raise ValueError(f"{path}: no questions; expected one row per question after the header")
    return VQAData(np.stack(images).astype(np.float32), np.array(image_index, dtype=np.int64), questions,
                   answers if labelled else None, None, str(path), lines, names)


def split_by_image(data: VQAData, frac: float, seed: int) -> tuple[VQAData, VQAData | None]:
    """Hold out ``frac`` of the images with all their questions (so no validation image is seen in training)."""
    if frac <= 0:
        return data, None
    images = np.unique(data.image_index)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(images, size=max(1, int(round(frac * len(images)))), replace=False).tolist())
    if len(held) >= len(images):
        return data, None
    is_val = np.array([i in held for i in data.image_index])
    return data.subset(np.flatnonzero(~is_val)), data.subset(np.flatnonzero(is_val))


def fit_tokenizer(questions: list[str], num_words: int | None) -> Tokenizer:
    return Tokenizer(num_words=num_words, oov_token="<unk>").fit_on_texts(questions)


def encode_questions(tok: Tokenizer, questions: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids (Q, T) padded at the end with 0, lengths (Q,), known (Q,): how many words the vocabulary knows).
    A question with no word at all (only punctuation) gets one <unk> so the recurrent layer has a step."""
    seqs = tok.texts_to_sequences(questions)
    unk = tok.word_index.get("<unk>", 1)
    seqs = [(s or [unk])[:MAX_QUESTION_WORDS] for s in seqs]
    known = np.array([sum(i != unk for i in s) for s in seqs], dtype=np.int64)
    ids = pad_sequences(seqs, maxlen=max(len(s) for s in seqs), padding="post", truncating="post").astype(np.int64)
    return ids, np.array([len(s) for s in seqs], dtype=np.int64), known


def batches(order: np.ndarray, image_index: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Question indices in batches of ``batch_size``, grouped by image: the images in ``order``, each image's
    questions together (so a batch holds about batch_size / questions-per-image images)."""
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    by_image = np.argsort(rank[image_index], kind="stable")
    return [by_image[s:s + batch_size] for s in range(0, len(by_image), batch_size)]

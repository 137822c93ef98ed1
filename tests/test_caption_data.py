"""The captioning data sets: digit strips (real handwriting, test strips from unseen digit images) and the synthetic
scenes (an in-distribution test split and a compositional one), rebuilt identically from their seed."""

import re

import numpy as np
import pytest

from rnnkit.datasets.digit_strips import WORDS, digit_pools, digit_strips, load_digit_images, render_strip
from rnnkit.datasets.scenes import HELD_OUT, SIZES, scenes, seen_pairs
from rnnkit.datasets.shapes import COLOURS


def test_digit_strips_are_rebuilt_identically_and_captioned_with_their_digits():
    a = digit_strips(40, 10, 20, seed=3)
    b = digit_strips(40, 10, 20, seed=3)
    c = digit_strips(40, 10, 20, seed=4)
    assert np.array_equal(a["train"].images, b["train"].images) and a["test"].captions == b["test"].captions
    assert not np.array_equal(a["train"].images, c["train"].images)
    strips = a["train"]
    assert strips.images.shape == (40, 8, 48, 3) and strips.images.dtype == np.float32
    assert 0.0 <= strips.images.min() and strips.images.max() <= 1.0
    images, labels = load_digit_images()
    ink = 1.0 - images                                        # the strips are dark ink on white
    for strip, (caption,) in zip(strips.images, strips.captions):
        words = caption.split()
        assert 3 <= len(words) <= 6 and set(words) <= set(WORDS)
        for k, word in enumerate(words):                     # slot k holds a real image of that digit
            slot = strip[:, 8 * k:8 * (k + 1), 0]
            matches = np.flatnonzero(np.abs(ink - slot).reshape(len(ink), -1).max(1) < 1e-6)
            assert len(matches) and WORDS[labels[matches[0]]] == word
        assert np.all(strip[:, 8 * len(words):] == 1.0)      # the unused slots stay blank


def test_test_strips_use_only_digit_images_that_no_training_strip_uses():
    images, labels = load_digit_images()
    pools = digit_pools(labels, seed=0)
    assert set(pools["train"]).isdisjoint(pools["test"]) and set(pools["train"]).isdisjoint(pools["val"])
    assert sum(len(p) for p in pools.values()) == 1797
    assert all(set(labels[p]) == set(range(10)) for p in pools.values())   # every digit in every split
    parts = digit_strips(60, 0, 60, seed=0)
    flat = (1.0 - images).reshape(len(images), -1)
    for split in ("train", "test"):
        for strip, (caption,) in zip(parts[split].images, parts[split].captions):
            for k in range(len(caption.split())):
                slot = strip[:, 8 * k:8 * (k + 1), 0].reshape(-1)
                used = set(np.flatnonzero(np.abs(flat - slot).max(1) < 1e-6).tolist())
                # (sklearn holds a few pixel-identical duplicates: the slot matches one image of its own pool)
                assert used & set(pools[split].tolist()), split


def test_render_strip_scales_and_leaves_blank_slots_white():
    digit = np.zeros((8, 8), np.float32)
    digit[2:6, 3] = 1.0
    strip = render_strip([digit], scale=2)
    assert strip.shape == (16, 96, 3)
    assert strip[4, 6, 0] == 0.0 and strip[4, 7, 1] == 0.0 and strip[0, 0, 2] == 1.0 and np.all(strip[:, 16:] == 1)


def test_scenes_captions_say_what_is_drawn_and_held_out_pairs_are_never_trained():
    parts = scenes(200, 10, 30, 60, seed=1)
    again = scenes(200, 10, 30, 60, seed=1)
    assert np.array_equal(parts["train"].images, again["train"].images)
    assert parts["train"].images.shape == (200, 48, 48, 3)
    held = {f"{c} {s}" for c, s in HELD_OUT}
    phrase = re.compile(r"(small|large) (\w+) (square|circle|triangle)")
    kinds = set()
    for split in ("train", "val", "test"):
        for caps in parts[split].captions:
            for caption in caps:
                pairs = {f"{m.group(2)} {m.group(3)}" for m in phrase.finditer(caption)}
                plural = {f"{c} {s[:-1]}" for c, s in re.findall(r"(\w+) (\w+s)$", caption)}
                assert not (pairs | plural) & held, caption
    for image, caps in zip(parts["train"].images, parts["train"].captions):
        first = caps[0].split()
        if first[0] == "a" and len(caps) == 1:                      # one object: its colour is in the image
            kinds.add("one")
            colour = np.asarray(COLOURS[first[2]], dtype=np.float32)
            painted = np.all(np.abs(image - colour) < 1e-6, axis=2).sum()
            side = SIZES[first[1]]
            assert 0.3 * side ** 2 < painted < 1.2 * side ** 2     # a triangle covers half its box, a square all
        elif len(caps) == 2:
            kinds.add("pair")
            a, b = caps
            assert any(r in a for r in ("left of", "right of", "above", "below"))
            flip = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
            rel = next(r for r in flip if f" {r} " in a)
            assert f" {flip[rel]} " in b                             # the same scene, said from the other side
        else:
            kinds.add("many")
            assert first[0] in ("two", "three") and first[-1].endswith("s")
    assert kinds == {"one", "pair", "many"}
    for caps in parts["compositional"].captions:                   # every compositional scene holds one
        text = " ".join(caps)
        pairs = {f"{m.group(2)} {m.group(3)}" for m in phrase.finditer(text)}
        plural = {f"{c} {s[:-1]}" for c, s in re.findall(r"(\w+) (\w+)s\b", text)}
        assert (pairs | {p for p in plural}) & held, caps
    assert len(seen_pairs()) == 12


def test_bad_counts_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^train=-1: expected an integer >= 0"):
        digit_strips(-1)
    with pytest.raises(ValueError, match=r"^compositional=1\.5: expected an integer"):
        scenes(1, 1, 1, 1.5)

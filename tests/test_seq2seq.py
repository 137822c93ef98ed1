"""Sequence to sequence: a tiny reverse task learned to exact match, batched beam search against one input at a time,
beam 1 against greedy, GNMT's formulas on hand-built scores, padding, save/load, data splits, bad input, the CLI;
the natural-language defaults (punctuation split reversibly, NFC, rare words, token levels from the data), caps
relative to the source, given validation and test files, a budget that holds the test report, a dry run of
seconds."""

import json
import math
import random
import time
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

import rnnkit
from rnnkit.cli import main
from rnnkit.generation.search import batch_beam_search, coverage_penalty, length_penalty
from rnnkit.tasks.base import NotFittedError
from rnnkit.tasks.seq2seq import Seq2Seq, Translation
from rnnkit.tasks.seq2seq.data import (EOS, GO, Vocab, cmudict_pairs, group_references, make_batch, number_pairs,
                                       read_tsv, split_pairs, tokenize)

LETTERS = "abcdef"


def reverse_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    words = ["".join(rng.choice(LETTERS) for _ in range(rng.randint(1, 6))) for _ in range(n)]
    return [(w, w[::-1]) for w in words]


@pytest.fixture(scope="module")
def reverser():
    """A small model trained to reverse strings of a-f (about 15 s on one core)."""
    torch.set_num_threads(1)
    return Seq2Seq(source_level="char", target_level="char", hidden_size=48, embedding_size=16, encoder_layers=1,
                   decoder_layers=1, attention="dot", dropout=0.0, epochs=6, min_steps=0,
                   schedule="constant", lr=1e-2, val_decode=100,
                   log_every=20).fit(reverse_pairs(3000, 0), reverse_pairs(100, 1), progress=False)


def random_seq2seq(attention: str = "general", cell: str = "lstm", seed: int = 0) -> Seq2Seq:
    """An untrained model (random weights, sharpened: outputs of varied lengths) over letters -> x y z, float64."""
    torch.manual_seed(seed)
    s2s = Seq2Seq(source_level="char", target_level="char", hidden_size=16, embedding_size=8, encoder_layers=2,
                  decoder_layers=2, attention=attention, cell=cell)
    s2s.source_vocab_, s2s.target_vocab_ = Vocab(list("abcdefgh"), "char"), Vocab(list("xyz"), "char")
    s2s.source_level_ = s2s.target_level_ = "char"
    s2s.max_source_length_, s2s.max_target_length_ = 12, 6
    s2s.model_ = s2s._build_model().double().eval()
    with torch.no_grad():                       # varied outputs: sources that matter, sharper distributions
        for module in (s2s.model_.src_embed, s2s.model_.tgt_embed, s2s.model_.bridge):
            for p in module.parameters():
                p.mul_(3)
        s2s.model_.head.weight.mul_(2)
        s2s.model_.head.bias.zero_()
    return s2s


TEXTS = ["abc", "h", "abcdefgh", "ddd", "gfe", "bababa", "c"]


# --- learning -----------------------------------------------------------------------------------------------

def test_a_tiny_reverse_task_is_learned_to_exact_match(reverser):
    held_out = reverse_pairs(200, 2)
    greedy = reverser.evaluate(held_out)
    assert greedy["exact_match"] >= 0.9, greedy
    assert greedy["bleu"] > 80 and greedy["token_error_rate"] < 0.05
    beam = reverser.evaluate(held_out, beam=3)
    assert beam["exact_match"] >= 0.9 and beam["decoding"] == "beam 3"
    assert reverser.metrics_["val_exact_match"] >= 0.85
    assert "per" not in greedy                              # phoneme rates only for phoneme targets


# --- decoding -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("attention,cell", [("general", "lstm"), ("additive", "gru"), ("none", "lstm")])
def test_batched_beam_equals_one_input_at_a_time(attention, cell):
    s2s = random_seq2seq(attention, cell)
    options = dict(beam=4, num_results=3, length_penalty=0.6, return_attention=attention != "none",
                   coverage_penalty=0.2 if attention != "none" else 0.0)
    together = s2s.translate(TEXTS, batch_size=64, **options)          # one batch: the sources padded
    for text, batched in zip(TEXTS, together):
        alone = s2s.translate(text, **options)
        assert [h.text for h in batched.hypotheses] == [h.text for h in alone.hypotheses]
        assert [h.score for h in batched.hypotheses] == pytest.approx([h.score for h in alone.hypotheses], abs=1e-9)
        for a, b in zip(batched.hypotheses, alone.hypotheses):
            if attention != "none":
                assert a.attention.shape[1] == len(text) and len(a.tokens) <= a.attention.shape[0] <= len(a.tokens) + 1
                assert torch.allclose(torch.from_numpy(a.attention), torch.from_numpy(b.attention), atol=1e-9)
        scores = [h.score for h in batched.hypotheses]
        assert scores == sorted(scores, reverse=True)


def test_beam_of_width_one_is_greedy():
    s2s = random_seq2seq("general", seed=3)
    texts = ["".join(random.Random(i).choice("abcdefgh") for _ in range(1 + i % 9)) for i in range(30)]
    greedy = s2s.translate(texts, details=True)
    # Penalties change nothing with one beam: all its candidates share a length and a parent.
    beam = s2s.translate(texts, beam=1, length_penalty=0.8, coverage_penalty=0.3, details=True)
    assert [t.text for t in beam] == [t.text for t in greedy]
    assert len({t.text for t in greedy}) > 5                           # the inputs give varied outputs
    plain = s2s.translate(texts, beam=1, details=True)
    assert [h.hypotheses[0].log_prob for h in plain] == pytest.approx([g.hypotheses[0].log_prob for g in greedy])


def test_padding_never_changes_an_output_or_the_loss():
    s2s = random_seq2seq("additive", "gru")
    model = s2s.model_
    short, long_ = [[4, 5]], [[4, 5, 6, 7, 8, 9, 10]]
    src, lengths = make_batch(short + long_)
    memory, state = model.encode(src, lengths)
    memory1, state1 = model.encode(*make_batch(short))
    assert torch.allclose(memory.values[0, :2], memory1.values[0], atol=1e-12)
    assert all(torch.allclose(a[0], b[0], atol=1e-12) for a, b in zip(state, state1))
    # The loss: padded target positions are ignored; a pair's tokens cost the same alone or in a batch.
    targets = [[4], [4, 5, 6, 4]]
    batch = make_batch(short + long_, targets)
    with torch.no_grad():
        logits = model(batch[0], batch[1], batch[2])
    together = F.cross_entropy(logits.flatten(0, 1), batch[3].flatten(), ignore_index=0, reduction="sum")
    alone = 0.0
    for s, t in zip(short + long_, targets):
        b = make_batch([s], [t])
        with torch.no_grad():
            alone += F.cross_entropy(model(b[0], b[1], b[2]).flatten(0, 1), b[3].flatten(), reduction="sum")
    assert float(together) == pytest.approx(float(alone), abs=1e-9)


def test_teacher_forcing_ratio_runs_the_same_steps_one_by_one():
    s2s = random_seq2seq("dot", "gru")
    model = s2s.model_
    src, lengths, tgt_in, _ = make_batch([[4, 5, 6], [7]], [[4, 5, 6, 4], [5]])
    with torch.no_grad():
        forced = model(src, lengths, tgt_in)                          # the one time loop (RNN with a context)
        memory, state = model.encode(src, lengths)
        assert torch.allclose(model._free_running(tgt_in, state, memory, 1.0), forced, atol=1e-12)
        # ratio 0: every step after the first reads the previous argmax, which is greedy decoding
        free = model(src, lengths, tgt_in, teacher_forcing=0.0)
    greedy = s2s.translate(["abc", "d"], max_tokens=tgt_in.shape[1], details=True)
    for row, t in zip((free + model.never).argmax(-1).tolist(), greedy):
        assert s2s.target_vocab_.decode(row) == t.text


def test_sampling_uses_the_shared_processors_and_repeats_with_its_seed():
    s2s = random_seq2seq()
    a = s2s.translate(TEXTS, greedy=False, seed=7, temperature=1.5)
    assert a == s2s.translate(TEXTS, greedy=False, seed=7, temperature=1.5)
    seen = []

    def only_x(tokens, logits):                                       # a user's processor: x or the end
        seen.append(tokens.shape)
        keep = torch.full_like(logits, -math.inf)
        keep[:, [s2s.target_vocab_.stoi["x"], EOS]] = 0.0
        return logits + keep

    out = s2s.translate(TEXTS, greedy=False, seed=1, processors=[only_x])
    assert all(set(t) <= {"x"} for t in out) and seen and seen[0][1] == 1     # tokens: <go> first
    assert set("".join(s2s.translate(TEXTS, beam=3, processors=[only_x]))) <= {"x"}
    with pytest.raises(ValueError, match=r"greedy=False \(sampling\) and beam: choose one"):
        s2s.translate(TEXTS, greedy=False, beam=2)


def test_old_keyword_names_still_work_for_one_release_with_a_warning():
    s2s = random_seq2seq()
    with pytest.warns(FutureWarning) as caught:
        old = s2s.translate(TEXTS, sample=True, random_seed=7, max_length=5)
    assert old == s2s.translate(TEXTS, greedy=False, seed=7, max_tokens=5)
    assert sorted(str(w.message).split(";")[0] for w in caught) == [
        "max_length is renamed max_tokens", "random_seed is renamed seed",
        "sample is renamed greedy (sample=True is greedy=False)"]
    with pytest.warns(FutureWarning, match="n_best is renamed num_results"):
        old = s2s.translate(TEXTS, beam=2, n_best=2)
    assert old == s2s.translate(TEXTS, beam=2, num_results=2)
    with pytest.raises(TypeError, match=r"translate\(\): sample=True and greedy=True: the same setting twice"):
        s2s.translate(TEXTS, sample=True, greedy=True)


# --- GNMT's scores, on hand-built numbers -------------------------------------------------------------------

def test_length_and_coverage_penalty_formulas():
    assert length_penalty(torch.tensor([1.0, 4.0]), 0.6).tolist() == pytest.approx([1.0, 1.5 ** 0.6])
    assert length_penalty(torch.tensor([7.0]), 0.0).tolist() == [1.0]
    cov = torch.tensor([[0.5, 1.7, 0.0], [0.25, 0.25, 2.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    # beta * sum_i log(min(cov_i, 1)) over valid positions: the padded third position of row 0 never counts
    assert coverage_penalty(cov, 0.2, mask).tolist() == pytest.approx([0.2 * math.log(0.5), 0.2 * 2 * math.log(0.25)])


# A "model" whose next-token probabilities depend on the step and the last token: 0 pad, 1 eos, 2 a, 3 b.
TABLE = {0: {None: {"a": 0.55, "b": 0.45}},
         1: {"a": {"eos": 0.25, "a": 0.6, "b": 0.15}, "b": {"eos": 0.6, "a": 0.25, "b": 0.15}},
         2: {"a": {"eos": 0.7, "a": 0.2, "b": 0.1}, "b": {"eos": 0.7, "a": 0.2, "b": 0.1}}}
IDS = {"eos": 1, "a": 2, "b": 3}


def table_step(tokens, state):
    (steps,) = state
    logits = torch.full((len(tokens), 4), -math.inf, dtype=torch.float64)
    attention = torch.zeros(len(tokens), 2, dtype=torch.float64)
    for i, (tok, s) in enumerate(zip(tokens.tolist(), steps.tolist())):
        last = None if s == 0 else {2: "a", 3: "b"}[tok]
        probs = TABLE[s][None if s == 0 else last] if s < 3 else {"eos": 1.0}
        for name, p in probs.items():
            logits[i, IDS[name]] = math.log(p)
        attention[i] = torch.tensor([0.9, 0.1]) if s % 2 == 0 else torch.tensor([0.3, 0.7])
    return logits, (steps + 1,), attention


def first_step():
    return table_step(torch.zeros(1, dtype=torch.long), (torch.zeros(1, dtype=torch.long),))


def run_table(alpha=0.0, beta=0.0, n_best=1, beam=2):
    logits, state, attention = first_step()
    return batch_beam_search(table_step, state, logits, beam, 5, 1, attention=attention, length_penalty_alpha=alpha,
                             coverage_penalty_beta=beta, n_best=n_best, return_attention=True)


def test_beam_search_on_a_hand_built_table():
    # greedy: a (0.55), then a (0.6), then <eos> (0.7): "aa" with 0.231; beam 2 finds "b" with 0.45 * 0.6 = 0.27
    res = run_table(n_best=2)
    assert res.tokens[0, 0, :2].tolist() == [3, 1] and res.lengths[0].tolist() == [2, 3]
    assert res.tokens[0, 1].tolist() == [2, 2, 1]
    assert res.log_probs[0].tolist() == pytest.approx([math.log(0.27), math.log(0.55 * 0.6 * 0.7)])
    assert res.scores[0].tolist() == pytest.approx(res.log_probs[0].tolist())        # alpha = beta = 0
    assert run_table(beam=1).tokens[0, 0].tolist() == [2, 2, 1]                     # beam 1 is greedy


def test_length_normalisation_prefers_the_longer_output_on_a_hand_built_table():
    res = run_table(alpha=2.0, n_best=2)
    assert res.tokens[0, 0].tolist() == [2, 2, 1]                                   # "aa" now wins
    lp2, lp3 = (7 / 6) ** 2, (8 / 6) ** 2
    assert res.scores[0].tolist() == pytest.approx([math.log(0.231) / lp3, math.log(0.27) / lp2])


def test_coverage_penalty_is_added_to_the_score_on_a_hand_built_table():
    res = run_table(alpha=0.5, beta=0.4, n_best=2)
    for j in range(2):
        n = int(res.lengths[0, j])
        covered = res.attention[0, j, :n].sum(0)                                     # attention each position got
        expected = (float(res.log_probs[0, j]) / ((5 + n) / 6) ** 0.5
                    + 0.4 * float(torch.log(covered.clamp(max=1.0)).sum()))
        assert float(res.scores[0, j]) == pytest.approx(expected)
    assert res.attention[0, 0, 0].tolist() == pytest.approx([0.9, 0.1])


def test_batch_beam_search_checks_its_arguments():
    logits, state, attention = first_step()
    with pytest.raises(ValueError, match=r"beam_size=0: expected an integer >= 1"):
        batch_beam_search(table_step, state, logits, 0, 5, 1)
    with pytest.raises(ValueError, match=r"n_best=3: expected at most beam_size=2"):
        batch_beam_search(table_step, state, logits, 2, 5, 1, n_best=3)
    with pytest.raises(ValueError, match=r"coverage_penalty_beta=0.2: expected the attention of every step"):
        batch_beam_search(table_step, state, logits, 2, 5, 1, coverage_penalty_beta=0.2)
    with pytest.raises(ValueError, match=r"logits=<tensor of shape \(4,\)>: expected a tensor \(B, V\)"):
        batch_beam_search(table_step, state, logits[0], 2, 5, 1)


# --- the task object ----------------------------------------------------------------------------------------

def test_save_load_and_rnnkit_load_round_trip(reverser, tmp_path):
    reverser.save(tmp_path / "run")
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert doc["task"] == "seq2seq" and doc["fitted"]["max_source_length"] == 6
    assert doc["config"]["train"]["epochs"] == 6 and doc["data"]["sizes"]["train"] == 3000
    texts = ["abc", "fedcba", "a"]
    expected = reverser.translate(texts, beam=2, num_results=2)
    for loaded in (Seq2Seq.load(tmp_path / "run"), rnnkit.load(str(tmp_path / "run"))):
        assert isinstance(loaded, Seq2Seq)
        got = loaded.translate(texts, beam=2, num_results=2)
        assert [[h.text for h in t.hypotheses] for t in got] == [[h.text for h in t.hypotheses] for t in expected]
        assert [t.hypotheses[0].score for t in got] == pytest.approx([t.hypotheses[0].score for t in expected])


def test_params_and_unfitted_use():
    s2s = Seq2Seq(attention="dot", lr=5e-3)
    assert s2s.config.train.lr == 5e-3 and s2s.get_params()["attention"] == "dot"
    assert Seq2Seq(**s2s.get_params()).get_params() == s2s.get_params()
    with pytest.raises(NotFittedError, match="this Seq2Seq is not fitted"):
        s2s.translate("abc")
    with pytest.raises(ValueError, match=r"hidden_size=33: expected an even number"):
        Seq2Seq(hidden_size=33)
    with pytest.raises(ValueError, match=r"attention='luong': expected one of 'none', 'additive', 'dot', 'general'"):
        Seq2Seq(attention="luong")


# --- bad input ----------------------------------------------------------------------------------------------

def test_bad_translate_input_is_named(reverser):
    with pytest.raises(ValueError, match=r"text='': expected a non-empty source text"):
        reverser.translate("")
    with pytest.raises(ValueError, match=r"texts\[1\]='   ': expected a non-empty source text"):
        reverser.translate(["abc", "   "])
    with pytest.raises(ValueError, match=r"beam=0: expected an integer >= 1"):
        reverser.translate("abc", beam=0)
    with pytest.raises(ValueError, match=r"num_results=3: expected at most beam=2"):
        reverser.translate("abc", beam=2, num_results=3)
    with pytest.raises(ValueError, match=r"num_results=2: expected 1 without beam search"):
        reverser.translate("abc", num_results=2)
    with pytest.raises(ValueError, match=r"coverage_penalty=0.2: expected 0 for a model without attention"):
        random_seq2seq("none").translate("abc", beam=2, coverage_penalty=0.2)


def test_long_sources_are_cut_with_a_warning_and_unseen_tokens_counted(reverser):
    with pytest.warns(UserWarning, match=r"texts\[1\]: 9 char tokens, more than the model's maximum "
                                         r"max_source_length=6: cut to the first 6"):
        out = reverser.translate(["abc", "abcdefabc"], details=True)
    assert out[1].truncated == 3 and out[1].source_tokens == list("abcdef") and out[0].truncated == 0
    with pytest.warns(UserWarning, match=r"pairs: 1 sources longer than the model's maximum max_source_length=6"):
        assert reverser.evaluate([("abcdefabc", "cbafedcba"), ("abc", "cba")])["truncated"] == 1
    t = reverser.translate("abxz", details=True)
    assert isinstance(t, Translation) and t.unknown == 2 and t.source_tokens == ["a", "b", "<unk>", "<unk>"]


def test_empty_pairs_are_skipped_and_counted_in_training(tmp_path):
    pairs = reverse_pairs(60, 3) + [("", "x"), ("  ", "y"), ("abc", "")]
    s2s = Seq2Seq(source_level="char", target_level="char", hidden_size=8, embedding_size=4, encoder_layers=1,
                  decoder_layers=1, val_frac=0.2).fit(pairs, dry_run=True, progress=False)
    assert s2s.data_["skipped"] == {"empty_source": 2, "empty_target": 1, "too_long": 0}
    with pytest.raises(ValueError, match=r"pairs passed to fit: no training pairs"):
        Seq2Seq().fit([("", "a")], [("a", "b")], dry_run=True)
    with pytest.raises(ValueError, match=r"pairs\[0\]='ab': expected a \(source, target\) pair of strings"):
        Seq2Seq().fit(["ab"], dry_run=True)


def test_tsv_lines_without_one_tab_name_file_and_line(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("un\t1\n\ndeux 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{path}:3: found no tab in 'deux 2'; expected source<TAB>target"):
        read_tsv(path)
    path.write_text("un\t1\ndeux\t2\t3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{path}:2: found 2 tabs in 'deux\\t2\\t3'"):
        read_tsv(path)
    path.write_bytes(b"un\t1\n\xff\t2\n")
    with pytest.raises(ValueError, match=rf"{path}:2: not UTF-8"):
        read_tsv(path)
    path.write_text("\ufeffun\t1\n\nsept cent\t700\r\n", encoding="utf-8")
    assert read_tsv(path) == [("un", "1"), ("sept cent", "700")]


# --- data ---------------------------------------------------------------------------------------------------

def test_hash_split_is_by_key_and_keeps_a_keys_pairs_together():
    pairs = [(f"w{i}", p) for i in range(400) for p in ("P1", "P2")]
    splits = split_pairs(pairs, [w for w, _ in pairs], 0.1, 0.1, "words")
    parts = [{w for w, _ in part} for part in (splits.train, splits.val, splits.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert 20 < len(parts[2]) < 60 and 20 < len(parts[1]) < 60
    again = split_pairs(list(reversed(pairs)), [w for w, _ in reversed(pairs)], 0.1, 0.1, "words")
    assert {w for w, _ in again.test} == parts[2]                     # the order of the data changes nothing


def test_named_datasets_become_pairs(monkeypatch):
    import numpy as np

    fake = {"number-phrases": {"lang": np.array(["fr", "fr", "en"], dtype=object), "number": np.array([97, 1981, 97]),
                               "words": np.array(["quatre-vingt-dix-sept", "mille neuf cent quatre-vingt-un",
                                                  "ninety-seven"], dtype=object)},
            "cmudict": {"word": np.array(["read", "read", "tomato", "tomato"], dtype=object),
                        "phonemes": np.array(["R EH1 D", "R IY1 D", "T AH0 M EY1 T OW2", "T AH0 M EY2 T OW0"],
                                             dtype=object)}}
    monkeypatch.setattr("rnnkit.datasets.load", lambda name, **kw: fake[name])
    pairs, keys = number_pairs(None)
    assert pairs == [("quatre vingt dix sept", "97"), ("mille neuf cent quatre vingt un", "1981")]
    assert number_pairs("digits-en")[0] == [("97", "ninety seven")] and keys == ["97", "1981"]
    with pytest.raises(ValueError, match=r"variant='fr-en': expected <lang>-digits or digits-<lang>"):
        number_pairs("fr-en")
    pairs, keys = cmudict_pairs()
    # stress stripped; two pronunciations that only stress told apart are one pair
    assert pairs == [("read", "R EH D"), ("read", "R IY D"), ("tomato", "T AH M EY T OW")]
    assert len(cmudict_pairs(keep_stress=True)[0]) == 4
    assert group_references(pairs)[0] == ("read", ["R EH D", "R IY D"])


def test_a_word_is_right_when_it_matches_any_pronunciation(monkeypatch):
    s2s = random_seq2seq()
    s2s.data_ = {"phonemes": True}
    out = s2s.translate(["abc", "de"])
    m = s2s.evaluate([("abc", "q"), ("abc", out[0]), ("de", out[1] + "x")])
    assert m["n"] == 2 and m["exact_match"] == 0.5 and m["wer"] == 0.5 and m["per"] == m["token_error_rate"]


def test_vocab_tokens_and_specials():
    v = Vocab.build(["ab ba", "b"], "char", num_words=6)
    assert v.itos[:4] == ["<pad>", "<unk>", "<go>", "<eos>"] and v.itos[4:] == ["b", "a"]
    assert v.encode("abc") == ([5, 4, 1], 1)
    assert v.decode([GO, 5, 4, EOS, 4]) == "ab"
    assert tokenize("  un   deux ", "word") == ["un", "deux"] and tokenize(" a  b", "char") == ["a", " ", "b"]
    with pytest.raises(ValueError, match=r"vocabulary: expected"):
        Vocab.from_dict({"level": "char", "tokens": ["a"]})


# Rare words made of frequent pieces: subwords spell them, a word vocabulary would make them <unk>.
STEMS = ["play", "walk", "talk", "jump", "cook", "paint"]
ENDINGS = {"": "o", "s": "as", "ed": "ado", "ing": "ando"}


def stem_pairs() -> list[tuple[str, str]]:
    """A made-up 'translation': stem+ending -> stem reversed + another ending, two words per sentence."""
    words = [(stem + e, stem[::-1] + f) for stem in STEMS for e, f in ENDINGS.items()]
    return [(f"{a} {c}", f"{b} {d}") for a, b in words for c, d in words]


def test_subword_vocab_learns_pieces_and_round_trips():
    texts = [s for s, _ in stem_pairs()]
    v = Vocab.build(texts, "subword", num_words=40)
    assert v.itos[:4] == ["<pad>", "<unk>", "<go>", "<eos>"] and len(v) <= 40
    # A word the vocabulary never saw whole ("paints" appears, "painted" with "walks" too) is spelled in
    # pieces, none of them <unk>, and joins back to the text.
    ids, unknown = v.encode("  cooking   walks ")
    assert unknown == 0 and len(ids) > 2 and v.decode(ids) == "cooking walks"
    assert v.split("cooking")[0].startswith("\u2581")              # a word start is marked
    assert v.encode("zzz")[1] == 1 and v.encode("zzz")[0][-1] == 1     # unseen letters: <unk>, counted
    again = Vocab.from_dict(json.loads(json.dumps(v.to_dict())))
    assert again.itos == v.itos and again.encode("painted jumps") == v.encode("painted jumps")
    edited = v.to_dict()
    edited["tokens"] = edited["tokens"][:-1]
    with pytest.raises(ValueError, match="differ from \"tokens\""):
        Vocab.from_dict(edited, "tok.json: source")
    edited["subwords"] = "not base64!"
    with pytest.raises(ValueError, match="tok.json: source: subwords: expected a sentencepiece model"):
        Vocab.from_dict(edited, "tok.json: source")
    with pytest.raises(ValueError, match="a subword model goes with level 'subword'"):
        Vocab(["a"], "subword")


def test_subword_model_trains_saves_and_reports_words(tmp_path):
    torch.set_num_threads(1)
    pairs = stem_pairs()
    random.Random(0).shuffle(pairs)
    s2s = Seq2Seq(source_level="subword", target_level="subword", num_words=60, hidden_size=48, embedding_size=16,
                  encoder_layers=1, decoder_layers=1, attention="dot", dropout=0.0, epochs=12, min_steps=0,
                  schedule="constant", lr=1e-2,
                  val_decode=50).fit(pairs[:500], pairs[500:], run_dir=tmp_path / "run", progress=False)
    report = s2s.evaluate(pairs[500:])
    assert report["exact_match"] >= 0.8 and report["bleu"] >= 70 and report["chrf"] >= 80
    # Errors are counted in words: the token error rate is at most the share of outputs that are wrong.
    assert report["token_error_rate"] <= 1 - report["exact_match"] + 1e-9
    saved = json.loads((tmp_path / "run" / "tokenizer.json").read_text())
    assert saved["source"]["level"] == "subword" and len(saved["source"]["subwords"]) > 100     # the model
    loaded = rnnkit.load(tmp_path / "run")
    sources = [s for s, _ in pairs[500:520]]
    expected = [t.text for t in s2s.translate(sources, details=True)]
    assert [t.text for t in loaded.translate(sources, details=True)] == expected


# --- the command line ---------------------------------------------------------------------------------------

def test_cli_train_translate_eval_and_resume(tmp_path, capsys):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in reverse_pairs(300, 4)) + "\tempty source\n", encoding="utf-8")
    run = tmp_path / "run"
    tiny = ["--tsv", str(tsv), "--source-level", "char", "--target-level", "char", "--hidden-size", "16",
            "--embedding-size", "8", "--encoder-layers", "1", "--decoder-layers", "1", "--val-frac", "0.1",
            "--test-frac", "0.1", "--batch-size", "16"]
    assert main(["seq2seq", "train", *tiny, "--dry-run", "--run-dir", str(tmp_path / "dry")]) == 0
    assert main(["seq2seq", "train", *tiny, "--max-steps", "3", "--run-dir", str(run)]) == 0
    out = capsys.readouterr()
    assert "skipped 1 with an empty source" in out.err and "test (" in out.out
    assert (run / "final.safetensors").is_file() and (run / "test_metrics.json").is_file()

    assert main(["seq2seq", "translate", str(run), "abc", "fed", "--beam", "3", "--num-results", "2",
                 "--attention-png", str(tmp_path / "att.png")]) == 0
    text = capsys.readouterr().out
    assert text.count("\n") == 6 and text.startswith("abc\n")
    assert (tmp_path / "att-1.png").stat().st_size > 1000 and (tmp_path / "att-2.png").is_file()
    assert main(["seq2seq", "translate", str(run), "abc", "--beam", "2", "--num-results", "3"]) == 2
    assert "num_results=3: expected at most beam=2" in capsys.readouterr().err
    assert main(["seq2seq", "translate", str(run), ""]) == 2
    assert "texts[0]='': expected a non-empty source text" in capsys.readouterr().err

    assert main(["seq2seq", "eval", str(run), "--beam", "2"]) == 0
    report = json.loads((run / "eval.json").read_text())
    assert report["decoding"] == "beam 2" and report["source"].startswith("the test part of tsv")
    assert main(["seq2seq", "eval", str(run), "--tsv", str(tsv), "-o", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["skipped"]["empty_source"] == 1

    assert main(["seq2seq", "train", "--run-dir", str(run), "--resume", "--max-steps", "5"]) == 0
    assert "5 steps (max_steps)" in capsys.readouterr().out
    assert main(["seq2seq", "train", "--run-dir", str(run), "--resume", "--hidden-size", "8"]) == 2
    assert "no --hidden-size with --resume" in capsys.readouterr().err


# --- natural-language defaults (issue 23): punctuation, NFC, rare words, levels from the data -------------------

def test_split_words_splits_punctuation_reversibly():
    from rnnkit.text import JOINER, join_words, split_words

    j = JOINER
    assert split_words("Hi, (you).") == ["Hi", j + ",", "(" + j, "you", j + ")", j + "."]
    assert split_words("I don't know... really?!") == ["I", "don't", "know", j + ".", j + ".", j + ".", "really",
                                                       j + "?", j + "!"]
    assert split_words("quatre-vingt-dix") == ["quatre", j + "-" + j, "vingt", j + "-" + j, "dix"]
    assert split_words("Bonjour !") == ["Bonjour", "!"]                    # a free-standing mark has no joiner
    assert split_words("e\u0301te\u0301") == ["\u00e9t\u00e9"]                      # NFC: one letter each
    assert split_words("हिन्दी भाषा।") == ["हिन्दी", "भाषा", j + "।"]        # vowel signs (marks) stay in the word
    for text in ["Hi, (you).", "I don't know... really?!", "a/b 3.5 $10 -5", "¿Qué?", "Bonjour !", "...", "x"]:
        assert join_words(split_words(text)) == text


def test_word_vocabulary_shares_words_across_punctuation_and_drops_words_seen_once():
    texts = ["I saw it.", "Did you see it?", "It is here, you see.", "see"]
    v = Vocab.build(texts, "word", min_count=2)
    assert {"it", "you", "see"} <= set(v.itos) and not any(t.startswith("it") and t != "it" for t in v.itos)
    assert "saw" not in v.stoi and "here" not in v.stoi                    # seen once: <unk>
    ids, unknown = v.encode("I saw it.")
    assert unknown == 2 and v.decode(ids + [EOS]) == "<unk> <unk> it."
    assert v.decode(v.encode("you see it.")[0]) == "you see it."           # spacing written back as it was
    again = Vocab.from_dict(json.loads(json.dumps(v.to_dict())))
    assert again.punctuation and again.encode("see it?") == v.encode("see it?")
    # A vocabulary saved before punctuation was split reads words as whitespace runs, as it was trained.
    old = Vocab.from_dict({"level": "word", "tokens": ["<pad>", "<unk>", "<go>", "<eos>", "it."]})
    assert not old.punctuation and old.encode("it.") == ([4], 0)
    assert Vocab.build(["ab", "ac"], "char", min_count=2).itos[4:] == ["a"]
    assert tokenize("cafe\u0301", "char") == list("caf\u00e9")                      # NFC at every level


def test_levels_are_chosen_from_the_data_and_said_in_one_line():
    from rnnkit.tasks.seq2seq.config import Seq2SeqConfig
    from rnnkit.tasks.seq2seq.data import choose_level, choose_levels

    words = "zero one two three four five six seven eight nine".split()
    numbers = [(f"{words[n // 10]} {words[n % 10]}", str(n)) for n in range(100)]
    assert choose_level([s for s, _ in numbers]).level == "word"           # a closed vocabulary
    assert choose_level([t for _, t in numbers]).level == "char"           # one open-class word per line
    rng = random.Random(0)
    vocabulary = ["".join(rng.choice("abcdefghij") for _ in range(6)) for _ in range(3000)]
    sentences = [" ".join(rng.choice(vocabulary) for _ in range(8)) + "." for _ in range(400)]
    choice = choose_level(sentences)
    assert choice.level == "subword" and 500 <= choice.subwords <= 4000 and choice.subwords % 100 == 0
    once = sum(1 for n in Counter(w for s in sentences for w in s[:-1].split()).values() if n == 1)
    assert f"{100 * once / (9 * 400):.1f}% of running words seen once" in choice.reason
    levels, pieces, line = choose_levels(numbers, Seq2SeqConfig(tsv="x.tsv"))
    assert levels == ("word", "char") and pieces == (None, None)
    assert line.startswith("tokens chosen from the 100 training pairs: source words (10 distinct words")
    levels, _, line = choose_levels(numbers, Seq2SeqConfig(tsv="x.tsv", source_level="char"))
    assert levels == ("char", "char") and "source words" not in line and "target characters" in line


# --- decoding caps relative to the source ----------------------------------------------------------------------

def test_decoding_cap_grows_with_the_source_and_is_bounded():
    from rnnkit.tasks.seq2seq.data import decoding_cap, length_ratio

    assert length_ratio([[1, 2], [3, 4, 5, 6]], [[1], [2, 3, 4]]) == pytest.approx(4 / 6)
    assert decoding_cap(5, 1.0, 100) == 20 and decoding_cap(5, 0.5, 100) == 15
    assert decoding_cap(500, 1.0, 30) == 70                                 # twice the longest target + 10


def test_end_at_cap_leaves_only_the_end_to_a_row_at_its_cap():
    from rnnkit.tasks.seq2seq.task import EndAtCap

    logits = torch.arange(12, dtype=torch.float64).view(3, 4)               # 3 rows, 4 tokens (EOS is 3)
    tokens = torch.tensor([[GO, 5, 6], [GO, 5, 6], [GO, 5, 6]])            # each has written 2 tokens
    out = EndAtCap(torch.tensor([2, 3, 2]))(tokens, logits)
    assert out[1].tolist() == logits[1].tolist() and torch.equal(logits, torch.arange(12.).view(3, 4).double())
    for row in (0, 2):
        assert out[row, EOS] == 0 and torch.isinf(out[row, :EOS]).all()
    # Beam search: the rows are each input's beams in turn (2 inputs x 3 beams here).
    out = EndAtCap(torch.tensor([2, 5]))(tokens.repeat(2, 1), logits.repeat(2, 1))
    assert [bool(torch.isinf(r).any()) for r in out] == [True] * 3 + [False] * 3


def test_outputs_that_loop_stop_at_a_cap_relative_to_their_source():
    s2s = random_seq2seq("general", seed=1)
    s2s.data_ = {}
    with torch.no_grad():
        s2s.model_.head.bias[EOS] = -50.0                                   # never ends by itself: it loops
    fixed = s2s.translate(["ab", "abcdefgh"], details=True)                # a run without a ratio: one cap
    assert [len(t.hypotheses[0].tokens) for t in fixed] == [2 * 6 + 10] * 2
    s2s.length_ratio_ = 0.5
    for beam in (None, 3):
        out = s2s.translate(["ab", "abcdefgh"], beam=beam, details=True)
        assert [len(t.hypotheses[0].tokens) for t in out] == [2 + 10, 8 + 10]      # 2 x 0.5 x length + 10
        assert all(t.hypotheses[0].capped for t in out)
    assert len(s2s.translate("abcdefgh", max_tokens=5, details=True).hypotheses[0].tokens) == 5   # it still wins
    report = s2s.evaluate([("ab", "x"), ("abc", "y")])
    assert report["capped"] == 2
    assert report["examples"][0] == {"source": "ab", "output": s2s.translate("ab"), "reference": "x"}


# --- given splits, the dataset field, the budget, the dry run --------------------------------------------------

def write_pairs(path, pairs):
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return str(path)


def test_given_validation_and_test_files_replace_the_held_out_parts(tmp_path):
    from rnnkit.tasks.seq2seq.config import Seq2SeqConfig
    from rnnkit.tasks.seq2seq.data import load_pairs

    train, val, test = reverse_pairs(200, 5), reverse_pairs(20, 6), reverse_pairs(10, 7)
    config = Seq2SeqConfig(tsv=write_pairs(tmp_path / "t.tsv", train), val_tsv=write_pairs(tmp_path / "v.tsv", val),
                           test_tsv=write_pairs(tmp_path / "e.tsv", test))
    assert config.dataset is None                                          # a --tsv run names no dataset
    splits = load_pairs(config)
    assert (splits.train, splits.val, splits.test) == (train, val, test)
    only_val = load_pairs(Seq2SeqConfig(tsv=config.tsv, val_tsv=config.val_tsv, test_frac=0.2))
    assert only_val.val == val and 20 < len(only_val.test) < 70 and len(only_val.train) + len(only_val.test) == 200
    with pytest.raises(FileNotFoundError, match=r"test_tsv='.*nope.tsv': no such file"):
        load_pairs(Seq2SeqConfig(tsv=config.tsv, test_tsv=str(tmp_path / "nope.tsv")))


def test_the_budget_holds_the_test_report(tmp_path):
    torch.set_num_threads(1)
    # What a first fit in a process imports (seconds on a busy machine, counted in its budget), imported before.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    import sacrebleu  # noqa: F401
    pairs = reverse_pairs(600, 8)
    s2s = Seq2Seq(source_level="char", target_level="char", hidden_size=16, embedding_size=8, encoder_layers=1,
                  decoder_layers=1, max_minutes=0.1, epochs=1000)
    start = time.monotonic()
    s2s.fit(pairs, reverse_pairs(50, 9), test_pairs=reverse_pairs(300, 10), progress=False)
    seconds = time.monotonic() - start
    assert 0.7 * 6 <= seconds <= 6 * 1.05 + 0.5, seconds                    # 0.1 minutes, the report included
    assert s2s.trainer_.stop_reason == "max_minutes" and s2s.trainer_.config.max_minutes < 0.1
    assert s2s.test_metrics_["part"] == "test" and s2s.test_metrics_["n"] >= 1


def test_the_report_decodes_a_sample_when_the_whole_test_part_would_not_fit(reverser):
    from rnnkit.tasks.base import Prepared

    test = reverse_pairs(100, 11)
    total = len(group_references(test))
    prepared = Prepared("x", (), test_pairs=test, deadline=time.monotonic(), report_seconds=1.0, decode_rate=0.05,
                        run_dir=None)
    reverser._after_fit(prepared)                                           # 1 s at 0.05 s a source: 20 of them
    assert reverser.test_metrics_["n"] == 20 and reverser.test_metrics_["sample_of"] == total
    reverser._after_fit(Prepared("x", (), test_pairs=test, deadline=None, run_dir=None))
    assert reverser.test_metrics_["n"] == total and "sample_of" not in reverser.test_metrics_


def test_cli_tsv_defaults_dry_run_and_config(tmp_path, capsys):
    words = "zero one two three four five six seven eight nine".split()
    tsv = write_pairs(tmp_path / "n.tsv", [(f"{words[n // 100]}-{words[n // 10 % 10]}-{words[n % 10]}.", str(n))
                                           for n in range(300)])
    assert main(["seq2seq", "train", "--tsv", tsv, "--dataset", "cmudict", "--dry-run"]) == 2
    assert "--dataset='cmudict': expected no --dataset with --tsv" in capsys.readouterr().err
    start = time.monotonic()
    assert main(["seq2seq", "train", "--tsv", tsv, "--dry-run", "--run-dir", str(tmp_path / "dry")]) == 0
    assert time.monotonic() - start < 30                                   # seconds, not minutes
    out = capsys.readouterr()
    assert "tokens chosen from the" in out.err and "source words (12 distinct words" in out.err
    assert "target characters" in out.err and out.err.count("  ->  ") == 3      # a few decoded examples
    doc = json.loads((tmp_path / "dry" / "config.json").read_text())
    assert doc["config"]["dataset"] is None and doc["data"]["tsv"] == tsv and doc["data"]["dry_run"]
    assert doc["data"]["sizes"]["train"] <= 256 and doc["data"]["sizes"]["test"] <= 8
    report = json.loads((tmp_path / "dry" / "test_metrics.json").read_text())
    assert report["n"] <= 8 and len(report["examples"]) == 3

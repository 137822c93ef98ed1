"""Logits processors, token choice, beam search and the plain stateful loop on tiny hand-built logits."""

import math
import re

import numpy as np
import pytest
import torch

from rnnkit.generation.processors import (LogitsProcessorList, Temperature, TopK, TopP, compose, make_processors,
                                          reweight)
from rnnkit.generation.search import beam_search, greedy, make_generator, sample, sample_uniform
from rnnkit.generation.stateful import decode

NEG = float("-inf")


def msg(text):
    return re.escape(text)


def logp(*probs):
    """Logits whose softmax is exactly ``probs`` (float64, shape (1, V))."""
    return torch.tensor([probs], dtype=torch.float64).log()


def kept(logits):
    """Indices of the tokens a processor left finite, per row."""
    return [torch.nonzero(torch.isfinite(row)).flatten().tolist() for row in logits]


# --- reweight (NumPy) -------------------------------------------------------------------------

def test_reweight_hand_numbers():
    p = [0.7, 0.2, 0.1]
    # T = 0.5 squares the probabilities: [0.49, 0.04, 0.01] / 0.54
    np.testing.assert_allclose(reweight(p, 0.5), [0.49 / 0.54, 0.04 / 0.54, 0.01 / 0.54], rtol=1e-12)
    np.testing.assert_allclose(reweight(p, 0.5), [0.9074074, 0.0740741, 0.0185185], atol=1e-7)
    np.testing.assert_allclose(reweight(p, 1.0), p, rtol=1e-12)
    out = reweight(p)
    assert out.dtype == np.float64 and math.isclose(out.sum(), 1.0)
    # T = 2 takes square roots: flatter, order kept
    r = np.sqrt(p) / np.sqrt(p).sum()
    np.testing.assert_allclose(reweight(p, 2.0), r, rtol=1e-12)


def test_reweight_zeros_rows_and_unnormalised():
    np.testing.assert_allclose(reweight([0.0, 0.5, 0.5], 0.3), [0.0, 0.5, 0.5])
    out = reweight([[7.0, 2.0, 1.0], [1.0, 1.0, 2.0]], 1.0)
    np.testing.assert_allclose(out, [[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]])
    # very low temperature concentrates on the argmax without overflow
    np.testing.assert_allclose(reweight([0.7, 0.2, 0.1], 1e-3), [1.0, 0.0, 0.0], atol=1e-12)


def test_reweight_errors():
    with pytest.raises(ValueError, match=msg("temperature=0: expected a number in (0, inf); temperature 0 means "
                                             "greedy decoding: use greedy()")):
        reweight([0.5, 0.5], 0)
    with pytest.raises(ValueError, match=msg("temperature=-1.0: expected a number in (0, inf)")):
        reweight([0.5, 0.5], -1.0)
    with pytest.raises(ValueError, match=msg("preds=[0.5, -0.1]: expected finite probabilities >= 0")):
        reweight([0.5, -0.1])
    with pytest.raises(ValueError, match=msg("preds=[0.0, 0.0]: expected finite probabilities")):
        reweight([0.0, 0.0])


# --- processors -------------------------------------------------------------------------------

def test_temperature():
    x = torch.tensor([[1.0, 2.0, 4.0]])
    assert torch.equal(Temperature(2.0)(None, x), torch.tensor([[0.5, 1.0, 2.0]]))
    # softmax(logits / T) equals reweight(softmax(logits), T)
    probs = torch.softmax(logp(0.7, 0.2, 0.1) / 0.5, -1)
    np.testing.assert_allclose(probs[0].numpy(), reweight([0.7, 0.2, 0.1], 0.5), rtol=1e-12)


def test_top_k_keeps_the_k_largest():
    x = torch.tensor([[1.0, 3.0, 2.0, 0.0], [5.0, -1.0, 4.0, 6.0]])
    out = TopK(2)(None, x)
    assert kept(out) == [[1, 2], [0, 3]]
    assert torch.equal(out[0], torch.tensor([NEG, 3.0, 2.0, NEG]))  # kept logits are unchanged
    assert kept(TopK(1)(None, x)) == [[1], [3]]
    assert kept(TopK(10)(None, x)) == [[0, 1, 2, 3]] * 2  # k beyond the vocabulary keeps all


def test_top_k_ties_at_the_boundary_are_all_kept():
    x = torch.tensor([[2.0, 2.0, 2.0, 0.0], [1.0, 2.0, 2.0, 0.0]])
    assert kept(TopK(2)(None, x)) == [[0, 1, 2], [1, 2]]


def test_top_p_smallest_set_reaching_p():
    x = logp(0.5, 0.3, 0.15, 0.05)
    assert kept(TopP(0.45)(None, x)) == [[0]]        # 0.5 >= 0.45 already
    assert kept(TopP(0.7)(None, x)) == [[0, 1]]      # 0.5 < 0.7 <= 0.8
    assert kept(TopP(0.81)(None, x)) == [[0, 1, 2]]  # 0.8 < 0.81 <= 0.95
    assert kept(TopP(0.96)(None, x)) == [[0, 1, 2, 3]]
    assert kept(TopP(1.0)(None, x)) == [[0, 1, 2, 3]]
    assert kept(TopP(0.01)(None, x)) == [[0]]        # at least one token survives
    # order in the vocabulary does not matter, and kept logits are untouched
    y = logp(0.15, 0.5, 0.05, 0.3)
    out = TopP(0.7)(None, y)
    assert kept(out) == [[1, 3]] and torch.equal(out[0, [1, 3]], y[0, [1, 3]])


def test_top_p_ties_rank_by_index():
    assert kept(TopP(0.3)(None, logp(0.25, 0.25, 0.25, 0.25))) == [[0, 1]]


def test_top_p_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 12, generator=gen, dtype=torch.float64) * 2
    for p in (0.1, 0.5, 0.9, 0.99):
        out = TopP(p)(None, logits)
        for row, got in zip(logits, kept(out)):
            probs = torch.softmax(row, -1)
            order = torch.argsort(probs, descending=True)
            m = int(torch.searchsorted(torch.cumsum(probs[order], 0), torch.tensor(p, dtype=torch.float64))) + 1
            assert sorted(got) == sorted(order[:m].tolist()), p


def test_processors_work_on_float32_after_masking():
    # top-k then top-p: -inf entries carry no probability and stay removed
    x = torch.tensor([[4.0, 3.0, 0.0, -2.0]])
    out = compose(TopK(3), TopP(0.9))(None, x)
    assert out.dtype == torch.float32 and kept(out) == [[0, 1]]


@pytest.mark.parametrize("proc", [Temperature(0.7), TopK(2), TopP(0.5), TopP(1.0),
                                  compose(Temperature(2.0), TopK(3), TopP(0.8))])
def test_processors_do_not_modify_input(proc):
    x = torch.tensor([[1.0, 3.0, 2.0, 0.0], [0.5, 0.5, -1.0, 2.0]])
    before = x.clone()
    tokens = torch.zeros(2, 3, dtype=torch.long)
    out = proc(tokens, x)
    assert torch.equal(x, before)
    assert out is not x and out.shape == x.shape
    out.fill_(0.0)  # writing into the result must not reach the input either
    assert torch.equal(x, before)


# --- composition ------------------------------------------------------------------------------

def test_compose_applies_in_the_given_order():
    calls = []

    def record(name):
        def proc(tokens, logits):
            calls.append(name)
            return logits + 1
        return proc

    chain = compose(record("a"), record("b"), record("c"))
    assert isinstance(chain, LogitsProcessorList) and len(chain) == 3
    out = chain(None, torch.zeros(1, 2))
    assert calls == ["a", "b", "c"] and torch.equal(out, torch.full((1, 2), 3.0))


def test_order_changes_the_result():
    x = logp(0.5, 0.3, 0.2)
    # Temperature 2 first flattens to about [0.416, 0.322, 0.263]: 0.737 < 0.75, so all three stay.
    assert kept(compose(Temperature(2.0), TopP(0.75))(None, x)) == [[0, 1, 2]]
    # Top-p first sees [0.5, 0.3, 0.2]: 0.8 >= 0.75 after two tokens, so the third is cut.
    assert kept(compose(TopP(0.75), Temperature(2.0))(None, x)) == [[0, 1]]


def test_make_processors():
    chain = make_processors(temperature=0.8, top_k=5, top_p=0.9)
    assert [type(p) for p in chain] == [Temperature, TopK, TopP]
    assert (chain[0].temperature, chain[1].k, chain[2].p) == (0.8, 5, 0.9)
    assert len(make_processors()) == 0 and len(make_processors(top_p=1.0)) == 0
    with pytest.raises(ValueError, match=msg("temperature=0: expected a number in (0, inf); temperature 0 means")):
        make_processors(temperature=0)
    with pytest.raises(ValueError, match=msg("top_k=0: expected an integer >= 1")):
        make_processors(top_k=0)
    with pytest.raises(ValueError, match=msg("top_p=1.5: expected a number in (0, 1]")):
        make_processors(top_p=1.5)


@pytest.mark.parametrize("make, text", [
    (lambda: Temperature(0), "temperature=0: expected a number in (0, inf); temperature 0 means greedy"),
    (lambda: Temperature(-0.5), "temperature=-0.5: expected a number in (0, inf)"),
    (lambda: Temperature(float("inf")), "temperature=inf: expected a number in (0, inf)"),
    (lambda: Temperature("hot"), "temperature='hot': expected a number"),
    (lambda: TopK(0), "k=0: expected an integer >= 1"),
    (lambda: TopK(2.5), "k=2.5: expected an integer >= 1"),
    (lambda: TopP(0), "p=0: expected a number in (0, 1]"),
    (lambda: TopP(1.01), "p=1.01: expected a number in (0, 1]"),
    (lambda: compose(TopK(2), 3), "processors[1]=3: expected a callable (tokens, logits) -> logits"),
    (lambda: TopK(2)(None, [1.0, 2.0]), "logits=[1.0, 2.0]: expected a torch.Tensor"),
    (lambda: greedy(torch.zeros(2, 0)), "logits=<tensor of shape (2, 0)>: expected a tensor (B, V)"),
    (lambda: make_generator(-1), "seed=-1: expected an integer between 0 and"),
    (lambda: sample(torch.zeros(1, 2), generator=3), "generator=3: expected a torch.Generator or None"),
])
def test_argument_errors(make, text):
    with pytest.raises(ValueError, match=msg(text)):
        make()


# --- choosing ---------------------------------------------------------------------------------

def test_greedy_picks_argmax():
    x = torch.tensor([[0.1, 2.0, -1.0], [5.0, 0.0, 0.0], [1.0, 3.0, 3.0]])
    assert greedy(x).tolist() == [1, 0, 1]  # first index on ties
    assert greedy(x[0]).item() == 1


def test_sample_frequencies_approach_probabilities():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().expand(40_000, 4)                           # (B, V): many independent draws
    draws = sample(logits, generator=make_generator(123))
    assert draws.shape == (40_000,) and draws.dtype == torch.long
    freq = torch.bincount(draws, minlength=4).double() / draws.numel()
    # standard error is at most sqrt(0.25 / 40000) = 0.0025; 0.01 is four of those
    assert torch.allclose(freq, probs.double(), atol=0.01), freq


def test_sample_never_picks_filtered_tokens():
    x = TopK(2)(None, torch.tensor([[0.0, 1.0, 0.5, 0.9]]).expand(2000, 4))
    assert set(sample(x, make_generator(0)).tolist()) <= {1, 3}


def test_same_seed_same_samples():
    logits = torch.randn(64, 10, generator=torch.Generator().manual_seed(1))
    a = sample(logits, make_generator(7))
    b = sample(logits, make_generator(7))
    c = sample(logits, make_generator(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    gen = make_generator(7)
    first, second = sample(logits, gen), sample(logits, gen)  # one generator keeps advancing
    assert torch.equal(first, a) and not torch.equal(first, second)


def test_sample_shapes():
    gen = make_generator(0)
    assert sample(torch.zeros(5), gen).shape == ()
    assert sample(torch.zeros(2, 3, 5), gen).shape == (2, 3)
    assert make_generator(0).device == torch.device("cpu")


# --- sample_uniform and beam_search -------------------------------------------------------------------------

def test_sample_uniform_is_the_inverse_cdf():
    logits = torch.tensor([0.2, 0.3, 0.5]).log().expand(5, 3)
    u = torch.tensor([0.0, 0.1999, 0.2001, 0.49, 0.51])
    # token i when mass(0..i-1) <= u < mass(0..i): boundaries at 0.2 and 0.5
    assert sample_uniform(logits, u).tolist() == [0, 0, 1, 1, 2]
    # a token of probability 0 is never chosen, even at u = 0 or at its boundary
    masked = torch.tensor([[-float("inf"), 0.0, 0.0]] * 3)
    assert sample_uniform(masked, torch.tensor([0.0, 0.5, 0.9999])).tolist() == [1, 2, 2]


def test_sample_uniform_checks_the_uniforms():
    with pytest.raises(ValueError, match=r"uniforms=<tensor of shape \(3,\)>: expected a tensor of shape \(2,\)"):
        sample_uniform(torch.zeros(2, 4), torch.zeros(3))


def test_beam_search_finds_the_best_sequence_greedy_misses():
    # A hand-built Markov model: the state is the last token. From the start: a 0.5, b 0.4, c 0.1;
    # after a: a 0.34, b and c 0.33; after b: c 0.9. Best 2-token sequence: b c (0.36); greedy: a ?.
    probs = torch.tensor([[0.0, 0.5, 0.4, 0.1],    # start (token 0)
                          [0.0, 0.34, 0.33, 0.33],
                          [0.0, 0.05, 0.05, 0.9],
                          [0.0, 0.4, 0.3, 0.3]])
    logp = probs.clamp_min(1e-30).log()

    def step(tokens, state):
        return logp[tokens], tokens

    tokens, scores = beam_search(step, torch.tensor([0]), logp[:1], beam_size=2, length=2, num_return=2)
    assert tokens.tolist() == [[2, 3], [1, 1]]
    assert scores[0].item() == pytest.approx(math.log(0.36))
    assert scores[1].item() == pytest.approx(math.log(0.5 * 0.34))
    greedy, _ = beam_search(step, torch.tensor([0]), logp[:1], beam_size=1, length=2)
    assert greedy.tolist() == [[1, 1]]
    # an end token finishes a beam, which keeps its score and pads
    tokens, scores = beam_search(step, torch.tensor([0]), logp[:1], beam_size=3, length=3, end_token=1)
    assert tokens.tolist() == [[1, 0, 0]] and scores[0].item() == pytest.approx(math.log(0.5))


def test_beam_search_processors_see_the_prefix_and_the_chosen_tokens():
    logp = torch.tensor([[-math.inf, math.log(0.6), math.log(0.4)]] * 3)   # token 0 is never chosen
    seen = []

    def record(tokens, logits):
        seen.append(tokens.tolist())
        return logits

    def step(tokens, state):
        return logp[tokens], state

    tokens, _ = beam_search(step, None, logp[:1], beam_size=2, length=2, processors=record,
                            prefix=torch.tensor([[2, 2]]))
    assert tokens.tolist() == [[1, 1]]                                   # the prefix is not in the result
    assert seen == [[[2, 2]], [[2, 2, 1], [2, 2, 2]]]
    with pytest.raises(ValueError, match=msg("prefix=<tensor of shape (3,)>: expected a tensor (1, T0)")):
        beam_search(step, None, logp[:1], beam_size=2, length=2, prefix=torch.tensor([1, 2, 3]))


# --- user processors in the chain, and the plain stateful loop --------------------------------------------------

def test_make_processors_puts_user_processors_last():
    def ban_first(tokens, logits):
        return logits.index_fill(-1, torch.tensor([0]), NEG)

    chain = make_processors(temperature=0.5, top_k=2, processors=[ban_first])
    assert [type(p) for p in chain[:2]] == [Temperature, TopK] and chain[2] is ban_first
    # top-k keeps tokens 0 and 1 (of 3); the user's processor then bans token 0: one token is left.
    assert kept(chain(None, torch.tensor([[3.0, 2.0, 1.0]]))) == [[1]]
    assert list(make_processors(processors=(ban_first,))) == [ban_first]
    with pytest.raises(ValueError, match=msg("expected a list of callables (tokens, logits) -> logits")):
        make_processors(processors=ban_first)
    with pytest.raises(ValueError, match=msg("processors[0]='x': expected a callable (tokens, logits) -> logits")):
        make_processors(processors=["x"])


# A Markov model over tokens 1..3 (0 is padding): the state is the last token, the logits its row.
MARKOV = torch.tensor([[0.0, 0.5, 0.4, 0.1],      # the start
                       [0.0, 0.1, 0.8, 0.1],      # after 1
                       [0.0, 0.1, 0.1, 0.8],      # after 2
                       [0.0, 0.7, 0.2, 0.1]]).clamp_min(1e-30).log()


def markov_step(tokens, state):                   # tokens (N,) -> logits (N, V), the new state
    return MARKOV[tokens], tokens


def test_decode_greedy_follows_the_argmax_chain():
    start = MARKOV[:1].expand(2, -1)
    out = decode(markov_step, start, None, 5, greedy=True)
    assert out.tolist() == [[1, 2, 3, 1, 2]] * 2


def test_decode_samples_by_inverse_cdf_of_the_given_uniforms():
    # From the start: u = 0.45 < 0.5 -> 1; after 1: u = 0.95 >= 0.9 -> 3; after 3: u = 0.75 >= 0.7 -> 2.
    uniforms = torch.tensor([[0.45], [0.95], [0.75]])
    assert decode(markov_step, MARKOV[:1], None, 3, uniforms=uniforms).tolist() == [[1, 3, 2]]
    # The same numbers through sample_uniform, one step at a time, choose the same tokens.
    tokens, logits = [], MARKOV[:1]
    for u in uniforms:
        tokens.append(int(sample_uniform(logits, u)))
        logits = MARKOV[tokens[-1:]]
    assert tokens == [1, 3, 2]
    with pytest.raises(ValueError, match=msg("uniforms=<tensor of shape (2, 1)>: expected a tensor of shape (3, 1)")):
        decode(markov_step, MARKOV[:1], None, 3, uniforms=torch.zeros(2, 1))
    with pytest.raises(ValueError, match=msg("uniforms=None: expected a tensor of shape (3, 1)")):
        decode(markov_step, MARKOV[:1], None, 3)


def test_decode_end_token_pads_and_stops():
    calls = []

    def step(tokens, state):
        calls.append(tokens.tolist())
        return markov_step(tokens, state)

    # Row 0 ends at once (greedy 1 = the end token); row 1 starts after 1 and goes 2, 3, 1 (the end).
    out = decode(step, MARKOV[[0, 1]], None, 6, greedy=True, end_token=1)
    assert out.tolist() == [[1, 0, 0, 0, 0, 0], [2, 3, 1, 0, 0, 0]]
    assert len(calls) == 2                                              # no step after every row ended


def test_decode_processors_see_the_prefix_then_the_chosen_tokens():
    seen = []

    def ban_repeats(tokens, logits):                                    # a user's processor: no token twice in a row
        seen.append(tokens.clone())
        return logits.scatter(1, tokens[:, -1:], NEG)

    out = decode(markov_step, MARKOV[[2]], torch.tensor([2]), 4, greedy=True, processors=ban_repeats,
                 prefix=torch.tensor([[3, 2]]))
    assert out.tolist() == [[3, 1, 2, 3]]
    assert [t.tolist() for t in seen] == [[[3, 2]], [[3, 2, 3]], [[3, 2, 3, 1]], [[3, 2, 3, 1, 2]]]

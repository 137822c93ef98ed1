"""Choosing tokens: greedy, random sampling, and beam search over any stateful step function.

``greedy`` takes the argmax and ``sample`` draws from ``softmax(logits)``; pass a generator from
``make_generator(seed)`` for draws that repeat run after run.

``sample_uniform`` makes the same draw from a uniform number the caller supplies (inverse CDF), so
two implementations of a sampling loop fed the same pre-drawn numbers choose the same tokens (the
plain loop in ``stateful.py`` and the compiled ones in ``fast.py`` and ``native.py``).

``beam_search`` keeps the ``beam_size`` most likely continuations under any stateful step function,
scoring with the log-softmax of the processed logits (so temperature, top-k, top-p and a user's own
processors apply to it too). A step function is the one shape every decoder gives generation::

    step(tokens (K,), state) -> (logits (K, V), state)

``batch_beam_search`` decodes a batch of inputs (an encoder-decoder's sources, a captioner's images) with
their beams as one batch of rows: the step function's shape, ``step(tokens, state) -> (logits, state[,
attention])``, with GNMT's length normalisation and coverage penalty, ``n_best`` outputs with scores, and
each step's attention on request.

Temperature 0 has no distribution to sample from; its limit is the argmax, so callers map
``temperature == 0`` to ``greedy`` themselves (the text-generation task does).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import torch

from rnnkit._checks import check_int, fail
from rnnkit.generation.processors import _check_logits, _ShapeOf

__all__ = ["greedy", "sample", "make_generator", "sample_uniform", "select_rows", "beam_search"]


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most likely token per row: ``(B, V) -> (B,)`` (first index on ties)."""
    _check_logits(logits)
    return torch.argmax(logits, dim=-1)


def sample(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row from ``softmax(logits)``: ``(B, V) -> (B,)`` (any leading shape works).

    ``generator`` (see ``make_generator``) must live on the same device as ``logits``.
    """
    _check_logits(logits)
    if generator is not None and not isinstance(generator, torch.Generator):
        fail("generator", generator, "a torch.Generator or None")
    work = logits if logits.dtype == torch.float64 else logits.float()
    probs = torch.softmax(work, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])                                    # (N, V)
    choice = torch.multinomial(flat, num_samples=1, generator=generator)         # (N, 1)
    return choice.reshape(probs.shape[:-1])


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` seeded with ``seed``: the same seed gives the same draws from ``sample``."""
    seed = check_int("seed", seed, min=0, max=2**64 - 1)
    try:
        gen = torch.Generator(device=device)
    except (RuntimeError, TypeError) as e:
        fail("device", device, f"a torch device this machine has ({e})")
    gen.manual_seed(seed)
    return gen


def sample_uniform(logits: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Draw one token per row from ``softmax(logits)`` using the given uniform numbers (inverse CDF).

    ``logits`` (B, V), ``uniforms`` (B,) in [0, 1): token i is chosen when the probability mass of
    tokens 0..i-1 is <= ``u`` < the mass of tokens 0..i. A token of probability 0 (logit -inf) is
    never chosen. Returns (B,) long.
    """
    _check_logits(logits)
    if not isinstance(uniforms, torch.Tensor) or uniforms.shape != logits.shape[:-1]:
        fail("uniforms", uniforms if not isinstance(uniforms, torch.Tensor) else _ShapeOf(uniforms),
             f"a tensor of shape {tuple(logits.shape[:-1])}: one number in [0, 1) per row")
    work = logits if logits.dtype == torch.float64 else logits.float()
    cum = torch.cumsum(torch.softmax(work, dim=-1), dim=-1)                    # (B, V)
    # Scaled by the total mass, which rounding leaves a hair away from 1.
    target = (uniforms.to(cum.dtype) * cum[..., -1]).unsqueeze(-1)             # (B, 1)
    return torch.searchsorted(cum, target, right=True).squeeze(-1).clamp_max(logits.shape[-1] - 1)


def select_rows(state: Any, index: torch.Tensor) -> Any:
    """Rows ``index`` of every tensor in a (nested tuple/list of) state, batch on dim 0."""
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index)
    if isinstance(state, (tuple, list)):
        return type(state)(select_rows(s, index) for s in state)
    if state is None:
        return None
    fail("state", type(state).__name__, "a tensor or nested tuples/lists of tensors (batch on dim 0)")


def beam_search(step: Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]], state: Any,
                logits: torch.Tensor, beam_size: int, length: int,
                processors: Callable | None = None, end_token: int | None = None,
                num_return: int = 1, prefix: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``num_return`` most likely continuations of length ``length`` (or ending at ``end_token``).

    ``step(tokens (K,), state) -> (logits (K, V), state)`` advances a stateful model by one token for
    K rows; ``state`` (batch 1, tensors with batch on dim 0) and ``logits`` (1, V) are the model's
    state and next-token scores after the prefix. Scores are sums of
    ``log_softmax(processors(tokens, logits))``; a beam that emits ``end_token`` is finished and keeps
    its score (no length normalisation, so with an end token shorter endings are favoured when
    their probability is higher). ``prefix`` (1, T0), the tokens the state was built from (a seed),
    comes before the chosen tokens in what the processors see; it is not part of the result. Returns
    tokens (num_return, length), padded with 0 after an end, best first, and their scores (num_return,).
    """
    beam_size = check_int("beam_size", beam_size, min=1)
    length = check_int("length", length, min=0)
    num_return = check_int("num_return", num_return, min=1, max=beam_size)
    _check_logits(logits)
    if logits.dim() != 2 or logits.shape[0] != 1:
        fail("logits", _ShapeOf(logits), "a tensor (1, V): the scores after one prefix")
    process = processors if processors is not None else (lambda tokens, x: x)
    V = logits.shape[-1]
    if prefix is None:
        prefix = torch.zeros(1, 0, dtype=torch.long)
    if not isinstance(prefix, torch.Tensor) or prefix.dim() != 2 or prefix.shape[0] != 1:
        fail("prefix", prefix if not isinstance(prefix, torch.Tensor) else _ShapeOf(prefix),
             "a tensor (1, T0) of token ids, or None")
    tokens = prefix.long()                                                      # (K, T0 + t): the history
    scores = torch.zeros(1, dtype=torch.float64)                                # (K,) summed log-probs
    finished = torch.zeros(1, dtype=torch.bool)                                 # (K,)
    for t in range(length):
        logp = torch.log_softmax(process(tokens, logits).double(), dim=-1)       # (K, V)
        # A finished beam has one continuation, padding, at no cost: it stays in the race unchanged.
        logp = torch.where(finished.unsqueeze(1), torch.full_like(logp, -math.inf), logp)
        logp[finished, 0] = 0.0
        cand = (scores.unsqueeze(1) + logp).flatten()                           # (K * V,)
        k = min(beam_size, int(torch.isfinite(cand).sum()))
        top = torch.topk(cand, k)                                               # best first, ties by index
        rows, cols = top.indices // V, top.indices % V
        tokens = torch.cat([tokens[rows], cols.unsqueeze(1)], dim=1)
        scores = top.values
        finished = finished[rows]
        if end_token is not None:
            finished = finished | (cols == end_token)
        if bool(finished.all()) or t == length - 1:
            break
        state = select_rows(state, rows)
        logits, state = step(cols, state)
    tokens = tokens[:, prefix.shape[1]:]                                        # (K, t): the chosen ones
    if tokens.shape[1] < length:
        tokens = torch.cat([tokens, tokens.new_zeros(tokens.shape[0], length - tokens.shape[1])], dim=1)
    n = min(num_return, tokens.shape[0])
    return tokens[:n], scores[:n]


# ---------------------------------------------------------------------------------------------------------
# Batched beam search: a batch of inputs x the beam width, decoded together (GNMT's scores)
# ---------------------------------------------------------------------------------------------------------

__all__ += ["length_penalty", "coverage_penalty", "expand_rows", "BeamResult", "batch_beam_search"]


def length_penalty(lengths: torch.Tensor | float, alpha: float) -> torch.Tensor | float:
    """GNMT's length normalisation (Wu et al. 2016): ``lp(Y) = (5 + |Y|)^α / (5 + 1)^α``.

    A hypothesis' log-probability is divided by it, so with ``α > 0`` longer outputs lose less for their
    length; ``α = 0`` gives 1 (no normalisation)."""
    return ((5.0 + lengths) / 6.0) ** alpha


def coverage_penalty(coverage: torch.Tensor, beta: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """GNMT's coverage penalty: ``cp(X; Y) = β Σ_i log(min(Σ_j p_ij, 1))`` over the source positions i.

    ``coverage`` (..., S): the attention each source position received, summed over the output steps j so
    far; ``mask`` (..., S) marks the valid positions (padding is not a source word and never counts). It
    is <= 0: a hypothesis that left source words unattended loses. Coverage is clamped below at 1e-10
    against log(0). Returns (...)."""
    covered = torch.log(coverage.clamp(min=1e-10, max=1.0))
    if mask is not None:
        covered = covered.masked_fill(~mask.bool(), 0.0)
    return beta * covered.sum(-1)


def _map_rows(fn: Callable[[torch.Tensor], torch.Tensor], state: Any) -> Any:
    """``fn`` on every tensor of a nested state (tensors, tuples, named tuples, lists, dicts, None)."""
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(_map_rows(fn, s) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(_map_rows(fn, s) for s in state)
    if isinstance(state, dict):
        return {k: _map_rows(fn, v) for k, v in state.items()}
    if state is None:
        return None
    fail("state", type(state).__name__, "tensors, or nested tuples/lists/dicts of tensors (batch on dim 0)")


def expand_rows(state: Any, k: int) -> Any:
    """Every row of every tensor in a nested state repeated ``k`` times in place: (B, ...) -> (B*k, ...),
    row ``b*k + j`` a copy of row b. What :func:`batch_beam_search` does to the state it is given; a step
    function's fixed inputs (an encoder's memory, image features) can be expanded once this way and bound
    into the step function instead of travelling in the state, which is reordered at every step."""
    return _map_rows(lambda t: t.repeat_interleave(k, dim=0), state)


class BeamResult(NamedTuple):
    """The ``n_best`` outputs of each input, best first. L is the longest output (at most max_length)."""

    tokens: torch.Tensor             # (B, n_best, L) long: the tokens, <eos> included, padded after it
    lengths: torch.Tensor            # (B, n_best): tokens of each output, <eos> included (none when it was cut)
    scores: torch.Tensor             # (B, n_best) float64: the GNMT score that ranked them
    log_probs: torch.Tensor          # (B, n_best) float64: the summed log-probabilities of the tokens
    attention: torch.Tensor | None   # (B, n_best, L, S): each output step's attention (return_attention)


def batch_beam_search(step: Callable[[torch.Tensor, Any], tuple], state: Any, logits: torch.Tensor,
                      beam_size: int, max_length: int, end_token: int, *, attention: torch.Tensor | None = None,
                      prefix: torch.Tensor | None = None, processors: Callable | None = None,
                      length_penalty_alpha: float = 0.0, coverage_penalty_beta: float = 0.0,
                      source_mask: torch.Tensor | None = None, n_best: int = 1, return_attention: bool = False,
                      pad_token: int = 0) -> BeamResult:
    """Beam search for B inputs at once: the B x ``beam_size`` hypotheses go through ``step`` as one batch.

    ``logits`` (B, V) are the scores of each input's first output token and ``state`` the decoder's state
    after computing them (tensors with the batch on dim 0, nested in tuples/lists/dicts), as for
    :func:`beam_search`: the caller runs the first step for the B inputs once, not for B x beam_size copies
    of them. ``attention`` (B, S): that step's attention (needed for the coverage penalty and
    ``return_attention``). ``prefix`` (B, T0): the tokens the state was built from (``<go>``), seen first by
    the processors. ``step(tokens (N,), state) -> (logits (N, V), state)`` or ``(logits, state, attention
    (N, S))`` then advances N = B x beam_size rows by one token; the state is expanded to those rows here
    (:func:`expand_rows`) and reordered as beams are chosen. Every hypothesis ends at ``end_token`` or
    after ``max_length`` tokens.

    Scores are GNMT's (Wu et al. 2016): ``s(Y, X) = log P(Y|X) / lp(Y) + cp(X; Y)`` with
    :func:`length_penalty` (``length_penalty_alpha``) and :func:`coverage_penalty`
    (``coverage_penalty_beta``; needs the attention, and ``source_mask`` (B, S) when sources are padded).
    ``log P`` sums the log-softmax of the processed logits (``processors(tokens, logits)``, tokens (N, T0 + t):
    the prefix and the tokens chosen so far). At each step the candidates of an input (its beams x the
    vocabulary) are ranked by that score: a candidate ending in ``end_token`` among the best ``beam_size``
    is finished and kept among the input's ``n_best`` finished outputs (the best first), and the best
    ``beam_size`` other candidates are the next beams. An input is done once it has ``n_best`` finished
    outputs and the worst of them scores at least as high as its best live beam (with ``α = β = 0`` no
    live beam can then do better, since log-probabilities only fall); inputs left at ``max_length`` finish
    with their live beams. ``beam_size=1`` is greedy decoding.

    Returns a :class:`BeamResult`; ``attention`` when ``return_attention``.
    """
    beam_size = check_int("beam_size", beam_size, min=1)
    max_length = check_int("max_length", max_length, min=1)
    n_best = check_int("n_best", n_best, min=1)
    if n_best > beam_size:
        fail("n_best", n_best, f"at most beam_size={beam_size} (the outputs are among the beams)")
    _check_logits(logits)
    if logits.dim() != 2:
        fail("logits", _ShapeOf(logits), "a tensor (B, V): the scores of each input's first token")
    alpha = float(length_penalty_alpha)
    beta = float(coverage_penalty_beta)
    if alpha < 0 or beta < 0:
        fail("length_penalty_alpha" if alpha < 0 else "coverage_penalty_beta", min(alpha, beta), "a number >= 0")
    need_attention = return_attention or beta > 0
    B, K, F_ = logits.shape[0], beam_size, n_best
    device = logits.device
    if prefix is None:
        prefix = torch.zeros(B, 0, dtype=torch.long, device=device)
    if not isinstance(prefix, torch.Tensor) or prefix.dim() != 2 or prefix.shape[0] != B:
        fail("prefix", prefix if not isinstance(prefix, torch.Tensor) else _ShapeOf(prefix),
             f"a tensor ({B}, T0) of token ids, or None")
    rows = torch.arange(B, device=device).unsqueeze(1)                         # (B, 1)
    state = expand_rows(state, K)
    logits = logits.repeat_interleave(K, dim=0)                                 # (N, V)
    attn = attention.repeat_interleave(K, dim=0) if attention is not None else None
    prefix = prefix.long().repeat_interleave(K, dim=0)                          # (N, T0) for the processors
    history = torch.zeros(B, K, 0, dtype=torch.long, device=device)            # (B, K, t): chosen tokens
    live_logp = torch.full((B, K), -math.inf, dtype=torch.float64, device=device)
    live_logp[:, 0] = 0.0                                  # one beam to start from; the others join at step 1
    live_rank = live_logp.clone()
    coverage = attn_hist = None
    # The finished outputs of each input, best first: scores, log-probs, lengths, tokens (and attention).
    fin_scores = torch.full((B, F_), -math.inf, dtype=torch.float64, device=device)
    fin_logp = fin_scores.clone()
    fin_len = torch.zeros(B, F_, dtype=torch.long, device=device)
    fin_tokens = torch.full((B, F_, max_length), pad_token, dtype=torch.long, device=device)
    fin_attn = None
    done = torch.zeros(B, dtype=torch.bool, device=device)
    mask = None

    def keep_finished(cand_scores, cand_logp, cand_len, cand_tokens, cand_attn):
        """Merge candidates (B, C) (-inf: not a candidate) into the n_best finished outputs of each input."""
        nonlocal fin_scores, fin_logp, fin_len, fin_tokens, fin_attn
        scores = torch.cat([fin_scores, cand_scores], 1)                       # (B, F + C)
        fin_scores, idx = scores.topk(F_, dim=1)                               # best first
        fin_logp = torch.cat([fin_logp, cand_logp], 1).gather(1, idx)
        fin_len = torch.cat([fin_len, cand_len], 1).gather(1, idx)
        fin_tokens = torch.cat([fin_tokens, cand_tokens], 1)[rows, idx]        # (B, F, L)
        if cand_attn is not None:
            fin_attn = torch.cat([fin_attn, cand_attn], 1)[rows, idx]          # (B, F, L, S)

    t, tokens_in = 0, None                                 # tokens_in: what the next step reads, chosen below
    for t in range(1, max_length + 1):
        if t > 1:
            out = step(tokens_in, state)
            logits, state = out[0], out[1]
            attn = out[2] if len(out) > 2 else None
            _check_logits(logits)
        if need_attention:
            if attn is None:
                fail("coverage_penalty_beta" if beta > 0 else "return_attention", beta if beta > 0 else True,
                     "the attention of every step (a step function that returns (logits, state, attention), "
                     "and the first step's as attention=)")
            attn = attn.detach().double().view(B, K, -1)                        # (B, K, S)
            if coverage is None:
                S = attn.shape[-1]
                coverage = attn.new_zeros(B, K, S)
                attn_hist = attn.new_zeros(B, K, 0, S)
                fin_attn = attn.new_zeros(B, F_, max_length, S)
                mask = (source_mask.to(device).bool().unsqueeze(1) if source_mask is not None else None)
        V = logits.shape[-1]
        if processors is not None:
            logits = processors(torch.cat([prefix, history.view(B * K, -1)], dim=1), logits)
        logp = torch.log_softmax(logits.double(), dim=-1).view(B, K, V)
        cand_logp = live_logp.unsqueeze(-1) + logp                              # (B, K, V)
        rank = cand_logp / length_penalty(float(t), alpha)
        if beta > 0:
            cov_new = coverage + attn                                           # (B, K, S)
            rank = rank + coverage_penalty(cov_new, beta, mask).unsqueeze(-1)
        C = min(2 * K, K * V)
        top_rank, top_idx = rank.view(B, K * V).topk(C, dim=1)                 # (B, C), best first
        parent, tok = top_idx // V, top_idx % V
        top_logp = cand_logp.view(B, K * V).gather(1, top_idx)
        valid = torch.isfinite(top_rank)
        is_end = (tok == end_token) & valid
        cand_hist = torch.cat([history[rows, parent], tok.unsqueeze(-1)], dim=-1)   # (B, C, t)
        cand_attn = None
        if return_attention:
            cand_attn = torch.cat([attn_hist[rows, parent], attn[rows, parent].unsqueeze(2)], dim=2)   # (B, C, t, S)

        # Finished: an end among the best K candidates of an input not done yet.
        new_end = is_end & (torch.arange(C, device=device) < K) & ~done.unsqueeze(1)
        if bool(new_end.any()):
            pad = torch.full((B, C, max_length - t), pad_token, dtype=torch.long, device=device)
            end_attn = (torch.cat([cand_attn, cand_attn.new_zeros(B, C, max_length - t, cand_attn.shape[-1])], 2)
                        if cand_attn is not None else None)
            keep_finished(top_rank.masked_fill(~new_end, -math.inf), top_logp, torch.full_like(tok, t),
                          torch.cat([cand_hist, pad], dim=2), end_attn)

        # The next beams: the best K candidates that did not end.
        live_rank, sel = top_rank.masked_fill(is_end | ~valid, -math.inf).topk(K, dim=1)    # (B, K)
        chosen = parent.gather(1, sel)                                          # (B, K): each beam's parent
        live_logp = top_logp.gather(1, sel)
        history = cand_hist[rows, sel]
        tokens_in = tok.gather(1, sel).view(-1)
        if return_attention:
            attn_hist = cand_attn[rows, sel]
        if beta > 0:
            coverage = cov_new[rows, chosen]

        have = torch.isfinite(fin_scores).sum(1)
        done = done | ((have >= F_) & (fin_scores[:, -1] >= live_rank[:, 0]))
        if bool(done.all()):
            break
        if t < max_length:
            state = _map_rows(lambda s: s.index_select(0, (rows * K + chosen).view(-1)), state)

    if not bool(done.all()):
        # Inputs that reached max_length: their live beams finish without an end token.
        cut = ~done.unsqueeze(1) & torch.isfinite(live_rank)
        pad = torch.full((B, K, max_length - t), pad_token, dtype=torch.long, device=device)
        cut_attn = (torch.cat([attn_hist, attn_hist.new_zeros(B, K, max_length - t, attn_hist.shape[-1])], 2)
                    if return_attention else None)
        keep_finished(live_rank.masked_fill(~cut, -math.inf), live_logp, torch.full_like(chosen, t),
                      torch.cat([history, pad], dim=2), cut_attn)

    L = max(1, int(fin_len.max()))
    return BeamResult(fin_tokens[:, :, :L], fin_len, fin_scores, fin_logp,
                      fin_attn[:, :, :L] if return_attention else None)

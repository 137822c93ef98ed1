"""The fast sampling loop: the whole generate-one-token-at-a-time loop inside TorchScript.

Generating at batch 1 is bound by per-step overhead, not arithmetic: a 2-layer LSTM-256 needs about
1 MFLOP (~10 µs) per character, while a Python loop over ``model(token, state)`` spends ~700 µs
per character in Python and torch's dispatcher. This module removes that overhead:

* the loop (recurrent steps, head, logits processors, choice of the token) is one
  ``torch.jit.script`` method, so no Python runs between steps (:func:`sample` calls it for 2,048
  tokens at a time, carrying the state, so that Ctrl-C is seen between calls);
* every product is one ``addmv`` (batch 1) or ``addmm`` call on contiguous memory. At batch 1 the
  weights keep torch's (out, in) layout, which BLAS splits by rows over the threads: each core
  reads the same half of every matrix at every step, and that half stays in its L2 cache (the 3 MB
  of a 2x256 model overflow one core's 2 MB L2). This alone doubled batch-1 speed on 2 cores;
* the temperature divides the head's weights once per call instead of the logits at every step,
  and the scripted module is frozen (its weights become constants of the graph);
* LSTM gates are reordered once from torch's (i, f, g, o) to (i, f, o, g), so one ``sigmoid`` covers
  the three sigmoid gates and none is spent on g;
* the embedding and the first layer's input projection are folded into one ``(V, G*H)`` table
  (``embedding @ W_ih^T + b``): for a token, the first layer's input half is a row lookup;
* no autograd (``torch.inference_mode``) and no host syncs except the end-token check.

It computes the same function as :func:`rnnkit.generation.stateful.decode` (the plain Python loop
over the model's step function), step for step: the same processors (temperature, top-k, top-p, written here again in
TorchScript, with the same tie rules), and the same choice rule: one pre-drawn uniform number per
token, inverse CDF over the softmax (:func:`rnnkit.generation.search.sample_uniform`). The tests check
that both loops give the same tokens for the same seed. Processors written in Python (a user's own)
cannot run here: ``TextGenerator.generate`` takes the plain loop when it is given any.
"""

from __future__ import annotations

import warnings
from typing import List, Tuple

import torch
from torch import Tensor, nn

KINDS = {"rnn_tanh": 0, "rnn_relu": 1, "gru": 2, "lstm": 3, "mingru": 4, "minlstm": 5}
# Up to this many rows, products use the (out, in) layout (rows split over the threads, each
# thread's half of the weights stays in its core's L2); above it, the (in, out) layout.
ROW_SPLIT_BATCH = 8


class FastSampler(nn.Module):
    """The weights of a :class:`~rnnkit.tasks.textgen.model.LanguageModel`, laid out for one-token steps."""

    def __init__(self, model: nn.Module):
        super().__init__()
        rnn = model.rnn
        kind = sampler_kind(rnn)
        if kind is None:
            raise ValueError(f"cell: the fast sampler runs LSTM, GRU, tanh/relu RNN, minGRU and minLSTM stacks; "
                             f"this model has {type(rnn.cells[0]).__name__}" +
                             (" (bidirectional)" if rnn.bidirectional else ""))
        self.kind = KINDS[kind]
        cells = list(rnn.cells)
        # minGRU and minLSTM have no U: their step is the input projection and a few element-wise operations
        # (the `_cell` branches 4 and 5); placeholders of their own stand for U and its transpose, which they never
        # read (torch.jit.freeze refuses attributes that share memory, as a view or an empty tensor would).
        scan = self.kind >= KINDS["mingru"]
        # LSTM and RNN add both biases before any nonlinearity, so they fold into one; the GRU's
        # b_hh sits inside r * (U h + b_hn) and stays apart.
        fold = self.kind not in (KINDS["gru"], KINDS["mingru"], KINDS["minlstm"])
        H = cells[0].hidden_size
        rows = torch.arange(cells[0].weight_ih.shape[0])                                    # gate rows, G*H
        if self.kind == KINDS["lstm"]:       # (i, f, g, o) -> (i, f, o, g): the sigmoid gates side by side
            rows = torch.cat([rows[:2 * H], rows[3 * H:], rows[2 * H:3 * H]])
        with torch.no_grad():
            bias_in = [(c.bias_ih + c.bias_hh if fold else c.bias_ih)[rows] for c in cells]   # (G*H,)
            emb = model.embed.weight                                                        # (V, E)
            # Row v: the first layer's input projection of token v, W_ih e_v + b: a lookup per step.
            self.table = torch.addmm(bias_in[0], emb, cells[0].weight_ih[rows].t()).contiguous()   # (V, G*H)
            # Two layouts of each matrix. Batch 1 multiplies a matrix by a vector (addmv) on the
            # (out, in) layout, which BLAS splits by rows over the threads: each core reads the same
            # half every step, and that half stays in its L2 cache (one layout for all the model's
            # matrices, 3 MB for 2x256, overflows one core's L2 and streams from L3 at a third of
            # the speed). Batches multiply on the (in, out) layout, which suits matrix-matrix products.
            self.w_ih: List[Tensor] = [c.weight_ih[rows].contiguous() for c in cells]                # (G*H, I)
            self.w_hh: List[Tensor] = [c.weight_ih.new_zeros(1, H) if scan else c.weight_hh[rows].contiguous()
                                       for c in cells]                                              # (G*H, H)
            self.w_ih_t: List[Tensor] = [w.t().contiguous() for w in self.w_ih]                      # (I, G*H)
            self.w_hh_t: List[Tensor] = [w.new_zeros(H, 1) if scan else w.t().contiguous()
                                         for w in self.w_hh]                                        # (H, G*H)
            self.b_in: List[Tensor] = [b.clone() for b in bias_in]
            self.b_hh: List[Tensor] = [c.bias_ih.new_zeros(1) if scan else c.bias_hh[rows].clone() for c in cells]
            self.head_w = model.head.weight.detach().clone()                                   # (V, H)
            self.head_w_t = self.head_w.t().contiguous()                                       # (H, V)
            head_b = model.head.bias.clone()
            head_b[0] = -float("inf")     # index 0 is padding: never chosen (as _no_padding does)
            self.head_b = head_b
        self.num_layers = len(cells)
        self.row_split_batch = ROW_SPLIT_BATCH
        self.hidden_size = cells[0].hidden_size

    def _affine(self, b: Tensor, h: Tensor, w: Tensor, w_t: Tensor) -> Tensor:
        """b + h W^T as a new (N, out) tensor: h (N, in), b (out,) or (N, out)."""
        n = h.shape[0]
        if n == 1:                                                  # matrix times vector
            return torch.addmv(b.view(-1), w, h.view(-1)).unsqueeze(0)
        return torch.addmm(b, h, w.t() if n <= self.row_split_batch else w_t)

    def _cell(self, layer: int, xp: Tensor, h: Tensor, c: Tensor) -> List[Tensor]:
        """One recurrent step of ``layer`` given its input projection xp (N, G*H); returns [h, c].

        Few, large operations: each one costs a few
        microseconds of overhead at batch 1.
        """
        H = self.hidden_size
        if self.kind == 3:                                          # LSTM, gates reordered to (i, f, o, g)
            gates = self._affine(xp, h, self.w_hh[layer], self.w_hh_t[layer])   # (N, 4H): W x + b + U h
            i, f, o = torch.sigmoid(gates.narrow(1, 0, 3 * H)).chunk(3, 1)   # 3 x (N, H)
            g = torch.tanh(gates.narrow(1, 3 * H, H))
            c = torch.addcmul(f * c, i, g)                          # f c + i g
            h = o * torch.tanh(c)
            return [h, c]
        if self.kind >= 4:                                          # minGRU / minLSTM: no U h at all
            if self.kind == 4:                                      # gates (z, h~)
                z = torch.sigmoid(xp.narrow(1, 0, H))
            else:                                                   # gates (f, i, h~): i' = σ(log i - log f)
                d = (torch.nn.functional.softplus(-xp.narrow(1, 0, H))
                     - torch.nn.functional.softplus(-xp.narrow(1, H, H)))
                z = torch.sigmoid(d)
            x_h = xp.narrow(1, xp.shape[1] - H, H)
            r = torch.relu(x_h)
            cand = r + torch.sigmoid(x_h - r)                       # g(x): x + 1/2 above 0, σ(x) below
            h = torch.addcmul(h, z, cand - h)                       # (1 - z) h + z h~, as ScanCell.step
            return [h, c]
        if self.kind == 2:                                          # GRU (reset after U h), gates (r, z, n)
            hp = self._affine(self.b_hh[layer], h, self.w_hh[layer], self.w_hh_t[layer])   # (N, 3H): U h + b_hh
            xr, xz, xn = xp.chunk(3, 1)
            hr, hz, hn = hp.chunk(3, 1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = n + z * (h - n)
        else:                                                       # simple RNN: W x + U h + b
            pre = self._affine(xp, h, self.w_hh[layer], self.w_hh_t[layer])
            h = torch.relu(pre) if self.kind == 1 else torch.tanh(pre)
        return [h, c]

    @torch.jit.export
    def run(self, logits: Tensor, states: List[Tensor], done: Tensor, uniforms: Tensor, temperature: float,
            top_k: int, top_p: float, greedy: bool, end: int) -> Tuple[Tensor, Tensor, List[Tensor], Tensor]:
        """Generate ``uniforms.shape[0]`` tokens for each of N rows (one call of :func:`sample`).

        logits (N, V): the scores for the first token, already divided by the temperature, padding
        masked; states: [h] or [h, c], each (layers, N, H); done (N,): the rows that have emitted
        ``end`` (when end >= 0): they emit padding (0); uniforms (L, N) in [0, 1).
        Returns tokens (N, L), and the scores, states and done to go on from.
        """
        N, V = logits.shape[0], logits.shape[1]
        hs = list(states[0].unbind(0))                              # layers x (N, H)
        cs = list(states[1].unbind(0)) if self.kind == 3 else list(hs)   # unused unless LSTM
        padding = torch.zeros(N, dtype=torch.long)
        head_w, head_w_t, head_b = self.head_w, self.head_w_t, self.head_b
        if not greedy and temperature != 1.0:
            # Divide the head by the temperature once, rather than the logits at every step.
            head_w, head_w_t, head_b = head_w / temperature, head_w_t / temperature, head_b / temperature
        out: List[Tensor] = []
        steps = uniforms.unsqueeze(2).unbind(0)                     # L x (N, 1)
        for t in range(uniforms.shape[0]):
            token = self._choose(logits, steps[t], top_k, top_p, greedy, V)      # (N,)
            if end >= 0:
                token = torch.where(done, padding, token)
                done = done | (token == end)
            out.append(token)
            if end >= 0 and bool(done.all()):
                break
            # (N, G*H): layer 0's input half; one row is read in place (no copy) at batch 1
            x = self.table.narrow(0, int(token[0]), 1) if N == 1 else self.table.index_select(0, token)
            for layer in range(self.num_layers):
                if layer > 0:
                    x = self._affine(self.b_in[layer], hs[layer - 1], self.w_ih[layer], self.w_ih_t[layer])
                hc = self._cell(layer, x, hs[layer], cs[layer])
                hs[layer] = hc[0]
                cs[layer] = hc[1]
            logits = self._affine(head_b, hs[self.num_layers - 1], head_w, head_w_t)   # (N, V), / temperature
        result = torch.stack(out, 1) if len(out) > 0 else torch.zeros(N, 0, dtype=torch.long)
        if result.shape[1] < uniforms.shape[0]:                     # every row ended early
            pad = torch.zeros(N, uniforms.shape[0] - result.shape[1], dtype=torch.long)
            result = torch.cat([result, pad], 1)
        new_states = [torch.stack(hs)] if self.kind != 3 else [torch.stack(hs), torch.stack(cs)]
        return result, logits, new_states, done

    def _choose(self, logits: Tensor, u: Tensor, top_k: int, top_p: float, greedy: bool, V: int) -> Tensor:
        """The processors and the choice, as rnnkit.generation.processors and .search compute them (same ops,
        same order), on logits already divided by the temperature."""
        if greedy:
            return torch.argmax(logits, 1)
        if top_k > 0:
            kth = torch.topk(logits, min(top_k, V), 1).values[:, -1:]   # (N, 1): k-th largest per row
            logits = logits.masked_fill(logits < kth, -float("inf"))
        if top_p < 1.0:
            probs = torch.softmax(logits, 1)
            sorted_probs, order = torch.sort(probs, stable=True, dim=1, descending=True)
            before = torch.cumsum(sorted_probs, 1) - sorted_probs
            drop_sorted = before >= top_p
            drop_sorted[:, 0] = False
            drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
            logits = logits.masked_fill(drop, -float("inf"))
        cum = torch.cumsum(torch.softmax(logits, 1), 1)             # (N, V)
        target = u * cum.narrow(1, V - 1, 1)                        # (N, 1): u times the total mass
        return torch.searchsorted(cum, target, right=True).view(-1).clamp_max(V - 1)


def sampler_kind(rnn: nn.Module) -> str | None:
    """The ``KINDS`` name of the scripted loop that runs this layer's stack, or None (the plain loop then).

    torch's fused kinds (LSTM, GRU with reset_after, tanh/relu RNN) and the scan cells minGRU and minLSTM, one
    direction. The C loop (generation/native.py) is written for the LSTM only: a minGRU or minLSTM sample at
    batch 1 takes the TorchScript loop, whose step per layer is one matrix-vector product (W x: there is no
    U h) and a few element-wise operations."""
    from rnnkit.nn.cells import MinGRUCell, MinLSTMCell

    if rnn.bidirectional:
        return None
    kind = rnn.fused_kind()
    if kind is not None:
        return kind
    cell = type(rnn.cells[0])
    return {MinGRUCell: "mingru", MinLSTMCell: "minlstm"}.get(cell)


def supports(model: nn.Module) -> bool:
    """Whether :class:`FastSampler` runs ``model`` (a language model with ``.rnn``)."""
    return sampler_kind(model.rnn) is not None


CHUNK = 2048      # tokens per call of the scripted loop: Python sees Ctrl-C between calls


def sample(sampler, logits: Tensor, states: List[Tensor], uniforms: Tensor, temperature: float, top_k: int,
           top_p: float, greedy: bool, end: int) -> Tensor:
    """Tokens (N, L) from the scripted sampler, in calls of CHUNK tokens that carry the scores, the
    state and the finished rows. logits (N, V) as the model gives them for the seed; uniforms (L, N)."""
    if not greedy and temperature != 1.0:
        logits = logits / temperature
    logits = logits.clone()
    logits[:, 0] = -float("inf")                                    # index 0 is padding: never chosen
    N, L = logits.shape[0], uniforms.shape[0]
    done = torch.zeros(N, dtype=torch.bool)
    tokens = torch.zeros(N, L, dtype=torch.long)                    # after an end token: padding
    for start in range(0, L, CHUNK):
        part, logits, states, done = sampler.run(logits, states, done, uniforms[start:start + CHUNK],
                                                 temperature, top_k, top_p, greedy, end)
        tokens[:, start:start + part.shape[1]] = part
        if end >= 0 and bool(done.all()):
            break
    return tokens


def _weights_version(model: nn.Module) -> tuple | None:
    """A key that changes when the weights do, or None when it cannot be known.

    In-place updates (an optimizer step, loading weights) bump a tensor's version counter. Tensors made
    under ``torch.inference_mode`` have no version counter (reading it raises "Inference tensors do not
    track version counter"): for such a model the key is None and the sampler is built afresh.
    """
    params = list(model.parameters())
    if any(p.is_inference() for p in params):
        return None
    return tuple((id(p), p._version) for p in params)


def compiled_sampler(model: nn.Module):
    """The scripted sampler for ``model``'s current weights, and the C loop's layout of them (None
    unless the model is a float32 LSTM stack); rebuilt when the weights have changed."""
    cached = getattr(model, "_fast_sampler", None)
    version = _weights_version(model)
    if cached is None or version is None or cached[0] != version:
        fast = FastSampler(model).eval()
        native = None
        if fast.kind == KINDS["lstm"] and fast.table.dtype == torch.float32:
            from rnnkit.generation.native import NativeLSTMSampler
            native = NativeLSTMSampler(fast)
        with warnings.catch_warnings():
            # torch 2.13 marks torch.jit.script and freeze deprecated (DeprecationWarning; FutureWarning from 2.14)
            # in favour of torch.compile, whose cold start (~60 s on a CPU) is too slow for sampling; scripting
            # still works and takes ~1 s.
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.(script|freeze).* deprecated")
            # Freezing turns the weights into constants of the graph: less work per step.
            scripted = torch.jit.freeze(torch.jit.script(fast), preserved_attrs=["run"])
        cached = (version, scripted, native)
        # Kept outside the module's registry (object.__setattr__) so it is not saved as a submodule.
        object.__setattr__(model, "_fast_sampler", cached)
    return cached[1], cached[2]

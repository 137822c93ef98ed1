"""Sequence to sequence benchmarks: quality on held-out numbers (and cmudict), batched beam search, training speed.

Four parts, each printed as a markdown fragment (and appended to --markdown, default /tmp/bench_seq2seq.md):

* ``quality``: French number words -> digits (number-phrases fr-digits; held-out numbers never trained on),
  one model per attention kind (none, additive, dot, general), each trained with the same settings; exact match
  on the test numbers with greedy decoding and with beam 5. The general-attention run is kept in --run-root
  for the speed part.
* ``beam``: beam 5 over 64 test inputs decoded as one batch against the same 64 decoded one input at a time
  (the same function with a batch of 1), interleaved rounds, median inputs/s; greedy for reference.
* ``train``: training throughput (pairs/s: forward, backward, Adam) of rnnkit's encoder-decoder against the same
  model written with raw torch.nn.LSTM / nn.GRU layers (packed sequences) and a plain decoder loop over
  nn.LSTMCell / nn.GRUCell, same sizes and weights layout, on the same batches of number phrases; interleaved
  rounds, median.
* ``cmudict``: grapheme to phoneme on cmudict (hash split by word, stress stripped), a time budget, then PER and
  WER of the held-out words with greedy, beam 5, and the beam width and length penalty (--beams x --alphas)
  with the lowest WER on the validation words.

    python bench/seq2seq.py quality --epochs 15 --threads 1
    python bench/seq2seq.py beam --rounds 5 --threads 1
    python bench/seq2seq.py train --rounds 7 --steps 10 --threads 1
    python bench/seq2seq.py cmudict --minutes 30 --threads 1      # bf16 on a CPU with AMX (--precision)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common import cpu_name
from rnnkit.tasks.seq2seq import Seq2Seq
from rnnkit.tasks.seq2seq.data import batches, encode_pairs, load_pairs

ATTENTIONS = ("none", "additive", "dot", "general")


def machine() -> str:
    load = os.getloadavg()
    return (f"{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} "
            f"thread(s); load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)")


def emit(text: str, path: str) -> None:
    print(text)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")


# -- quality: number words -> digits -------------------------------------------------------------------------

def run_quality(args) -> None:
    rows = []
    for attention in args.attentions:
        suffix = "" if args.source_level == "auto" else f"-{args.source_level}"
        run_dir = Path(args.run_root) / f"numbers-{attention}{suffix}"
        # The settings the figures in docs/benchmarks.md were measured with (the defaults have since become
        # cosine-scheduled, with a minimum of steps and smaller batches for small sets).
        settings = dict(attention=attention, hidden_size=args.hidden, epochs=args.epochs, val_decode=500,
                        log_every=100, early_stop_patience=args.patience, source_level=args.source_level,
                        schedule="constant", min_steps=0, auto_batch=False)
        start = time.monotonic()
        s2s = Seq2Seq(**settings).fit(run_dir=str(run_dir) if args.save else None, progress=False)
        seconds = time.monotonic() - start
        test = load_pairs(s2s.config).test
        greedy = s2s.evaluate(test)
        beam = s2s.evaluate(test, beam=5)
        rows.append((attention, s2s.trainer_.epoch, s2s.trainer_.step, seconds, s2s.trainer_.stop_reason,
                     greedy["exact_match"], beam["exact_match"], beam["token_error_rate"], len(test)))
        print(f"{attention}: {rows[-1]}", file=sys.stderr)
    cmd = " ".join(sys.argv)
    tokens = "words" if args.source_level in ("auto", "word") else "characters"
    lines = [f"### French number words -> digits (number-phrases fr-digits, held-out numbers; source read as "
             f"{tokens})", "",
             f"Command: `python {cmd}`  ", f"Machine: {machine()}.", "",
             f"Encoder: embedding 64, bidirectional LSTM layer ({args.hidden // 2} per direction) + 1 residual "
             f"LSTM layer of {args.hidden}; decoder 2 LSTM layers of {args.hidden} (residual), input feeding; "
             f"dropout 0.1, Adam 2e-3, batch 64, up to {args.epochs} epochs (early stop after {args.patience} "
             f"without a lower validation loss; the best epoch's weights). Test: {rows[0][-1]} numbers "
             f"(5% by hash of the number; 5% more for validation), never trained on.", "",
             "| attention | epochs | steps | train time | exact match, greedy | exact match, beam 5 | "
             "digit error rate, beam 5 | bar (attention + beam) |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for att, epochs, steps, secs, stop, g, b, ter, _ in rows:
        bar = "" if att == "none" else ("≥ 0.99 ✔" if b >= 0.99 else "≥ 0.99 ✘")
        lines.append(f"| {att} | {epochs} ({stop}) | {steps:,} | {secs / 60:.1f} min | {g:.4f} | {b:.4f} | "
                     f"{ter:.4f} | {bar} |")
    emit("\n".join(lines) + "\n", args.markdown)


# -- beam: batched against one input at a time ----------------------------------------------------------------

def run_beam(args) -> None:
    run = Path(args.run_root) / "numbers-general"
    if not (run / "final.safetensors").is_file():
        sys.exit(f"{run}: no trained run; run the quality part first (with --save)")
    s2s = Seq2Seq.load(run)
    texts = [s for s, _ in load_pairs(s2s.config).test[:args.inputs]]
    variants = {
        "beam 5, one input at a time": lambda: [s2s.translate(t, beam=5) for t in texts],
        f"beam 5, {len(texts)} inputs as one batch": lambda: s2s.translate(texts, beam=5, batch_size=len(texts)),
        "greedy, one input at a time": lambda: [s2s.translate(t) for t in texts],
        f"greedy, {len(texts)} inputs as one batch": lambda: s2s.translate(texts, batch_size=len(texts)),
    }
    for fn in variants.values():
        fn()                                                  # warm up
    times = {name: [] for name in variants}
    same = variants["beam 5, one input at a time"]() == variants[f"beam 5, {len(texts)} inputs as one batch"]()
    for _ in range(args.rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    rate = {name: len(texts) / statistics.median(t) for name, t in times.items()}
    one, batch = rate["beam 5, one input at a time"], rate[f"beam 5, {len(texts)} inputs as one batch"]
    lines = ["### Batched beam search (`rnnkit.generation.search.batch_beam_search`)", "",
             f"Command: `python {' '.join(sys.argv)}`  ", f"Machine: {machine()}.", "",
             f"The general-attention model of the quality part ({s2s.config.hidden_size} units), {len(texts)} test "
             f"inputs, beam 5 (GNMT scores, alpha = beta = 0), median of {args.rounds} interleaved rounds. The "
             f"batched outputs equal the one-at-a-time outputs: {same}.", "",
             "| decoding | inputs/s | vs beam 5 one at a time | bar |", "|---|---:|---:|---|"]
    for name, r in rate.items():
        bar = ("≥ 10x ✔" if batch / one >= 10 else "≥ 10x ✘") if "beam 5" in name and "batch" in name else ""
        lines.append(f"| {name} | {r:,.1f} | {r / one:.1f}x | {bar} |")
    emit("\n".join(lines) + "\n", args.markdown)


# -- train: rnnkit against raw torch layers ------------------------------------------------------------------

class RawSeq2Seq(nn.Module):
    """The same encoder-decoder with torch's own layers: nn.LSTM/nn.GRU (packed) encoder layers, and a plain
    Python loop over nn.LSTMCell/nn.GRUCell decoder cells with the same general attention and input feeding."""

    def __init__(self, vs: int, vt: int, emb: int, hid: int, enc_layers: int, dec_layers: int, cell: str):
        super().__init__()
        rnn, rnn_cell = (nn.LSTM, nn.LSTMCell) if cell == "lstm" else (nn.GRU, nn.GRUCell)
        self.lstm = cell == "lstm"
        self.hid = hid
        self.src_embed, self.tgt_embed = nn.Embedding(vs, emb, padding_idx=0), nn.Embedding(vt, emb, padding_idx=0)
        self.enc = nn.ModuleList([rnn(emb, hid // 2, batch_first=True, bidirectional=True)]
                                 + [rnn(hid, hid, batch_first=True) for _ in range(enc_layers - 1)])
        self.dec = nn.ModuleList([rnn_cell(emb + hid, hid)] + [rnn_cell(hid, hid) for _ in range(dec_layers - 1)])
        self.n_state = 2 if self.lstm else 1
        self.bridge = nn.Linear(hid, dec_layers * self.n_state * hid)
        self.attn = nn.Linear(hid, hid, bias=False)                     # general: (W q) . k
        self.combine = nn.Linear(2 * hid, hid, bias=False)
        self.head = nn.Linear(hid, vt)

    def forward(self, src, lengths, tgt_in):
        x = self.src_embed(src)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.enc[0](packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        half = self.hid // 2
        summary = torch.cat([out[torch.arange(len(lengths)), lengths - 1, :half], out[:, 0, half:]], -1)
        for layer in self.enc[1:]:
            packed = nn.utils.rnn.pack_padded_sequence(out, lengths, batch_first=True, enforce_sorted=False)
            o, _ = layer(packed)
            out = nn.utils.rnn.pad_packed_sequence(o, batch_first=True, total_length=src.shape[1])[0] + out
        mask = torch.arange(src.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
        parts = list(torch.tanh(self.bridge(summary)).split(self.hid, -1))
        states = [tuple(parts[k * self.n_state:(k + 1) * self.n_state]) for k in range(len(self.dec))]
        feed = summary.new_zeros(summary.shape[0], self.hid)
        outs = []
        for y in self.tgt_embed(tgt_in).unbind(1):
            h = torch.cat([y, feed], -1)
            new = []
            for k, cell in enumerate(self.dec):
                st = cell(h, states[k] if self.lstm else states[k][0])
                st = st if self.lstm else (st,)
                h = st[0] + h if k > 0 else st[0]
                new.append(st)
            states = new
            scores = torch.bmm(out, self.attn(h).unsqueeze(2)).squeeze(2).masked_fill(~mask, float("-inf"))
            context = torch.bmm(torch.softmax(scores, -1).unsqueeze(1), out).squeeze(1)
            feed = torch.tanh(self.combine(torch.cat([context, h], -1)))
            outs.append(feed)
        return self.head(torch.stack(outs, 1))


def run_train(args) -> None:
    ref = Seq2Seq(hidden_size=args.hidden, dropout=0.0)
    splits = load_pairs(ref.config)
    from rnnkit.tasks.seq2seq.data import Vocab
    sv = Vocab.build((s for s, _ in splits.train), "word")
    tv = Vocab.build((t for _, t in splits.train), "char")
    data = encode_pairs(splits.train, sv, tv)
    import numpy as np
    all_batches = batches(data, 64, np.random.default_rng(0))
    lines = ["### Training throughput: rnnkit's encoder-decoder against raw torch layers", "",
             f"Command: `python {' '.join(sys.argv)}`  ", f"Machine: {machine()}.", "",
             f"French number words -> digits batches (64 pairs, bucketed by length), embedding 64, "
             f"{args.hidden} units, encoder 2 layers (bidirectional first), decoder 2 layers, general attention "
             f"with input feeding, dropout 0, Adam, float32; median pairs/s of {args.rounds} interleaved rounds "
             f"of {args.steps} steps.", "",
             "| cell | raw torch (nn.LSTM/GRU + cell loop) pairs/s | rnnkit Seq2SeqModel pairs/s | rnnkit / raw "
             "| bar |",
             "|---|---:|---:|---:|---|"]
    for cell in args.cells:
        torch.manual_seed(0)
        ours = Seq2Seq(hidden_size=args.hidden, dropout=0.0, cell=cell)
        ours.source_vocab_, ours.target_vocab_ = sv, tv
        models = {"raw": RawSeq2Seq(len(sv), len(tv), 64, args.hidden, 2, 2, cell), "rnnkit": ours._build_model()}
        n_raw = sum(p.numel() for p in models["raw"].parameters())
        n_ours = sum(p.numel() for p in models["rnnkit"].parameters())
        opts = {k: torch.optim.Adam(m.parameters(), 2e-3) for k, m in models.items()}
        times = {k: [] for k in models}
        k_batch = 0

        def train_steps(name, n):
            nonlocal k_batch
            m, opt = models[name], opts[name]
            pairs = 0
            for _ in range(n):
                src, lengths, tgt_in, tgt_out = all_batches[k_batch % len(all_batches)]
                k_batch += 1
                logits = m(src, lengths, tgt_in)
                loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=0)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                pairs += len(lengths)
            return pairs

        for name in models:
            train_steps(name, 3)                                  # warm up
        for _ in range(args.rounds):
            for name in models:
                start = time.perf_counter()
                pairs = train_steps(name, args.steps)
                times[name].append(pairs / (time.perf_counter() - start))
        raw, own = statistics.median(times["raw"]), statistics.median(times["rnnkit"])
        ratio = own / raw
        print(f"{cell}: params raw {n_raw:,} rnnkit {n_ours:,}; raw {raw:.0f} rnnkit {own:.0f} pairs/s",
              file=sys.stderr)
        lines.append(f"| {cell} | {raw:,.0f} | {own:,.0f} | {ratio:.2f} | ≥ 0.90 {'✔' if ratio >= 0.9 else '✘'} |")
    emit("\n".join(lines) + "\n", args.markdown)


# -- cmudict -------------------------------------------------------------------------------------------------

def run_cmudict(args) -> None:
    run_dir = Path(args.run_root) / "cmudict"
    settings = dict(dataset="cmudict", hidden_size=args.hidden, embedding_size=64, max_minutes=args.minutes,
                    min_steps=0, auto_batch=False,
                    epochs=1000, early_stop_patience=None, schedule="cosine_time", batch_size=args.batch_size,
                    lr=args.lr, val_decode=1000, log_every=200, dropout=args.dropout, attention=args.attention,
                    precision=args.precision, label_smoothing=args.label_smoothing, ema_decay=args.ema_decay,
                    threads=args.threads)     # held: the Trainer would otherwise follow the other processes' load
    start = time.monotonic()
    s2s = Seq2Seq(**settings).fit(run_dir=str(run_dir), progress=False)
    seconds = time.monotonic() - start
    splits = load_pairs(s2s.config)
    # Beam width and length penalty are chosen on the validation words (never on the test words): the pick
    # with the lowest validation WER (ties: the earlier, cheaper one) is then measured once on the test words.
    start = time.monotonic()
    (beam, alpha), grid = s2s.tune_decoding(splits.val, args.beams, args.alphas, batch_size=256)
    tune_seconds = time.monotonic() - start
    test = splits.test
    results = {"greedy": s2s.evaluate(test, batch_size=256),
               "beam 5": s2s.evaluate(test, beam=5, batch_size=256)}
    picked = f"beam {beam}, length penalty {alpha:g} (picked on validation)"
    results[picked] = (results["beam 5"] if (beam, alpha) == (5, 0.0)
                       else s2s.evaluate(test, beam=beam, length_penalty=alpha, batch_size=256))
    print(json.dumps(results, indent=1), file=sys.stderr)
    lines = ["### cmudict: spelling -> phonemes (held-out words)", "",
             f"Command: `python {' '.join(sys.argv)}`  ", f"Machine: {machine()}.", "",
             f"{settings}; {s2s.trainer_.step:,} steps, {s2s.trainer_.epoch} epochs in {seconds / 60:.1f} min of "
             f"training (stop: {s2s.trainer_.stop_reason}). Test: {results['greedy']['n']:,} words (5% by hash of "
             f"the word, every pronunciation of a word on one side; stress digits stripped; a word is right when "
             f"the output equals any of its pronunciations). This split is not the PRONALSYL split of the "
             f"published results, so the figures are not directly comparable with theirs.", "",
             f"Validation WER ({grid[beam, alpha]['n']:,} words; the grid took {tune_seconds / 60:.1f} min):", "",
             "| beam | " + " | ".join(f"length penalty {a:g}" for a in args.alphas) + " |",
             "|---:|" + "---:|" * len(args.alphas)]
    for b in args.beams:
        lines.append(f"| {b} | " + " | ".join(f"{100 * grid[b, a]['wer']:.2f}%" for a in args.alphas) + " |")
    lines += ["", "| decoding (test words) | WER | PER | bar |", "|---|---:|---:|---|"]
    for name, m in results.items():
        ok = m["wer"] <= 0.30 and m["per"] <= 0.08
        lines.append(f"| {name} | {100 * m['wer']:.2f}% | {100 * m['per']:.2f}% | WER ≤ 30%, PER ≤ 8% "
                     f"{'✔' if ok else '✘'} |")
    emit("\n".join(lines) + "\n", args.markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=("quality", "beam", "train", "cmudict"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the safe choice on a busy machine)")
    parser.add_argument("--markdown", default="/tmp/bench_seq2seq.md", help="append the fragment to this file")
    parser.add_argument("--run-root", default="runs/bench-seq2seq", help="where the trained runs are kept")
    parser.add_argument("--hidden", type=int, default=None, help="units per layer (default: 128; cmudict 256)")
    parser.add_argument("--epochs", type=int, default=15, help="quality: epochs per model")
    parser.add_argument("--patience", type=int, default=4, help="quality: early-stop patience (epochs)")
    parser.add_argument("--attentions", nargs="+", default=list(ATTENTIONS), choices=ATTENTIONS,
                        help="quality: the attention kinds to train")
    parser.add_argument("--source-level", default="auto", choices=("auto", "word", "char"),
                        help="quality: the source's tokens (auto: words)")
    parser.add_argument("--save", action=argparse.BooleanOptionalAction, default=True,
                        help="quality: keep the runs in --run-root (the beam part reads the general one)")
    parser.add_argument("--inputs", type=int, default=64, help="beam: inputs decoded")
    parser.add_argument("--rounds", type=int, default=5, help="beam, train: interleaved rounds")
    parser.add_argument("--steps", type=int, default=10, help="train: steps per round")
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"], help="train: cells to compare")
    parser.add_argument("--minutes", type=float, default=30.0, help="cmudict: training budget")
    parser.add_argument("--batch-size", type=int, default=128, help="cmudict: pairs per step")
    parser.add_argument("--lr", type=float, default=3e-3, help="cmudict: peak learning rate")
    parser.add_argument("--dropout", type=float, default=0.1, help="cmudict: dropout")
    parser.add_argument("--attention", default="general", choices=ATTENTIONS, help="cmudict: attention")
    parser.add_argument("--label-smoothing", type=float, default=0.0,
                        help="cmudict: share of each target's probability spread over the vocabulary")
    parser.add_argument("--ema-decay", type=float, default=None,
                        help="cmudict: average the weights (exponential moving average, e.g. 0.999; none: off)")
    parser.add_argument("--beams", type=int, nargs="+", default=[5, 10],
                        help="cmudict: beam widths tried on the validation words")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.5, 1.0],
                        help="cmudict: length penalties (GNMT alpha) tried on the validation words")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="cmudict: training arithmetic (auto: bf16 where the CPU has AMX)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.hidden = args.hidden or (256 if args.part == "cmudict" else 128)
    {"quality": run_quality, "beam": run_beam, "train": run_train, "cmudict": run_cmudict}[args.part](args)


if __name__ == "__main__":
    main()

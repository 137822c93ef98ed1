"""Image captioning: digit strips (real handwriting), scenes (synthetic, with a compositional split), the speed of
training on a frozen encoder's cached features, and a pretrained encoder's attention on a real photo.

    python bench/caption.py --threads 1                                   # everything below
    python bench/caption.py --threads 1 --only strips --minutes 20        # exact match, attention vs none, beam
    python bench/caption.py --threads 1 --only scenes --minutes 20        # BLEU-4 in distribution / compositional
    python bench/caption.py --threads 1 --only scenes --minutes 30 --doubly-stochastic 1   # with the regulariser
    python bench/caption.py --threads 1 --only frozen                     # Trainer vs a plain loop, same decoder
    python bench/caption.py --threads 1 --only photo --photo coffee.png   # describe a photo, draw the attention

* **strips**: `rnnkit caption train` defaults (show-attend-tell, small CNN trained with the decoder) on
  digit-strips for ``--minutes``; test strips are made of digit images no training strip uses. Exact caption match
  and BLEU-4 (sacrebleu, 0-100), greedy and beam 3. Then the same budget with ``--model show-tell`` (no
  attention).
* **scenes**: show-attend-tell on the synthetic scenes for ``--minutes``: BLEU-1..4 and exact match on the
  in-distribution test split and on the compositional split (colour-shape pairs never seen in training).
* **frozen**: efficientnet-lite0 frozen, its 1280x7x7 features cached once (encode_all) for ``--frozen-images``
  scenes; the time per optimizer step of ``Captioner.fit`` (the Trainer: progress, clipping, checkpoints at epoch
  ends) against the same CaptionNet decoder in a plain PyTorch loop (gather the cached rows, forward, loss, Adam,
  clipping) on the same features (computed once) and the same batches: the median time of steps 4-20 of the
  first epoch, step start to step start (in the Trainer, from one call of the task's loss to the next), three
  runs of each, interleaved; the medians of the runs are compared (the machine's load moves runs by 10-20%).
* **photo**: a captioner with the pretrained encoder (decoder trained briefly on scenes) describes a real photo
  (scikit-image's coffee.png by default, when scikit-image is installed) and writes the attention map: a smoke
  test of the path. A model trained on strips or scenes cannot describe photos: the words are scene words.

Results go to ``--out`` (JSON) and a Markdown table is printed. Figures in docs/caption.md were measured with
``--threads 1`` on a shared, loaded 2-core AMD EPYC (other jobs running): the minutes are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_threads_argument, progress, start  # noqa: E402


def strips(minutes: float, threads: int | None, out_dir: Path,
           models: tuple[str, ...] = ("show-attend-tell", "show-tell")) -> list[dict]:
    from rnnkit.datasets.digit_strips import digit_strips
    from rnnkit.tasks import Captioner

    test = digit_strips(0, 0, 1000, seed=0)["test"]
    rows = []
    for model in progress(models, "strips"):
        t0 = time.monotonic()
        cap = Captioner(dataset="digit-strips", model=model, max_minutes=minutes, threads=threads).fit(
            run_dir=str(out_dir / f"strips-{model}"))
        seconds = time.monotonic() - t0
        for beam in (None, 3):
            m = cap.evaluate(test, beam=beam)
            rows.append({"part": "strips", "model": model, "decoding": m["decoding"], "minutes": minutes,
                         "wall_minutes": round(seconds / 60, 1), "steps": cap.trainer_.step,
                         "exact_match": round(m["exact_match"], 4), "bleu4": round(m["bleu4"], 2),
                         "capped": m["capped"], "test_images": m["images"]})
    return rows


def scenes(minutes: float, threads: int | None, out_dir: Path, doubly_stochastic: float = 0.0) -> list[dict]:
    from rnnkit.tasks import Captioner

    t0 = time.monotonic()
    cap = Captioner(dataset="scenes", max_minutes=minutes, threads=threads, doubly_stochastic=doubly_stochastic).fit(
        run_dir=str(out_dir / f"scenes-ds{doubly_stochastic:g}"))
    seconds = time.monotonic() - t0
    rows = []
    for part, m in cap.test_metrics_.items():
        rows.append({"part": f"scenes {part}", "model": f"show-attend-tell, λ={doubly_stochastic:g}",
                     "decoding": m["decoding"],
                     "minutes": minutes, "wall_minutes": round(seconds / 60, 1), "steps": cap.trainer_.step,
                     "exact_match": round(m["exact_match"], 4), "bleu1": round(m["bleu1"], 2),
                     "bleu4": round(m["bleu4"], 2), "capped": m["capped"], "test_images": m["images"]})
    return rows


def frozen(n_images: int, threads: int | None, window: tuple[int, int] = (4, 20), batch: int = 32,
           repeats: int = 3) -> list[dict]:
    import numpy as np
    import torch
    import torch.nn.functional as F

    import rnnkit.nn.vision as vision
    from rnnkit.datasets.scenes import scenes as make_scenes
    from rnnkit.tasks import Captioner
    from rnnkit.tasks.caption.data import Vocab, batches, encode_pairs
    from rnnkit.tasks.caption.model import CaptionNet

    parts = make_scenes(n_images, 16, 0, 0, seed=0)
    first, last = window
    memo: dict[int, object] = {}
    encode_all = vision.encode_all

    def once(encoder, images, **kw):
        # Each image set is encoded once for the whole benchmark: the fits below (and the plain loop) share it.
        if id(images) not in memo:
            memo[id(images)] = encode_all(encoder, images, **kw)
        return memo[id(images)]

    stamps: list[float] = []
    loss = Captioner._loss

    def stamped(self, *args, **kwargs):           # the Trainer calls the task's loss once at the start of a step
        stamps.append(time.perf_counter())
        return loss(self, *args, **kwargs)

    def trainer() -> tuple[object, float]:
        # Inside the Trainer: the time from one step's start to the next one's (its loss call), steps `first` to
        # `last`, all in the first epoch (no validation or checkpoint among them; the features cached before).
        stamps.clear()
        cap = Captioner(encoder="efficientnet-lite0", batch_size=batch, epochs=1000, min_steps=0,
                        max_steps=last + 1, early_stop_patience=None, threads=threads)
        Captioner._loss = stamped
        try:
            cap.fit(parts["train"], parts["val"], progress=False)
        finally:
            Captioner._loss = loss
        epochs = [r["step"] for r in cap.history_ if r.get("event") == "epoch"]
        if [s for s in epochs if s <= last]:
            sys.exit(f"--frozen-images {n_images}: an epoch ended inside the timed steps; expected more images")
        return cap, float(np.median(np.diff(stamps[first - 1:last + 1])))

    vision.encode_all = once
    try:
        cap, _ = trainer()
    finally:
        vision.encode_all = encode_all
    features = memo[id(parts["train"].images)]      # (N, 1280, 7, 7): the training images' cached grids

    # The plain loop: the same decoder, the same cached features and batches (the Trainer's first epoch's),
    # Adam and clipping, nothing else.
    cfg = cap.config
    vocab = Vocab.build(parts["train"].captions)
    rows_, seqs = encode_pairs(parts["train"].captions, vocab)
    todo = batches(rows_, seqs, batch, np.random.default_rng([cfg.train.seed, 0]))[:last]

    def loop() -> float:
        torch.manual_seed(0)
        net = CaptionNet(cap.model_.encoder, len(vocab), tuple(features.shape[2:]), features.shape[1], cfg.model,
                         cfg.cell, cfg.embedding_size, cfg.hidden_size, cfg.attention_size, cfg.dropout).train()
        opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg.train.lr)
        starts = []
        for rows, tin, tout, lengths in todo:
            starts.append(time.perf_counter())
            logits, alpha_sum = net(features.index_select(0, rows), tin, lengths)
            loss = F.cross_entropy(logits.flatten(0, 1), tout.flatten(), ignore_index=0)
            loss = loss + cfg.doubly_stochastic * ((1 - alpha_sum) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.train.clip_grad_norm)
            opt.step()
        starts.append(time.perf_counter())
        return float(np.median(np.diff(starts[first - 1:last + 1])))

    # Side by side, interleaved (trainer, loop, trainer, loop, ...): the machine's load moves single runs by
    # 10-20%, so each side's median of `repeats` runs is compared.
    times: dict[str, list[float]] = {"trainer": [], "loop": []}
    vision.encode_all = once
    try:
        for _ in progress(range(repeats), "frozen: trainer and plain loop, interleaved"):
            times["trainer"].append(trainer()[1])
            times["loop"].append(loop())
    finally:
        vision.encode_all = encode_all
    trainer_step, loop_step = (float(np.median(times[k])) for k in ("trainer", "loop"))
    return [{"part": "frozen efficientnet-lite0 features", "images": n_images, "batch": batch,
             "steps_timed": last - first + 1, "repeats": repeats,
             "trainer_ms_per_step": " / ".join(f"{1000 * t:.0f}" for t in times["trainer"]),
             "plain_loop_ms_per_step": " / ".join(f"{1000 * t:.0f}" for t in times["loop"]),
             "trainer_speed_vs_loop": round(loop_step / trainer_step, 3)}]


def photo(path: str | None, threads: int | None, out_dir: Path) -> list[dict]:
    import numpy as np

    from rnnkit.cli import main
    from rnnkit.datasets.scenes import scenes as make_scenes
    from rnnkit.tasks import Captioner

    if path is None:
        try:
            import skimage
        except ImportError:
            return [{"part": "photo", "skipped": "no --photo and scikit-image is not installed"}]
        path = str(Path(skimage.__file__).parent / "data" / "coffee.png")
    parts = make_scenes(200, 20, 0, 0, seed=0)
    run = out_dir / "photo-run"
    Captioner(encoder="efficientnet-lite0", max_steps=40, min_steps=0, threads=threads).fit(
        parts["train"], parts["val"], run_dir=str(run), progress=False)
    png = out_dir / "caption_photo_attention.png"
    t0 = time.monotonic()
    code = main(["caption", "describe", str(run), path, "--beam", "3", "--attention-png", str(png)])
    cap = Captioner.load(run)
    c = cap.caption(path, beam=3, return_attention=True)
    return [{"part": "photo", "photo": Path(path).name, "exit": code, "seconds": round(time.monotonic() - t0, 1),
             "caption": c.text, "attention_steps": int(np.asarray(c.attention).shape[0]),
             "grid": list(cap.grid_), "png": str(png), "png_bytes": png.stat().st_size if png.exists() else 0}]


def table(rows: list[dict]) -> str:
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_threads_argument(ap)
    ap.add_argument("--only", choices=("strips", "scenes", "frozen", "photo"), action="append",
                    help="run only these parts (repeatable; default: all)")
    ap.add_argument("--minutes", type=float, default=20.0, help="training budget of each strips/scenes run")
    ap.add_argument("--strips-models", nargs="+", default=["show-attend-tell", "show-tell"],
                    choices=("show-attend-tell", "show-tell"), help="strips: the decoders to train")
    ap.add_argument("--doubly-stochastic", type=float, default=0.0,
                    help="scenes: the attention regulariser's weight (rnnkit's default 0; 1 held scenes back)")
    ap.add_argument("--frozen-images", type=int, default=512, help="scenes whose pretrained features are cached")
    ap.add_argument("--photo", default=None, help="a photo for the smoke test (default: scikit-image's coffee.png)")
    ap.add_argument("--out-dir", default="runs/bench-caption", help="runs, the attention PNG and results.json")
    args = ap.parse_args()
    threads = start(args.threads)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = args.only or ["strips", "scenes", "frozen", "photo"]
    rows: list[dict] = []
    for part in parts:
        if part == "strips":
            rows += strips(args.minutes, threads, out_dir, tuple(args.strips_models))
        elif part == "scenes":
            rows += scenes(args.minutes, threads, out_dir, args.doubly_stochastic)
        elif part == "frozen":
            rows += frozen(args.frozen_images, threads)
        else:
            rows += photo(args.photo, threads, out_dir)
        print(table(rows), flush=True)
    results = out_dir / f"results-{'-'.join(parts)}.json"
    results.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"# results in {results}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""rnnkit demo: a small character-level Shakespeare model, trained for a few minutes and sampled.

A thin wrapper over ``rnnkit textgen train`` (``rnnkit.tasks.TextGenerator``) with a 5-minute
budget, followed by samples at temperatures 0.2, 0.5 and 1.0: low temperatures repeat the likeliest
phrases, high ones invent words. The model sizes itself: a few timed steps on this machine pick the
width that gets enough steps in the budget (``--hidden-size auto``), so a slow or busy machine trains
a narrower model that still learns, and the demo says when it will be done. The whole stack is on this path:
the dataset registry fetches the plays, the char Tokenizer maps characters to ids, the RNN layer runs
a 2-layer LSTM (fused kernel), the Trainer trains it with truncated backprop through time, and
generation carries the state one character at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rnnkit import _checks
from rnnkit.config import add_config_arguments, config_from_args, field
from rnnkit.tasks.textgen.config import int_or_auto

DEFAULT_RUN_DIR = "runs/demo"
# Written into the default run directory: a demo run there is the demo's own, and the next demo replaces it.
DEMO_MARK = "demo.txt"


@dataclass
class DemoConfig:
    # Old flag names (rnnkit 0.1): still parsed, hidden from --help, with a warning naming the new one.
    RENAMED = {"seed_text": "prompt", "length": "max_tokens"}

    corpus: Optional[str] = field(None, "train on this UTF-8 text file instead of the Shakespeare plays",
                                  group="data")
    hidden_size: int_or_auto = field("auto", "LSTM units per layer; auto: 128, 256 or 512, the widest that "
                                             "gets enough steps in --max-minutes on this machine", group="model")
    num_layers: int = field(2, "stacked LSTM layers", group="model")
    embedding_size: int = field(64, "size of the character embedding", group="model")
    seq_len: int = field(100, "characters per truncated-BPTT chunk", group="training")
    batch_size: int = field(64, "parallel streams of text", group="training")
    lr: float = field(3e-3, "peak learning rate (Adam, cosine decay over the time budget)", group="training")
    max_minutes: float = field(5.0, "training time budget in minutes", group="training")
    epochs: int = field(10, "passes over the training text (the time budget usually ends training first)",
                        group="training")
    prompt: str = field("QUEEN:\n", "text the samples continue", group="output")
    max_tokens: int = field(300, "characters to generate per sample", group="output")
    seed: int = field(0, "random seed for training and sampling", group="training")
    threads: Optional[int] = field(None, "CPU threads (None: one per CPU that other processes leave free; "
                                         "OMP_NUM_THREADS also sets it)", group="training")
    run_dir: Optional[str] = field(DEFAULT_RUN_DIR, "save the run here (sample it later with "
                                                    "`rnnkit textgen sample RUN`); None: do not save; the demo "
                                                    f"replaces its own earlier run in {DEFAULT_RUN_DIR}",
                                   group="output")
    overwrite: bool = field(False, "replace an earlier run in --run-dir: its files are deleted first (without "
                                   "this flag, a --run-dir that holds a run other than an earlier demo in "
                                   f"{DEFAULT_RUN_DIR} is refused)", group="output")

    def __post_init__(self):
        _checks.check_int("max_tokens", self.max_tokens, min=1, cap=_checks.MAX_TOKENS)
        _checks.check_float("max_minutes", self.max_minutes, min=0, min_open=True)
        # The model's and the training's bounds, here, before the plays are read (the task checks them again).
        from rnnkit.tasks.textgen.config import TextGenConfig
        from rnnkit.training.config import TrainConfig

        TextGenConfig(hidden_size=self.hidden_size, num_layers=self.num_layers, embedding_size=self.embedding_size,
                      seq_len=self.seq_len, train=TrainConfig(batch_size=self.batch_size, lr=self.lr,
                                                              max_minutes=self.max_minutes, epochs=self.epochs,
                                                              seed=self.seed, threads=self.threads))


def run(cfg: DemoConfig) -> dict:
    # torch and the task: imported when the demo runs, not to build the parser (--help stays instant).
    from rnnkit.tasks.base import claim_run_dir, stop_if_interrupted
    from rnnkit.tasks.textgen.task import AUTO_MIN_STEPS, SAMPLE_TEMPERATURES, TextGenerator, weights_kept

    # The model's fields and the training options by their flat names (lr, epochs, ... go to config.train).
    gen = TextGenerator(corpus=cfg.corpus, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                        embedding_size=cfg.embedding_size, seq_len=cfg.seq_len, batch_size=cfg.batch_size,
                        lr=cfg.lr, max_minutes=cfg.max_minutes, epochs=cfg.epochs, seed=cfg.seed,
                        threads=cfg.threads, sample_max_tokens=0)
    # An earlier run in run_dir is not replaced silently (its metrics.jsonl would mix with this one's), except
    # the demo's own in its default folder: run the demo again and it starts again.
    own = cfg.run_dir == DEFAULT_RUN_DIR and (Path(cfg.run_dir) / DEMO_MARK).is_file()
    if own and not cfg.overwrite and (Path(cfg.run_dir) / "config.json").is_file():
        print(f"rnnkit demo: replacing the earlier demo run in {cfg.run_dir}", flush=True)
    claim_run_dir(cfg.run_dir, TextGenerator, overwrite=cfg.overwrite or own)
    if cfg.run_dir == DEFAULT_RUN_DIR:
        Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
        (Path(cfg.run_dir) / DEMO_MARK).write_text("a run of `rnnkit demo`: the next demo replaces it\n",
                                                   encoding="utf-8")
    done = time.strftime("%H:%M", time.localtime(time.time() + 60 * cfg.max_minutes))
    print(f"rnnkit demo: training a character model for {cfg.max_minutes:g} minutes (until about {done}), "
          f"then sampling it", flush=True)
    gen.fit(run_dir=cfg.run_dir)
    # Ctrl-C: stop with the command that goes on (a demo run is a textgen run).
    stop_if_interrupted(gen.trainer_, cfg.run_dir, TextGenerator.command())
    metrics = gen.metrics_
    print(f"\nafter {gen.trainer_.step} steps: validation loss {metrics['val_loss']:.3f} nats/char "
          f"({metrics['val_bits_per_char']:.3f} bits/char) with {weights_kept(gen.trainer_)}\n")
    if gen.trainer_.step < AUTO_MIN_STEPS and gen.trainer_.stop_reason == "max_minutes":
        print(f"(only {gen.trainer_.step} steps in {cfg.max_minutes:g} minutes, so the samples are rough: a model "
              f"needs ~{AUTO_MIN_STEPS} steps to learn much. A longer --max-minutes learns more.)\n")
    samples = {}
    for temperature in SAMPLE_TEMPERATURES:
        samples[temperature] = gen.generate(cfg.prompt, cfg.max_tokens, temperature, seed=cfg.seed,
                                            unknown="drop")
        print(f"----- temperature {temperature} -----\n{cfg.prompt}{samples[temperature]}\n")
    if cfg.run_dir:
        print(f"run saved in {cfg.run_dir}; more samples: rnnkit textgen sample {cfg.run_dir} "
              f"--prompt 'ROMEO:' --temperature 0.5")
    return {"metrics": metrics, "samples": samples, "steps": gen.trainer_.step}


def add_commands(sub) -> None:
    p = sub.add_parser("demo", help="train a small Shakespeare character model and print samples",
                       description=__doc__.split("\n\n")[0])
    add_config_arguments(p, DemoConfig)
    p.set_defaults(func=lambda args: run(config_from_args(DemoConfig, args)) and 0)

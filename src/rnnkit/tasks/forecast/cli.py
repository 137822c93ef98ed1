"""Time-series forecasting: rnnkit forecast train|eval|predict|compare.

A thin layer over :class:`~rnnkit.tasks.forecast.task.Forecaster`: the flags are the fields of
``ForecastConfig`` (training options as flat flags), and a run directory written here loads in Python.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rnnkit import _checks
from rnnkit.config import (_StoreGiven, add_checkpoint_argument, add_config_arguments, add_train_arguments,
                           config_from_args, given_fields)
from rnnkit.runs.io import atomic_write_json
from rnnkit.tasks.forecast.config import COMPARE_SEEDS, DEFAULT_MODELS, MODELS, ForecastConfig

# The task, its data and the comparison import torch (and numpy): each command imports them when it runs, so
# that the parser (and every --help) is built from the config alone.
if TYPE_CHECKING:
    from rnnkit.tasks.forecast.task import Forecaster


def _ahead(fc: Forecaster) -> str:
    """``24 steps ahead (24 hours)``: the forecast distance in steps and in time."""
    from rnnkit.datasets.series import describe_steps

    delay = fc.window_config_.delay
    return f"{delay} step{'s' if delay != 1 else ''} ahead ({describe_steps(delay, fc.freq_)})"


def _print_metrics(fc: Forecaster) -> None:
    from rnnkit.tasks.forecast.compare import number

    m = fc.metrics_
    target = ", ".join(fc.series_.targets)
    val = ("validation none (val_frac=0)" if m["val_mae"] is None else
           f"validation {m['val_mae']:.4f} ({m['val_mae_norm']:.4f} normalised)")
    line = (f"{fc.config.model}: MAE of {target} {_ahead(fc)}: {val}, test {m['test_mae']:.4f} "
            f"({m['test_mae_norm']:.4f}); naive: validation {number(m['naive_val_mae'], '.4f')}, test "
            f"{m['naive_test_mae']:.4f}")
    if m.get("seasonal_naive_test_mae") is not None:
        line += (f"; seasonal naive (season {m['season']}): validation "
                 f"{number(m['seasonal_naive_val_mae'], '.4f')}, test {m['seasonal_naive_test_mae']:.4f}")
    print(line)
    if m.get("seeds") and len(m["seeds"]) > 1:
        seeds = m["seeds"]
        val = "-" if m["val_mae_mean"] is None else f"{m['val_mae_mean']:.4f} ± {m['val_mae_sd']:.4f}"
        print(f"{fc.config.model} over {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}): MAE mean ± sd: validation {val}, "
              f"test {m['test_mae_mean']:.4f} ± {m['test_mae_sd']:.4f} (the run's model is seed {seeds[0]}'s; "
              f"the others are in RUN/seed-N)")
        if m.get("test_mae_ensemble") is not None:
            val = "-" if m.get("val_mae_ensemble") is None else f"{m['val_mae_ensemble']:.4f}"
            print(f"the {len(seeds)} seeds' forecasts averaged (an ensemble, not the run's model): MAE validation "
                  f"{val}, test {m['test_mae_ensemble']:.4f}")


def _train_cmd(args) -> int:
    import shutil

    from rnnkit.tasks.base import resume_command, stop_if_interrupted, train_config_from_args
    from rnnkit.tasks.forecast.compare import COMPARE_FILE
    from rnnkit.tasks.forecast.task import CANDIDATES, Forecaster

    candidates = Path(args.run_dir) / CANDIDATES if args.run_dir else None
    if args.resume and candidates is not None and not (Path(args.run_dir) / "config.json").is_file() \
            and (candidates / COMPARE_FILE).is_file():
        cfg = _auto_config_to_resume(args)           # --model auto stopped while it trained its candidates
    else:
        cfg = train_config_from_args(Forecaster, args, resume_fields=("seeds",))
        if not args.resume and candidates is not None and candidates.exists():
            if not args.overwrite:
                raise ValueError(f"{args.run_dir}: holds the candidates of an earlier --model auto run, which "
                                 f"training again would overwrite; expected a new folder: go on with it with "
                                 f"--resume ({resume_command(Forecaster.command(), args.run_dir)}), choose another "
                                 f"--run-dir, or replace it with --overwrite")
            shutil.rmtree(candidates)
    try:
        fc = Forecaster(cfg).fit(run_dir=args.run_dir, resume=args.resume, dry_run=args.dry_run)
    except KeyboardInterrupt:
        # SIGTERM in a later seed: the line above this one names that seed's folder; the run is this one.
        if args.run_dir and cfg.seeds > 1 and cfg.model != "auto":
            print(f"resume with: {resume_command(Forecaster.command(), args.run_dir)}", file=sys.stderr)
        raise
    # Ctrl-C (or SIGTERM) stopped training: no test evaluation; exit 130 with the command that goes on.
    stop_if_interrupted(fc.trainer_, args.run_dir, Forecaster.command())
    if vars(fc).get("candidates_"):
        from rnnkit.tasks.forecast.compare import ranking_summary, results_markdown

        print(results_markdown(fc.candidates_), end="")
        print(f"model auto: {ranking_summary(fc.candidates_)}; the run keeps {fc.config.model}"
              + (f" (the candidates' runs and table: {candidates})" if candidates else ""))
    _print_metrics(fc)
    print(f"run saved in {args.run_dir}", file=sys.stderr)
    return 0


def _auto_config_to_resume(args):
    """The config of a ``--model auto`` run that stopped before it picked a model: its candidates' config (from
    the first candidate's run) with model auto, and the budget flags given now."""
    from rnnkit.runs.io import read_json
    from rnnkit.tasks.base import replace_config, train_config_from_args
    from rnnkit.tasks.forecast.compare import COMPARE_FILE
    from rnnkit.tasks.forecast.task import CANDIDATES, Forecaster

    folder = Path(args.run_dir) / CANDIDATES
    saved = read_json(folder / COMPARE_FILE)
    runs = [folder / m for m in saved["models"] if (folder / m / "config.json").is_file()]
    if not runs:
        _checks.fail("--resume", True, f"a --run-dir whose --model auto run trained a candidate; {folder} holds none")
    cfg = train_config_from_args(Forecaster, argparse.Namespace(**{**vars(args), "run_dir": str(runs[0])}),
                                 resume_fields=("seeds",))
    return replace_config(cfg, model="auto", seeds=saved.get("seeds", cfg.seeds) if "seeds" not in
                          given_fields(args) else args.seeds)


def _eval_cmd(args) -> int:
    from rnnkit.tasks.forecast.data import read_table
    from rnnkit.tasks.forecast.task import Forecaster

    fc = Forecaster.load(args.run, checkpoint=args.checkpoint)
    data = read_table(args.csv) if args.csv else None
    m = fc.evaluate(data, source=args.csv) if args.csv else fc.evaluate()
    source = args.csv or f"the test part of {fc.config.test_csv or fc.config.dataset or fc.config.csv}"

    def against(name: str, gain: float) -> str:
        return f"{abs(gain):.1f}% {'better' if gain >= 0 else 'worse'} than {name}"

    text = (f"{fc.config.model} on {source}: MAE of {', '.join(fc.series_.targets)} {_ahead(fc)} "
            f"{m['mae']:.4f} ({m['mae_norm']:.4f} normalised) over {m['windows']} windows; naive "
            f"{m['naive_mae']:.4f} ({against('naive', m['vs_naive_pct'])}")
    if m.get("vs_seasonal_naive_pct") is not None:
        text += (f"); seasonal naive {m['seasonal_naive_mae']:.4f} "
                 f"({against('seasonal naive', m['vs_seasonal_naive_pct'])}")
    print(text + ")")
    out = Path(args.output) if args.output else Path(args.run) / "eval.json"
    atomic_write_json(out, {"source": source, **m})
    print(f"metrics written to {out}", file=sys.stderr)
    return 0


def _predict_cmd(args) -> int:
    from rnnkit.tasks.forecast.data import read_table
    from rnnkit.tasks.forecast.task import Forecaster

    fc = Forecaster.load(args.run, checkpoint=args.checkpoint)
    # The request the HTTP endpoint takes (a table of JSON values, NaN as null), applied the same way.
    table = None
    if args.csv:
        table = {c: [None if isinstance(x, float) and x != x else x for x in v.tolist()]
                 for c, v in read_table(args.csv).items()}
    try:
        rows = fc.apply({"table": table, "history": 0})["forecast"]
    except ValueError as err:
        # The request's table is "data" to apply(); here it is the --csv file, so the message names it.
        if args.csv and str(err).startswith("data: "):
            raise ValueError(f"{args.csv}: {str(err)[len('data: '):]}") from None
        raise
    targets = fc.series_.targets
    print(",".join(["time", *targets]))
    for r in rows:
        print(",".join([r["time"], *(f"{r[t]:.4f}" for t in targets)]))
    return 0


def _claim_compare_dir(run_dir: str, models: list[str], overwrite: bool) -> None:
    """A new comparison does not silently replace an earlier one (or mix its runs' metrics): refuse a
    --run-dir that holds one, or with --overwrite delete its reports and its models' runs first."""
    from rnnkit.tasks.base import clear_run, holds_run, resume_command

    out = Path(run_dir)
    runs = [out / m for m in MODELS if holds_run(out / m)]
    if not (runs or (out / "compare.csv").exists() or (out / "compare.json").exists()):
        return
    if overwrite:
        clear_run(out)
        for run in runs:
            clear_run(run)
            if not any(run.iterdir()):
                run.rmdir()          # a model this comparison may not train again leaves no empty folder
        return
    from rnnkit.tasks.forecast.compare import compare_command

    command = compare_command(models)
    raise ValueError(f"{run_dir}: holds an earlier comparison, which comparing again would overwrite; expected a "
                     f"new folder: go on with it with --resume ({resume_command(command, run_dir)}), choose "
                     f"another --run-dir, or replace it with --overwrite")


def _compare_cmd(args) -> int:
    started = time.monotonic()            # --max-minutes is the whole command's, reading the data included
    from rnnkit.runs.io import read_json
    from rnnkit.tasks.base import replace_config, train_config_from_args
    from rnnkit.tasks.forecast.compare import COMPARE_FILE, best_recurrent, compare, ranking_summary, results_markdown
    from rnnkit.tasks.forecast.config import DEFAULT_MODELS
    from rnnkit.tasks.forecast.task import Forecaster

    models = args.models or list(DEFAULT_MODELS)
    if args.resume and args.overwrite:
        _checks.fail("--overwrite", True, "no --overwrite with --resume (--resume goes on with the comparison in "
                                          "--run-dir, --overwrite replaces it)")
    if args.resume:
        # What was compared (models, seeds) is in compare.json; each model's config in its run (only budget
        # flags, and --seeds, may be given).
        saved = Path(args.run_dir) / COMPARE_FILE
        saved = read_json(saved) if saved.is_file() else {}
        if not args.models:
            models = saved.get("models", models)
        runs = [Path(args.run_dir) / m for m in models if (Path(args.run_dir) / m / "config.json").is_file()]
        if not runs:
            _checks.fail("--resume", True, f"a --run-dir holding a comparison of {', '.join(models)}; "
                                           f"{args.run_dir} holds none of their runs")
        cfg = train_config_from_args(Forecaster, argparse.Namespace(**{**vars(args), "run_dir": str(runs[0])}),
                                     resume_fields=("seeds",))
        seeds = args.seeds if "seeds" in given_fields(args) else saved.get("seeds", cfg.seeds)
        cfg = replace_config(cfg, seeds=seeds)
    else:
        cfg = config_from_args(ForecastConfig, args)
        _claim_compare_dir(args.run_dir, models, args.overwrite)
    results = compare(cfg, models, args.run_dir, resume=args.resume, dry_run=args.dry_run, started=started)
    print(results_markdown(results), end="")
    skipped = [m for m in models if m not in {r["model"] for r in results}]
    if skipped:
        print(f"\nskipped: {', '.join(skipped)} (seasonal_naive needs a period: give --season N)")
    summary = ranking_summary(results)
    if summary:
        print(f"\n{summary}")
    best = best_recurrent(results)
    if best:
        text = (f"\nbest recurrent model by validation: {best['model']} ({best['val_vs_naive_pct']:+.1f}% val, "
                f"{best['test_vs_naive_pct']:+.1f}% test against naive")
        if best["val_vs_seasonal_naive_pct"] is not None:
            text += (f"; {best['val_vs_seasonal_naive_pct']:+.1f}% val, {best['test_vs_seasonal_naive_pct']:+.1f}% "
                     f"test against seasonal naive, season {best['season']} steps")
        print(text + ")")
    elif results and results[0]["val_mae"] is None:
        print("\nno validation part (val_frac=0): no model is picked; the test figures are for reference")
    print(f"\nwrote {args.run_dir}/compare.csv, compare.md, predictions.png, losses.png")
    return 0


class _NoCalendar(_StoreGiven):
    """``--no-calendar``: calendar=False (noted as given, as every flag is)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, False, option_string)


def _calendar_flag(parser: argparse.ArgumentParser) -> None:
    """``--calendar`` takes auto, true or false, and alone means true (as when it was an on/off flag);
    ``--no-calendar`` is false."""
    action = next(a for a in parser._actions if a.dest == "calendar")
    action.nargs, action.const, action.metavar = "?", True, "{auto,true,false}"
    group = next(g for g in parser._action_groups if action in g._group_actions)
    group.add_argument("--no-calendar", dest="calendar", action=_NoCalendar, help="the same as --calendar false")


def add_commands(sub) -> None:
    p = sub.add_parser("forecast", help="time-series forecasting: windows, baselines, GRU/LSTM/Conv1D",
                       description=__doc__.split("\n\n")[0])
    verbs = p.add_subparsers(dest="verb", metavar="<verb>")
    p.set_defaults(group_parser=p)

    t = verbs.add_parser("train", help="train one model and report validation and test MAE",
                         description="Train one model and report validation and test MAE.")
    add_train_arguments(t, ForecastConfig, default_run_dir="runs/forecast")
    _calendar_flag(t)
    t.set_defaults(func=_train_cmd)

    e = verbs.add_parser("eval", help="MAE of a trained run on a file, or on its own data's test part",
                         description="MAE of a trained run (and of the naive forecast) on every window of a "
                                     "file, or on the test part of the run's own data.")
    e.add_argument("run", help="a run directory written by forecast train")
    e.add_argument("--csv", default=None, help="data in the training file's format (default: the test part of "
                                               "the run's own dataset or file)")
    e.add_argument("-o", "--output", default=None, help="write the metrics here as JSON (default: "
                                                        "RUN/eval.json)")
    add_checkpoint_argument(e)
    e.set_defaults(func=_eval_cmd)

    q = verbs.add_parser("predict", help="forecast the next value(s) after the end of a file, with timestamps")
    q.add_argument("run", help="a run directory written by forecast train")
    q.add_argument("--csv", default=None, help="recent data in the training file's format (default: the "
                                               "training source itself)")
    add_checkpoint_argument(q)
    q.set_defaults(func=_predict_cmd)

    c = verbs.add_parser("compare", help="train every model on the same windows; one table of results",
                         description="Train every model on the same windows; one table of results, plots, and "
                                     "each model's run in RUN_DIR/<model>.")
    add_config_arguments(c, ForecastConfig, skip=("model",), defaults=ForecastConfig(seeds=COMPARE_SEEDS))
    _calendar_flag(c)
    c.add_argument("--models", nargs="*", choices=MODELS, default=None,
                   help=f"models to compare (default: {' '.join(DEFAULT_MODELS)})")
    group = c.add_argument_group("run")
    group.add_argument("--run-dir", default="runs/forecast-compare",
                       help="write compare.csv, compare.md, the PNGs and each model's run here "
                            "(default: %(default)s)")
    group.add_argument("--resume", action="store_true",
                       help="go on with the comparison in --run-dir: each model's run continues where it "
                            "stopped, with its own config; only budgets (--epochs, --max-minutes, ...) may change")
    group.add_argument("--overwrite", action="store_true",
                       help="replace an earlier comparison in --run-dir: its reports and its models' runs are "
                            "deleted first (without this flag or --resume, such a --run-dir is refused)")
    group.add_argument("--dry-run", action="store_true", help="one tiny batch per model: checks the whole path")
    c.set_defaults(func=_compare_cmd)

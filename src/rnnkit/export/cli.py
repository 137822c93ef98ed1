"""`rnnkit export RUN --format onnx|c -o FILE [--precision float32|int8]`: a trained run for use outside rnnkit.

After writing, the file is checked against PyTorch (``--no-check`` skips it): an ONNX file with onnxruntime
at several batch sizes and lengths, a C header compiled with the system C compiler on random sequences.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnkit.config import add_old_flag
from rnnkit.export import FORMATS, PRECISIONS

SUFFIXES = {".onnx": "onnx", ".h": "c"}


def add_commands(sub) -> None:
    p = sub.add_parser("export", help="write a trained run as an ONNX model or one C header (microcontrollers)",
                       description="Write a trained run as ONNX (a language model: a step model with explicit "
                                   "state; classifiers, forecasters: whole-sequence models with masks) or as one "
                                   "dependency-free C header (classifiers and forecasters of numeric series "
                                   "with lstm, gru or rnn layers). What a format cannot express is refused in "
                                   "one line that says why.")
    p.add_argument("run", help="a run directory whose training finished")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="onnx or c (default: from the output's suffix, .onnx or .h)")
    p.add_argument("-o", "--output", required=True, help="the file to write")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="weights of a C header: float32, or int8 with one float scale per row (about a quarter "
                        "of the bytes) (default: %(default)s)")
    add_old_flag(p, "--weights", "--precision", dest="precision", choices=PRECISIONS)
    p.add_argument("--checkpoint", choices=("best", "last"), default=None,
                   help="export the Trainer's checkpoint instead of the finished model: best or last; also of a "
                        "run whose training did not finish (default: the finished model)")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="compare the file with PyTorch after writing (onnxruntime; the system C compiler)")
    p.set_defaults(func=_export_cmd)


def _export_cmd(args: argparse.Namespace) -> int:
    from rnnkit.export import as_task, export
    from rnnkit.training.phases import phase

    fmt = args.format or SUFFIXES.get(Path(args.output).suffix.lower())
    if fmt is None:
        raise ValueError(f"--output={args.output!r}: expected a name ending in .onnx or .h, or give --format "
                         f"({' or '.join(FORMATS)})")
    task = as_task(args.run, args.checkpoint)
    phase("loaded")
    info = export(task, args.output, format=fmt, precision=args.precision, source=str(args.run))
    if fmt == "c":
        ram = info["ram"]
        print(f"wrote {args.output}: C header, prefix {info['prefix']}_; {args.precision} weights "
              f"{info['weight_bytes']:,} bytes; RAM {ram['total']:,} bytes (state {ram['state']}, stack "
              f"{max(ram['step_stack'], ram['output_stack'])}, output {ram['output_buffer']})")
    else:
        print(f"wrote {args.output}: ONNX {info['kind']} model; inputs {', '.join(info['inputs'])}; "
              f"outputs {', '.join(info['outputs'])}")
    if args.check:
        print(_check(task, fmt, args.output, info))
    return 0


def _check(task, fmt: str, path: str, info: dict) -> str:
    """One line: how the written file compares with PyTorch, or why it was not checked."""
    if fmt == "onnx":
        from rnnkit.export.onnx import max_abs_difference
        try:
            worst = max_abs_difference(task, path)
        except ImportError as err:
            return f"check skipped: {err}"
        return (f"check: max abs difference to PyTorch {worst:.2g} (onnxruntime; batch sizes 1, 4, 16; "
                f"{info['counts']} 1, 9, 40)")
    from rnnkit.export.c import check_c, find_compiler
    if find_compiler() is None:
        return "check skipped: no C compiler ($CC, cc or gcc) on PATH"
    result = check_c(task, path)
    line = (f"check: compiled with {find_compiler()}; max abs difference to PyTorch "
            f"{result['max_abs_difference']:.2g} on {result['sequences']} random sequences")
    if "same_class" in result:
        line += f"; the same class for {result['same_class']:.0%}"
    return line

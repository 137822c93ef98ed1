"""Export a trained run for use outside rnnkit: ONNX (:mod:`rnnkit.export.onnx`) and one C header for
microcontrollers (:mod:`rnnkit.export.c`).

    from rnnkit.export import export
    export("runs/gest", "gestures.onnx", format="onnx")
    export("runs/gest", "gestures.h", format="c", precision="int8")

``rnnkit export RUN --format onnx|c -o FILE [--precision float32|int8]`` is the same on the command line.

What is exported is the task's to say: each exporter asks the fitted object for its ``export_spec(format)``
(the graph to trace, or the arrays of a C header, and how to check the file against PyTorch), and a model a
format cannot express is refused in one line that says why, what of its task the format takes, and which
other format takes this run. This package names no task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnnkit import _checks
from rnnkit.config import renamed

FORMATS = ("onnx", "c")
PRECISIONS = ("float32", "int8")     # of a C header's weights


def as_task(run: Any, checkpoint: str | None = None) -> Any:
    """A fitted task object: ``run`` itself, or the one its run directory holds (a run whose training did not
    finish is refused, unless ``checkpoint`` "best" or "last" asks for its checkpoint explicitly)."""
    if isinstance(run, (str, Path)):
        import rnnkit

        path = Path(run)
        if not path.is_dir():
            raise FileNotFoundError(f"run={str(run)!r}: no such run directory")
        return rnnkit.load(str(path), **({} if checkpoint is None else {"checkpoint": checkpoint}))
    run._check_fitted()
    return run


def export_spec(task: Any, format: str) -> Any:
    """``task.export_spec(format)``; a refusal gains the other format that takes this run, if one does."""
    from rnnkit.tasks.base import ExportRefused, format_name

    try:
        return task.export_spec(format)
    except ExportRefused as refusal:
        others = [f for f in FORMATS if f != format and _exports(task, f)]
        hint = f"; it exports to {format_name(others[0])} instead (--format {others[0]})" if others else ""
        raise ExportRefused(f"{refusal}{hint}") from None


def _exports(task: Any, format: str) -> bool:
    from rnnkit.tasks.base import ExportRefused

    try:
        task.export_spec(format)
    except ExportRefused:
        return False
    return True


@renamed(weights="precision")
def export(run: Any, output: str | Path, format: str = "onnx", precision: str = "float32",
           source: str | None = None, checkpoint: str | None = None) -> dict[str, Any]:
    """Write ``run`` (a run directory or a fitted task object) to ``output`` in ``format``; returns a
    description of what was written (see :func:`rnnkit.export.onnx.export_onnx`, :func:`rnnkit.export.c.export_c`).
    ``source`` names the run in a C header's first comment (default: the run directory); ``checkpoint``
    ("best" or "last") exports a run directory's checkpoint, of a run whose training did not finish too."""
    _checks.check_choice("format", format, FORMATS)
    _checks.check_choice("precision", precision, PRECISIONS)
    if format == "onnx" and precision != "float32":
        _checks.fail("precision", precision, "'float32' for the onnx format (int8 weights are for --format c)")
    output = Path(output)
    if not output.parent.is_dir():
        raise FileNotFoundError(f"output={str(output)!r}: the folder {str(output.parent)!r} does not exist")
    if isinstance(run, (str, Path)):
        source = source or str(run)
    task = as_task(run, checkpoint)
    export_spec(task, format)          # a refusal before any file is written, naming what does export
    if format == "onnx":
        from rnnkit.export.onnx import export_onnx
        return export_onnx(task, output)
    from rnnkit.export.c import export_c
    return export_c(task, output, precision, source=source)

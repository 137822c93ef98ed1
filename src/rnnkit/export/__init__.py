"""Export a trained run for use outside rnnkit: ONNX (:mod:`rnnkit.export.onnx`) and one C header for
microcontrollers (:mod:`rnnkit.export.c`).

    from rnnkit.export import export
    export("runs/gest", "gestures.onnx", format="onnx")
    export("runs/gest", "gestures.h", format="c", weights="int8")

``rnnkit export RUN --format onnx|c -o FILE [--weights float32|int8]`` is the same on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnnkit import _checks

FORMATS = ("onnx", "c")
WEIGHTS = ("float32", "int8")
SUPPORTED_TASKS = ("textgen", "classify", "forecast")


def as_task(run: Any) -> Any:
    """A fitted task object: ``run`` itself, or the one its run directory holds."""
    if isinstance(run, (str, Path)):
        import rnnkit

        path = Path(run)
        if not path.is_dir():
            raise FileNotFoundError(f"run={str(run)!r}: no such run directory")
        return rnnkit.load(str(path))
    run._check_fitted()
    return run


def export(run: Any, output: str | Path, format: str = "onnx", weights: str = "float32",
           source: str | None = None) -> dict[str, Any]:
    """Write ``run`` (a run directory or a fitted task object) to ``output`` in ``format``; returns a
    description of what was written (see :func:`rnnkit.export.onnx.export_onnx`, :func:`rnnkit.export.c.export_c`).
    ``source`` names the run in a C header's first comment (default: the run directory)."""
    _checks.check_choice("format", format, FORMATS)
    _checks.check_choice("weights", weights, WEIGHTS)
    if format == "onnx" and weights != "float32":
        _checks.fail("weights", weights, "'float32' for the onnx format (int8 weights are for --format c)")
    output = Path(output)
    if not output.parent.is_dir():
        raise FileNotFoundError(f"output={str(output)!r}: the folder {str(output.parent)!r} does not exist")
    if isinstance(run, (str, Path)):
        source = source or str(run)
    task = as_task(run)
    if format == "onnx":
        from rnnkit.export.onnx import export_onnx
        return export_onnx(task, output)
    from rnnkit.export.c import export_c
    return export_c(task, output, weights=weights, source=source)

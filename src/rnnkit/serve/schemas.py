"""Request bodies of the HTTP API, built from a task's ``request_class`` and the server's limits.

A task says what a request holds (a dataclass of fields with defaults, help and ``limits``; see
:func:`rnnkit.config.field`); :func:`request_model` turns it into the pydantic model FastAPI validates a body
with and the OpenAPI schema shows. A limit given as a str names the :class:`~rnnkit.serve.ServeConfig` field
that sets it (``{"le": "max_tokens"}``: at most ``--max-tokens``); ``items`` holds the limits of each item of
a list (each text at most ``--max-text-chars``). Every number where a float is taken (a table's cell too) is
finite, within float32's range (the models compute in float32: 1e308 would become inf) and not a boolean
(``true`` is not 1.0). A field the
request does not know is an error (a misspelt field is never silently ignored), except the old names in the
request class's ``RENAMED``, which are accepted for one release: the model records a note for each
(:func:`renamed_notes`), which the answer carries under ``"deprecated"``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, create_model, model_validator

from rnnkit.config import renamed_fields


class StrictRequest(BaseModel):
    """Base of every request model: unknown fields are errors; old names (``RENAMED``) become the new ones."""

    model_config = ConfigDict(extra="forbid")
    RENAMED: typing.ClassVar[dict[str, str]] = {}
    _renamed: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _old_names(cls, data: Any, handler):
        notes = []
        if isinstance(data, dict) and cls.RENAMED.keys() & data.keys():
            data = dict(data)
            for old, new in cls.RENAMED.items():
                if old in data:
                    if new in data:
                        raise ValueError(f"{old} and {new}: the same setting twice ({old} is the old name of "
                                         f"{new}); expected {new} only")
                    data[new] = data.pop(old)
                    notes.append(f"{old} is renamed {new}; the old name goes in the next release")
        model = handler(data)
        model._renamed = notes
        return model


def renamed_notes(body: BaseModel) -> list[str]:
    """The deprecation notes of a validated body: one per old field name it used."""
    return list(getattr(body, "_renamed", []))


def _limit(value: Any, config: Any, where: str) -> Any:
    if isinstance(value, str):
        if not hasattr(config, value):
            raise ValueError(f"{where}: limit {value!r} names no ServeConfig field")
        return getattr(config, value)
    return value


FLOAT32_MAX = 3.4028234663852886e38


def _number(value: Any) -> Any:
    """The check before a float is parsed (so that it names the field, not a member of a Union): booleans and
    numbers that are not finite in float32 are refused; anything else goes on to the type's own check."""
    if isinstance(value, bool):
        raise ValueError("a number, not true or false")
    if isinstance(value, (int, float)) and not abs(value) <= FLOAT32_MAX:      # NaN fails this too
        raise ValueError(f"a finite number within float32's range (|x| <= {FLOAT32_MAX:.4g})")
    return value


def _finite(annotation: Any) -> Any:
    """``annotation`` with every float made finite (NaN, infinities, float32 overflow and booleans refused)."""
    if annotation is float:
        return Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False)]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is None or not args:
        return annotation
    inner = tuple(_finite(a) for a in args)
    if origin in (Union, types.UnionType):
        # A Union that takes floats checks its numbers before trying its members.
        union = Union[inner]
        return Annotated[union, BeforeValidator(_number)] if float in args else union
    if origin is Annotated:
        return Annotated[(inner[0], *args[1:])]
    return origin[inner if len(inner) > 1 else inner[0]]


def _with_items(annotation: Any, items: dict[str, Any]) -> Any:
    """``list[X]`` (or ``Optional[list[X]]``) -> ``list[Annotated[X, Field(**items)]]``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return Union[tuple(_with_items(a, items) for a in args)]
    if origin is list:
        return list[Annotated[args[0], Field(**items)]]
    return annotation


def request_model(request_class: type, config: Any) -> type[StrictRequest]:
    """The pydantic model of ``request_class`` (a dataclass), its limits read from ``config`` (ServeConfig)."""
    hints = typing.get_type_hints(request_class, include_extras=True)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(request_class):
        where = f"{request_class.__name__}.{f.name}"
        limits = {k: _limit(v, config, where) for k, v in (f.metadata.get("limits") or {}).items() if k != "items"}
        items = {k: _limit(v, config, where) for k, v in ((f.metadata.get("limits") or {}).get("items") or {}).items()}
        annotation = _finite(hints[f.name])
        if items:
            annotation = _with_items(annotation, items)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:           # type: ignore[misc]
            default = f.default_factory()                            # type: ignore[misc]
        else:
            default = ...                                            # required
        fields[f.name] = (annotation, Field(default, description=f.metadata.get("help") or None, **limits))
    model = create_model(request_class.__name__, __base__=StrictRequest, **fields)
    model.RENAMED = renamed_fields(request_class)
    return model


def fields_of(body: BaseModel) -> dict[str, Any]:
    """A validated body as the dict of fields a task's ``make_request`` takes."""
    return {name: getattr(body, name) for name in type(body).model_fields}


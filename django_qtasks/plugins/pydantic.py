"""Pydantic models from a task's annotations (the ``django-qtasks[pydantic]`` extra).

As QTasks' pydantic plugin: a parameter annotated with a ``BaseModel``
subclass receives a model built from the call's arguments, and a model
returned by a task is stored as ``model.model_dump(mode="json")``. Without
pydantic installed, arguments and results pass unchanged.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from functools import cache
from typing import Any

try:
    from pydantic import BaseModel
except ImportError:  # the extra is not installed
    BaseModel = None  # type: ignore[assignment,misc]


def model_class(annotation: Any) -> type[Any] | None:
    """The BaseModel subclass an annotation names (also in Optional/Annotated), else None."""
    if BaseModel is None:
        return None
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return model_class(typing.get_args(annotation)[0])
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return model_class(members[0]) if len(members) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


@cache
def model_parameters(func: Callable[..., Any], echo: bool) -> tuple[tuple[int, str, Any], ...]:
    """(position, name, model class) of each parameter that takes a model."""
    if BaseModel is None:
        return ()
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # an annotation that does not resolve: no conversion
        return ()
    names = list(inspect.signature(func).parameters)[1 if echo else 0 :]
    found = []
    for position, name in enumerate(names):
        model = model_class(hints.get(name))
        if model is not None:
            found.append((position, name, model))
    return tuple(found)


def build_models(
    func: Callable[..., Any],
    echo: bool,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    build: bool = True,
) -> tuple[list[Any], dict[str, Any]]:
    """The task's arguments with a model in place of each model parameter's data.

    For a parameter ``item: Item``: ``item={...}`` by name, a dict in its
    position, or (as in QTasks) the model's fields by name and then the
    remaining positional arguments in field order: ``("Test", value=42)``.
    With ``build=False``, the data is left in the model's place, unchecked:
    the arguments as the function will receive them, for ``signatures``.
    ``args`` and ``kwargs`` are changed in place.
    """
    for position, name, model in model_parameters(func, echo):
        if name in kwargs:
            if build and not isinstance(kwargs[name], model):
                kwargs[name] = model.model_validate(kwargs[name])
            continue
        if position < len(args) and isinstance(args[position], dict):
            if build:
                args[position] = model.model_validate(args[position])
            continue
        fields = list(model.model_fields)
        data = {field: kwargs.pop(field) for field in fields if field in kwargs}
        rest = args[position:]
        for field in fields:
            if field not in data and rest:
                data[field] = rest.pop(0)
        args = args[:position] + rest
        kwargs[name] = model(**data) if build else data
    return args, kwargs


def dump_model(value: Any) -> Any:
    """A returned model as JSON data; any other value unchanged."""
    if BaseModel is not None and isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value

"""Whether a call fits a task's function: its arguments bound to the signature at enqueue.

A call that could never run (an argument missing, a keyword the function
does not take, too many positional arguments) raises ``TaskSignatureError``
where it is made, and nothing is written; unchecked, the task would end in
error once a worker ran it. The parameters a caller gives are the
function's, less what the package gives at run time:

- ``self``, the first parameter of an ``echo=True`` task (``context`` of a
  django.tasks ``takes_context`` task);
- Depends and state parameters (``plugins.depends.injected``), which a
  caller may still give;
- a pydantic model parameter, made from the arguments as the worker makes it
  (``plugins.pydantic.build_models``).

``*args`` and ``**kwargs`` take what they take. A task whose arguments
something may change before the call (``middlewares_before``, an
``executor=``) is not checked: see ``BaseTask.call_shape``. A function's
shape is made at its first check, never at import.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django_qtasks.exceptions import TaskSignatureError
from django_qtasks.plugins.depends import injected
from django_qtasks.plugins.pydantic import build_models, model_parameters

Parameter = inspect.Parameter
POSITIONAL = (Parameter.POSITIONAL_ONLY, Parameter.POSITIONAL_OR_KEYWORD)
BY_KEYWORD = (Parameter.POSITIONAL_OR_KEYWORD, Parameter.KEYWORD_ONLY)

#: Stands for the previous step's result, which a chain step receives last (``chains``).
PREVIOUS_RESULT = object()

#: (field, parameters, reason) of a call that does not fit.
Problem = tuple[str, tuple[str, ...], str]


@dataclass(frozen=True)
class CallShape:
    """What a call must give a task's function."""

    task_name: str
    func: Callable[..., Any]
    skip_first: bool
    #: The function as a caller sees it, e.g. ``add(a, b)``.
    shown: str
    #: Names of the parameters filled by position, in order.
    positional: tuple[str, ...]
    positional_only: frozenset[str]
    by_keyword: frozenset[str]
    #: Parameters without a default that the package does not fill.
    required: tuple[Parameter, ...]
    var_positional: bool
    var_keyword: bool
    has_models: bool

    def check(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        step: str = "",
        appended: bool = False,
    ) -> None:
        """Raise TaskSignatureError when ``args`` and ``kwargs`` do not fit.

        ``step`` names a chain step; ``appended``: the function also receives
        the previous step's result, as its last positional argument.
        """
        if appended:
            args = (*args, PREVIOUS_RESULT)
        if self.has_models:
            args, kwargs = build_models(
                self.func, self.skip_first, list(args), dict(kwargs), build=False
            )
        problem = self.problem(args, kwargs)
        if problem is None:
            return
        field, names, reason = problem
        what = f"{step}, task {self.task_name!r}," if step else f"task {self.task_name!r}"
        note = (
            " (it also receives the previous step's result, as its last positional argument)"
            if appended
            else ""
        )
        raise TaskSignatureError(
            f"Arguments of {what} do not fit {self.shown}{note}: {reason}.",
            field=field,
            parameters=names,
        )

    def problem(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Problem | None:
        """What is wrong with the call, as ``inspect.Signature.bind`` would find it; None if
        nothing is."""
        if not self.var_positional and len(args) > len(self.positional):
            takes = f"{len(self.positional)} ({', '.join(self.positional)})"
            given = f"{len(args)} {'was' if len(args) == 1 else 'were'} given"
            reason = f"it takes {takes if self.positional else 'none'}, {given}"
            return "args", self.positional, f"too many positional arguments: {reason}"
        filled = set(self.positional[: len(args)])
        for key in kwargs:
            if key in self.by_keyword:
                if key in filled:
                    return "kwargs", (key,), f"{key!r} is given twice, by position and by keyword"
            elif not self.var_keyword:
                if key in self.positional_only:
                    reason = f"{key!r} is positional-only: give it in args, not by keyword"
                    return "kwargs", (key,), reason
                close = difflib.get_close_matches(str(key), self.by_keyword - filled, n=1)
                guess = f" (did you mean {close[0]!r}?)" if close else ""
                return "kwargs", (key,), f"unexpected keyword argument {key!r}{guess}"
        missing = [
            parameter
            for parameter in self.required
            if parameter.name not in filled
            and (parameter.name not in kwargs or parameter.kind is Parameter.POSITIONAL_ONLY)
        ]
        if not missing:
            return None
        names = tuple(parameter.name for parameter in missing)
        quoted = [repr(name) for name in names]
        if len(quoted) == 1:
            listed = f"parameter {quoted[0]}"
        else:
            listed = f"parameters {', '.join(quoted[:-1])} and {quoted[-1]}"
        return missing_field(missing, args, kwargs), names, f"missing an argument for {listed}"


def missing_field(missing: list[Parameter], args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """Where the missing arguments belong: ``args``, unless only a keyword can give them
    or the call gives keywords only."""
    if any(parameter.kind is Parameter.POSITIONAL_ONLY for parameter in missing):
        return "args"
    if all(parameter.kind is Parameter.KEYWORD_ONLY for parameter in missing):
        return "kwargs"
    return "kwargs" if kwargs and not args else "args"


def call_shape(
    func: Callable[..., Any], task_name: str, *, skip_first: bool = False
) -> CallShape | None:
    """The shape of calls to ``func`` (without its first parameter when ``skip_first``);
    None when it cannot be known (no signature, no first parameter to skip).

    Made once per function: every copy of a handle (a run's ``self``) finds it here.
    """
    try:
        return _cached_shape(func, task_name, skip_first)
    except TypeError:  # an unhashable callable, which no worker runs either: not checked
        return None


def _shape(func: Callable[..., Any], task_name: str, skip_first: bool) -> CallShape | None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return None
    parameters = list(signature.parameters.values())
    if skip_first:
        if not parameters or parameters[0].kind not in (*POSITIONAL, Parameter.VAR_POSITIONAL):
            return None  # nowhere for self to go: the definition fails, not the call
        if parameters[0].kind in POSITIONAL:
            parameters = parameters[1:]
    filled = {name for _, name, _ in injected(func, skip_first)}
    # Names and defaults: annotations (strings under ``from __future__ import
    # annotations``) would make the message long and no clearer.
    plain = [parameter.replace(annotation=Parameter.empty) for parameter in parameters]
    shown = f"{getattr(func, '__name__', task_name)}{inspect.Signature(plain)}"
    kinds = {parameter.kind for parameter in parameters}
    return CallShape(
        task_name=task_name,
        func=func,
        skip_first=skip_first,
        shown=shown,
        positional=tuple(p.name for p in parameters if p.kind in POSITIONAL),
        positional_only=frozenset(
            p.name for p in parameters if p.kind is Parameter.POSITIONAL_ONLY
        ),
        by_keyword=frozenset(p.name for p in parameters if p.kind in BY_KEYWORD),
        required=tuple(
            p
            for p in parameters
            if p.default is Parameter.empty
            and p.kind not in (Parameter.VAR_POSITIONAL, Parameter.VAR_KEYWORD)
            and p.name not in filled
        ),
        var_positional=Parameter.VAR_POSITIONAL in kinds,
        var_keyword=Parameter.VAR_KEYWORD in kinds,
        has_models=bool(model_parameters(func, skip_first)),
    )


_cached_shape = cache(_shape)

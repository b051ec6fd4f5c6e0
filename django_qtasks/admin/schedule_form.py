"""The schedule admin's form: a select of registered tasks, JSON arguments, the model's checks.

Validation is the model's (``Schedule.clean``, i.e. ``scheduling.check_schedule``),
each problem shown next to its field. On a schedule declared in code, the
timing and arguments are read-only, so they are not in the form: a problem
with one of them is shown at the top of the form instead.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, FieldDoesNotExist, ValidationError
from django.forms.fields import InvalidJSONInput
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_qtasks.exceptions import InvalidSchedule
from django_qtasks.models import Schedule
from django_qtasks.registry import default_app
from django_qtasks.scheduling import check_schedule, declared_schedules
from django_qtasks.validation import is_json, unstorable

JSON_ATTRS = {"rows": 3, "cols": 60, "class": "vLargeTextField qtasks-json-input"}


def task_choices(current: str = "") -> list[tuple[str, str]]:
    """The registered tasks, plus ``current`` (a schedule of a task since removed)."""
    tasks = default_app().tasks
    names = set(tasks)
    if current:
        names.add(current)
    choices = [("", "---------")]
    for name in sorted(names):
        if name in tasks:
            choices.append((name, name))
        else:
            choices.append((name, gettext("%(name)s (not registered)") % {"name": name}))
    return choices


def field_label(name: str) -> str:
    try:
        return str(getattr(Schedule._meta.get_field(name), "verbose_name", name))
    except FieldDoesNotExist:
        return name


class ReadableJSONField(forms.JSONField):
    """Django's JSON field, with what json cannot read an invalid value, not a 500
    (an integer of more than 4,300 digits, a document nested too deep to parse),
    and a value holding a lone surrogate shown again escaped (the page is UTF-8)."""

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except (ValueError, RecursionError):
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None

    def bound_data(self, data: Any, initial: Any) -> Any:
        try:
            return super().bound_data(data, initial)
        except (ValueError, RecursionError):
            return InvalidJSONInput(data)

    def prepare_value(self, value: Any) -> Any:
        text = super().prepare_value(value)
        try:
            text.encode()
        except UnicodeEncodeError:
            return json.dumps(value, cls=self.encoder)
        return text


class ScheduleForm(forms.ModelForm):
    """Every editable field of a Schedule; the admin leaves out the read-only ones."""

    class Meta:
        model = Schedule
        fields = [
            "name",
            "task_name",
            "description",
            "enabled",
            "one_off",
            "expires_at",
            "cron",
            "interval",
            "args",
            "kwargs",
            "queue",
            "priority",
        ]
        field_classes = {"args": ReadableJSONField, "kwargs": ReadableJSONField}
        widgets = {
            "args": forms.Textarea(attrs=JSON_ATTRS),
            "kwargs": forms.Textarea(attrs=JSON_ATTRS),
            "description": forms.Textarea(attrs={"rows": 2, "cols": 60}),
        }
        help_texts = {
            "args": _('A JSON list, e.g. [1, "two"]. Empty: no arguments.'),
            "kwargs": _('A JSON object, e.g. {"key": "value"}. Empty: none.'),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "task_name" in self.fields:
            model_field = self.fields["task_name"]
            self.fields["task_name"] = forms.ChoiceField(
                label=model_field.label,
                choices=task_choices(self.instance.task_name),
                help_text=_("One of the tasks this project registers."),
            )
        if "cron" in self.fields:
            self.fields["cron"].widget.attrs.update(
                {"class": "vTextField qtasks-cron-input", "placeholder": "*/5 * * * *"}
            )
        if "interval" in self.fields:
            self.fields["interval"].widget.attrs.update({"placeholder": "00:05:00"})

    def clean_args(self) -> Any:
        value = self.cleaned_data.get("args")
        return [] if value is None else self._json("args", value)

    def clean_kwargs(self) -> Any:
        value = self.cleaned_data.get("kwargs")
        return {} if value is None else self._json("kwargs", value)

    def clean_name(self) -> str:
        """Refuse the name of a declared schedule: the beat would take the row over."""
        name = str(self.cleaned_data.get("name") or "")
        try:
            declared = {item.name for item in declared_schedules()}
        except InvalidSchedule:  # a bad settings entry: the system check reports it
            declared = set()
        if name in declared and name != self.instance.name:
            raise ValidationError(
                gettext(
                    "A schedule named %(name)s is declared in code or settings, and the beat "
                    "would replace this one with it: choose another name."
                )
                % {"name": name}
            )
        return name

    def clean_cron(self) -> str:
        return " ".join(str(self.cleaned_data.get("cron") or "").split())

    def _json(self, name: str, value: Any) -> Any:
        """``value``, if it is JSON that every database stores (as the API and add_task ask)."""
        if not is_json(value):
            raise ValidationError(gettext("NaN and infinity cannot be stored as JSON."))
        problem = unstorable(value, name)
        if problem:
            raise ValidationError(
                gettext("%(name)s cannot be stored: it holds %(problem)s.")
                % {"name": name, "problem": problem}
            )
        return value

    def add_error(self, field: str | None, error: Any) -> None:
        """Leave out the model's problems with fields this form does not have.

        Those are the read-only fields of a schedule declared in code or
        settings: the code, not this form, has to fix them (the page lists
        them), and what can be changed here (enabled, one-off, expiry) must
        stay savable, to disable a broken schedule first of all.
        """
        if field is None and isinstance(error, ValidationError) and hasattr(error, "error_dict"):
            kept = {
                name: errors
                for name, errors in error.error_dict.items()
                if name == NON_FIELD_ERRORS or name in self.fields
            }
            if not kept:
                return
            error = ValidationError(kept)
        super().add_error(field, error)


def problems_of(schedule: Schedule) -> list[str]:
    """What ``Schedule.clean()`` finds wrong, each problem with its field's name."""
    return [f"{field_label(name)}: {message}" for name, message in check_schedule(schedule).items()]

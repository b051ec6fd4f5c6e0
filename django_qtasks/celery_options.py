"""Celery's ``apply_async`` options: which are ignored here, and what to use
instead of the others (``handle.apply_async``, docs/migrating-from-celery.md)."""

from __future__ import annotations

#: Options of Celery's ``apply_async`` that are accepted and ignored, because
#: ignoring them changes nothing here: the row is written in the database, so
#: the message is never lost and needs no publish retries; arguments are JSON,
#: and every result is stored.
IGNORED_CELERY_OPTIONS = frozenset(
    {"retry", "retry_policy", "serializer", "compression", "ignore_result", "add_to_parent"}
)

#: What to use instead of Celery options that have a meaning this app does not give them.
REFUSED_CELERY_OPTIONS = {
    "task_id": "the task's uuid is made when it is enqueued; read it from the returned Task",
    "expires": "there is no expiry; cancel a waiting task with task.cancel(reason)",
    "link": "chain the tasks instead: chain(first.s(...), second.s()).add_task()",
    "link_error": (
        "handle failures in the task, or with middlewares_after or an executor's "
        "outcome_saved (docs/tasks.md)"
    ),
    "time_limit": "set max_time= on the task's decorator",
    "soft_time_limit": "set max_time= on the task's decorator, and clean up in try/finally",
    "exchange": "route with queue= (add_task or the decorator)",
    "routing_key": "route with queue= (add_task or the decorator)",
    "shadow": "tasks are listed under their registered name; give it another with name=",
    "headers": "pass the values as arguments, or as extra keywords of the decorator",
    "timeout": "to wait for the result, call add_task(..., timeout=seconds)",
    "delay": "apply_async's delay is countdown= (or use add_task(..., delay=...))",
}


def refused_celery_option(option: str) -> str:
    """Why ``apply_async`` refuses ``option``, and what to use instead."""
    instead = REFUSED_CELERY_OPTIONS.get(
        option,
        "apply_async takes args, kwargs, countdown, eta, queue and priority; "
        "add_task takes priority, timeout, queue, delay and eta",
    )
    return f"the option {option}= is not supported here: {instead}."

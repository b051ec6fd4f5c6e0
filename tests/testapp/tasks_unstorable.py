"""Tasks for tests/test_unstorable.py: values with characters a database refuses.

Arguments cannot carry such characters (add_task refuses them), so each task
builds them from a code point: 0 is NUL, 0xD800 a lone surrogate.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from django_qtasks import SyncTask, app, task


@task
def unstorable_result(code: int) -> str:
    return f"a{chr(code)}b"


@task
async def async_unstorable_result(code: int) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"items": ["fine", f"user{chr(code)}input"]}


@app.task(retry=2)
def unstorable_with_retry(code: int) -> str:
    return chr(code)


@app.task(decode=json.dumps)
def unstorable_decoded(code: int) -> str:
    # decode=json.dumps escapes the NUL: what is stored is plain text.
    return f"a{chr(code)}b"


@app.task(echo=True)
def logs_unstorable(self: SyncTask, code: int) -> str:
    self.ctx.get_logger().info("before%safter", chr(code))
    return "done"


@app.task(retry=2, retry_on_exc=[KeyError])
def raises_unstorable(code: int) -> None:
    raise ValueError(f"bad{chr(code)}value")


@app.task(echo=True)
def cancels_unstorable(self: SyncTask, code: int) -> None:
    self.ctx.cancel(f"why{chr(code)}not")


@task
def yields_unstorable(code: int) -> Any:
    yield "fine"
    yield chr(code)


@task
async def returns_at(value: str, at: float) -> str:
    """Return ``value`` at the wall-clock time ``at``: tasks that end together."""
    await asyncio.sleep(max(0.0, at - time.time()))
    return value

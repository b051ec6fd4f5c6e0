# ruff: noqa: E501  (programs are quoted as QTasks documents them)
"""QTasks 1.7.3's documented usages, each a program in the QTasks form.

A program is a tasks module (what the worker imports) and a client (run as
``__main__``) per usage; ``checks`` are the documented outcome, evaluated in
the client's namespace. Sources are paths in txello/qtasks at version 1.7.3.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Program:
    module: str
    source: str
    code: str


@dataclass(frozen=True)
class Usage:
    id: str
    program: Program
    source: str
    what: str
    client: str
    checks: tuple[str, ...]


README = Program(
    "readme_app",
    "README.md",
    """
from qtasks import QueueTasks

app = QueueTasks()

@app.task(name="echo")
def echo(text: str) -> str:
    return text

@app.task(name="divide")
def divide(a: int, b: int):
    return a / b

if __name__ == "__main__":
    app.run_forever()
""",
)

GETTING_STARTED = Program(
    "gs_app",
    "docs/en/getting_started.md",
    """
from qtasks import QueueTasks

app = QueueTasks()

@app.task(name="mytest")  # Example of a normal task
def mytest(text: str):
    print(text)
    return text

@app.task(name="error_zero")  # Example of a task with an error
def error_zero():
    result = 1 / 0
    return

if __name__ == "__main__":
    app.run_forever()
""",
)

GETTING_STARTED_ASYNC = Program(
    "gs_async_app",
    "docs/en/getting_started.md",
    """
from qtasks.asyncio import QueueTasks

app = QueueTasks()

@app.task(name="mytest_async")
async def mytest_async(text: str):
    print(text)
    return text

if __name__ == "__main__":
    app.run_forever()
""",
)

# examples/sync/based_sync_app.py with examples/sync/router_tasks.py inlined
# (one module per program here), less SyncTestPlugin (QTasks' own test plugin).
SYNC_EXAMPLE = Program(
    "based_sync_app",
    "examples/sync/based_sync_app.py",
    """
import logging

import pydantic

from qtasks import QueueTasks
from qtasks import SyncRouter
from qtasks.registries import SyncTask

router = SyncRouter()


@router.task(
    description="Test router task."
)
def router_test():
    print("router_test")


app = QueueTasks()
app.config.logs_default_level_server = logging.INFO
app.config.running_older_tasks = True

app.include_router(router)


@app.task(name="test")
def test():
    print("It's a test task!")


@app.task(name="test_num")
def test_num(number: int):
    print(f"Number: {number}")
    return number


@app.task(retry=5, retry_on_exc=[ZeroDivisionError])
def error_zero():
    result = 1/0
    print(result)


def yield_func(result):
    print(result)
    return result


@app.task(generate_handler=yield_func, echo=True)
def test_yield(self: SyncTask, n: int):
    for _ in range(n):
        n += 1
        yield n


class Item(pydantic.BaseModel):
    name: str
    value: int


@app.task(echo=True, test=True)
def example_pydantic(self: SyncTask, item: Item):
    return f"Hello, {item.name}!"


@app.task(echo=True, max_time=2)
def example_error_timeout(self: SyncTask):
    self.ctx.sleep(5)
    return "This task took too long to complete."


if __name__ == "__main__":
    app.run_forever()
""",
)

# The same tasks without app.config, so that routers, pydantic, retries and
# generators are also checked where app.config is not available yet.
SYNC_EXAMPLE_CORE = Program(
    "based_sync_app_core",
    "examples/sync/based_sync_app.py (without the app.config lines)",
    "\n".join(
        line for line in SYNC_EXAMPLE.code.splitlines() if not line.startswith("app.config.")
    ),
)

PLUGINS = Program(
    "based_async_plugins_app",
    "examples/plugins/based_async_plugins_app.py",
    """
from qtasks.asyncio import QueueTasks
from qtasks.exc import TaskPluginTriggerError
from qtasks.plugins.base import BasePlugin
from qtasks.registries import AsyncTask

app = QueueTasks()


class TestPlugin(BasePlugin):
    def __init__(self, name=None):
        super().__init__(name)

        self.handlers = {
            "task_executor_run_task_trigger_error": self.task_trigger_error
        }

    async def start(self, *args, **kwargs):
        return super().start(*args, **kwargs)

    async def stop(self, *args, **kwargs):
        return super().stop(*args, **kwargs)

    async def trigger(self, name, **kwargs):
        handler = self.handlers.get(name)
        if handler:
            return handler(**kwargs)
        return None

    def task_trigger_error(self, **kwargs):
        print(kwargs)
        return None


app.add_plugin(TestPlugin(), trigger_names=["task_executor_run_task_trigger_error"], component="worker")


@app.task(echo=True)
async def test_task(self: AsyncTask):
    self.ctx.plugin_error()
    # raise TaskPluginTriggerError("Test error")


if __name__ == "__main__":
    app.run_forever()
""",
)

PYDANTIC = Program(
    "pydantic_app",
    "docs/en/features/pydantic.md",
    """
import pydantic
from qtasks.asyncio import QueueTasks

app = QueueTasks()

class Item(pydantic.BaseModel):
    name: str
    value: int

@app.task(
    description="Test task using Pydantic.",
    tags=["example"],)
async def example_pydantic(item: Item):
    return f"Hello, {item.name}!"

@app.task
async def create_item() -> Item:
    return Item(name="Generated", value=10)
""",
)

STATS = Program(
    "stats_app",
    "docs/en/features/stats.md",
    """
from qtasks import QueueTasks

app = QueueTasks()

@app.task(name="sync_test", description="Test synchronous task with decorator.", echo=True)
def sync_test(self):
    yield 1

@app.task(name="async_test", description="Test asynchronous task.")
async def async_test():
    pass
""",
)

TESTS_DOC = Program(
    "tests_app",
    "docs/en/tests.md (tests/apps/app_sync.py)",
    """
from qtasks import QueueTasks

app = QueueTasks()

@app.task(name="test")
def test(number: int):
    return number

@app.task(name="error_task")
def error_task():
    raise ValueError("error")
""",
)

TASK_DOC = Program(
    "task_doc_app",
    "docs/en/features/task.md",
    """
from qtasks import QueueTasks

app = QueueTasks()

@app.task()
def task_func(number: int):
    return number * 2
""",
)

ASYNC_TASK_DOC = Program(
    "task_doc_async_app",
    "docs/en/features/task.md",
    """
from qtasks.asyncio import QueueTasks

app = QueueTasks()

@app.task()
async def task_func(number: int):
    return number * 2

@app.task()
def plain_func(number: int):
    return number + 1
""",
)

ASYNC_GEN = Program(
    "readme_async_app",
    "README.md",
    """
from qtasks.asyncio import QueueTasks

app = QueueTasks()

async def gen_handler(value: int) -> int:
    return value + 1

@app.task(generate_handler=gen_handler)
async def counter(n: int):
    for _ in range(n):
        n += 1
        yield n
""",
)

USAGES = [
    Usage(
        "readme-echo",
        README,
        "README.md",
        "echo.add_task(..., timeout=50).returning",
        'from readme_app import echo\ntask = echo.add_task("Hello", timeout=50)',
        ('task.returning == "Hello"', 'task.status == "success"'),
    ),
    Usage(
        "readme-divide",
        README,
        "README.md",
        "a failing task ends in error",
        "from readme_app import divide\ntask = divide.add_task(1, 0, timeout=50)",
        ('task.status == "error"', '"ZeroDivisionError" in task.traceback'),
    ),
    Usage(
        "readme-counter",
        ASYNC_GEN,
        "README.md",
        "async generator with an async generate_handler",
        "import asyncio\nfrom readme_async_app import counter\n"
        "async def main():\n    return await counter.add_task(5, timeout=50)\n"
        "task = asyncio.run(main())",
        ("task.returning == [7, 8, 9, 10, 11]",),
    ),
    Usage(
        "gs-app-add-task",
        GETTING_STARTED,
        "docs/en/getting_started.md",
        "app.add_task by name returns a new task",
        'from gs_app import app\ntask = app.add_task("mytest", "Test")',
        ('task.task_name == "mytest"', "app.get(task.uuid) is not None"),
    ),
    Usage(
        "gs-handle-add-task",
        GETTING_STARTED,
        "docs/en/getting_started.md",
        "handle.add_task runs the task",
        'from gs_app import app, mytest\nfrom time import sleep\ntask = mytest.add_task("Test")\n'
        'for _ in range(600):\n    if app.get(task.uuid).status == "success": break\n    sleep(0.1)',
        ('app.get(task.uuid).returning == "Test"',),
    ),
    Usage(
        "gs-timeout",
        GETTING_STARTED,
        "docs/en/getting_started.md",
        "add_task(timeout=50) waits for the result",
        'from gs_app import mytest\ntask = mytest.add_task("Test", timeout=50)',
        ('task.status == "success"', 'task.returning == "Test"'),
    ),
    Usage(
        "gs-error",
        GETTING_STARTED,
        "docs/en/getting_started.md",
        "app.add_task of a failing task: status error",
        'from gs_app import app\ntask = app.add_task("error_zero", timeout=50)',
        ('task.status == "error"',),
    ),
    Usage(
        "gs-async-handle",
        GETTING_STARTED_ASYNC,
        "docs/en/getting_started.md",
        "await handle.add_task in the async app",
        "import asyncio\nfrom gs_async_app import mytest_async\n"
        'async def main():\n    return await mytest_async.add_task("Hi", timeout=50)\n'
        "task = asyncio.run(main())",
        ('task.returning == "Hi"',),
    ),
    Usage(
        "gs-async-app",
        GETTING_STARTED_ASYNC,
        "docs/en/tests.md",
        "await app.add_task / await app.get in the async app",
        "import asyncio\nfrom gs_async_app import app\n"
        'async def main():\n    task = await app.add_task("mytest_async", "Hi")\n'
        "    return await app.get(uuid=task.uuid)\n"
        "task = asyncio.run(main())",
        ("task is not None",),
    ),
    Usage(
        "sync-example-config",
        SYNC_EXAMPLE,
        "examples/sync/test_sync_task_wait.py",
        "the example app (with app.config) runs app.add_task",
        'from based_sync_app import app\ntask = app.add_task("test_num", 5, timeout=50)',
        ("task.returning == 5",),
    ),
    Usage(
        "sync-test-num",
        SYNC_EXAMPLE_CORE,
        "examples/sync/test_sync_task_wait.py",
        "app.add_task by name with an argument",
        'from based_sync_app_core import app\ntask = app.add_task("test_num", 5, timeout=50)',
        ("task.returning == 5",),
    ),
    Usage(
        "sync-error-retry",
        SYNC_EXAMPLE_CORE,
        "examples/sync/test_sync_task_wait.py",
        "retry=5 on ZeroDivisionError, then error",
        "from based_sync_app_core import error_zero\ntask = error_zero.add_task(timeout=50)",
        ('task.status == "error"',),
    ),
    Usage(
        "sync-yield",
        SYNC_EXAMPLE_CORE,
        "examples/sync/test_sync_task_wait.py",
        "echo generator with generate_handler",
        "from based_sync_app_core import test_yield\ntask = test_yield.add_task(5, timeout=50)",
        ("task.returning == [6, 7, 8, 9, 10]",),
    ),
    Usage(
        "sync-pydantic-args",
        SYNC_EXAMPLE_CORE,
        "examples/sync/test_sync_task_wait.py",
        "pydantic model built from positional arguments",
        "from based_sync_app_core import example_pydantic\n"
        'task = example_pydantic.add_task("Test", 42, timeout=50)',
        ('task.returning == "Hello, Test!"',),
    ),
    Usage(
        "sync-pydantic-kwargs",
        SYNC_EXAMPLE_CORE,
        "examples/sync/test_sync_task_wait.py",
        "pydantic model built from its fields by name",
        "from based_sync_app_core import example_pydantic\n"
        'task = example_pydantic.add_task(name="Test", value=42, timeout=50)',
        ('task.returning == "Hello, Test!"',),
    ),
    Usage(
        "sync-pydantic-dict",
        SYNC_EXAMPLE_CORE,
        "examples/sync/test_sync_task_wait.py",
        "pydantic model from a dict under the parameter's name",
        "from based_sync_app_core import example_pydantic\n"
        'task = example_pydantic.add_task(item={"name": "Test", "value": 42}, timeout=50)',
        ('task.returning == "Hello, Test!"',),
    ),
    Usage(
        "sync-max-time",
        SYNC_EXAMPLE_CORE,
        "examples/sync/test_sync_task_wait.py",
        "max_time=2 stops a task that sleeps 5s",
        "from based_sync_app_core import example_error_timeout\n"
        "task = example_error_timeout.add_task(timeout=50)",
        ('task.status == "error"',),
    ),
    Usage(
        "sync-router",
        SYNC_EXAMPLE_CORE,
        "examples/sync/router_tasks.py",
        "a router's task runs once the app includes the router",
        'from based_sync_app_core import app\ntask = app.add_task("router_test", timeout=50)',
        ('task.status == "success"', '"router_test" in app.tasks'),
    ),
    Usage(
        "sync-extra",
        SYNC_EXAMPLE_CORE,
        "docs/en/features/task.md",
        "unknown decorator keywords are kept as extra",
        "from based_sync_app_core import example_pydantic",
        ('example_pydantic.extra == {"test": True}',),
    ),
    Usage(
        "plugins-trigger-error",
        PLUGINS,
        "examples/plugins/test_async_task_wait_plugin.py",
        "ctx.plugin_error() with a plugin that answers None: the task fails",
        "import asyncio\nfrom based_async_plugins_app import test_task\n"
        "async def main():\n    return await test_task.add_task(timeout=50)\n"
        "task = asyncio.run(main())",
        ('task.status == "error"', '"TaskPluginTriggerError" in task.traceback'),
    ),
    Usage(
        "pydantic-positional",
        PYDANTIC,
        "docs/en/features/pydantic.md",
        "await add_task with the model's fields by position",
        "import asyncio\nfrom pydantic_app import example_pydantic\n"
        'async def main():\n    return await example_pydantic.add_task("Test", 42, timeout=50)\n'
        "task = asyncio.run(main())",
        ('task.returning == "Hello, Test!"',),
    ),
    Usage(
        "pydantic-mixed",
        PYDANTIC,
        "docs/en/features/pydantic.md",
        "await add_task with a field by position and one by name",
        "import asyncio\nfrom pydantic_app import example_pydantic\n"
        "async def main():\n"
        '    return await example_pydantic.add_task("Test", value=42, timeout=50)\n'
        "task = asyncio.run(main())",
        ('task.returning == "Hello, Test!"',),
    ),
    Usage(
        "pydantic-result",
        PYDANTIC,
        "docs/en/features/pydantic.md",
        "a returned model is stored as model_dump()",
        "import asyncio\nfrom pydantic_app import create_item\n"
        "async def main():\n    return await create_item.add_task(timeout=50)\n"
        "task = asyncio.run(main())",
        ('task.returning == {"name": "Generated", "value": 10}',),
    ),
    Usage(
        "stats-tasks",
        STATS,
        "docs/en/features/stats.md",
        "SyncStats(app=app).inspect().tasks() lists the tasks",
        "from stats_app import app\nfrom qtasks.stats import SyncStats\n"
        "text = SyncStats(app=app).inspect().tasks()",
        (
            '"sync_test" in text and "async_test" in text',
            '"Test synchronous task with decorator." in text',
        ),
    ),
    Usage(
        "stats-tasks-json",
        STATS,
        "docs/en/features/stats.md",
        "inspect().tasks(names, json=True) is JSON for the tasks named",
        "import json\nfrom stats_app import app\nfrom qtasks.stats import SyncStats\n"
        'data = json.loads(SyncStats(app=app).inspect().tasks("sync_test", json=True))',
        ("len(data) == 1",),
    ),
    Usage(
        "stats-task",
        STATS,
        "docs/en/features/stats.md",
        "inspect().task(name) describes one task",
        "from stats_app import app\nfrom qtasks.stats import SyncStats\n"
        'text = SyncStats(app=app).inspect().task("async_test")',
        ('"async_test" in text', 'text.count("Task name") == 1'),
    ),
    Usage(
        "stats-app",
        STATS,
        "docs/en/features/stats.md",
        "inspect().app() tells the app's name and task count",
        "from stats_app import app\nfrom qtasks.stats import SyncStats\n"
        "text = SyncStats(app=app).inspect().app()\n"
        "data = __import__('json').loads(SyncStats(app=app).inspect().app(json=True))",
        ('"Tasks Count" in text', 'data["Tasks Count"] == len(app.tasks) >= 2'),
    ),
    Usage(
        "stats-async",
        STATS,
        "docs/en/features/stats.md",
        "await AsyncStats(app=app).inspect()",
        "import asyncio\nfrom stats_app import app\nfrom qtasks.stats import AsyncStats\n"
        "async def main():\n    return (await AsyncStats(app=app).inspect()).tasks()\n"
        "text = asyncio.run(main())",
        ('"sync_test" in text',),
    ),
    Usage(
        "tests-unittest-get",
        TESTS_DOC,
        "docs/en/tests.md",
        "app.add_task then app.get(uuid=...) is not None",
        'from tests_app import app\nresult = app.add_task("test", 5)\n'
        "found = app.get(uuid=result.uuid)",
        ("found is not None",),
    ),
    Usage(
        "tests-not-found",
        TESTS_DOC,
        "docs/en/tests.md",
        "app.get of an unknown uuid is None",
        "from uuid import uuid4\nfrom tests_app import app\nresult = app.get(uuid=str(uuid4()))",
        ("result is None",),
    ),
    Usage(
        "tests-sync-case",
        TESTS_DOC,
        "docs/en/tests.md",
        "SyncTestCase(app=app) with TestConfig.full(): add_task",
        "from qtasks.tests import SyncTestCase\nfrom qtasks.schemas.test import TestConfig\n"
        "from tests_app import app\ncase = SyncTestCase(app=app)\n"
        'case.settings(TestConfig.full())\ntask = case.add_task("test", 5)',
        ("task is not None",),
    ),
    Usage(
        "tests-async-case",
        TESTS_DOC,
        "docs/en/tests.md",
        "AsyncTestCase: await add_task(timeout=10) has a result",
        "import asyncio\nfrom qtasks.tests import AsyncTestCase\n"
        "from qtasks.schemas.test import TestConfig\nfrom tests_app import app\n"
        "case = AsyncTestCase(app=app)\ncase.settings(TestConfig.full())\n"
        'async def main():\n    return await case.add_task("test", 5, timeout=10)\n'
        "task = asyncio.run(main())",
        ("task.returning is not None",),
    ),
    Usage(
        "tests-error-status",
        TESTS_DOC,
        "docs/en/tests.md",
        "an error task's status is TaskStatusEnum.ERROR.value",
        "import asyncio\nfrom qtasks.tests import AsyncTestCase\n"
        "from qtasks.schemas.test import TestConfig\n"
        "from qtasks.enums.task_status import TaskStatusEnum\nfrom tests_app import app\n"
        "case = AsyncTestCase(app=app)\ncase.settings(TestConfig.full())\n"
        'async def main():\n    return await case.add_task("error_task", timeout=10)\n'
        "task = asyncio.run(main())",
        ("task.status == TaskStatusEnum.ERROR.value",),
    ),
    Usage(
        "task-prebuilt",
        TASK_DOC,
        "docs/en/features/task.md",
        "cls = task_func(...); cls.add_task() enqueues it",
        "from task_doc_app import task_func\ncls = task_func(21, priority=0, timeout=50)\n"
        "task = cls.add_task()",
        ("task.returning == 42",),
    ),
    Usage(
        "task-add-task",
        TASK_DOC,
        "docs/en/features/task.md",
        "task_func.add_task(*args, priority=0, timeout=None) returns status new",
        "from task_doc_app import task_func\ntask = task_func.add_task(21, priority=0, timeout=None)",
        ('task.status == "new"',),
    ),
    Usage(
        "task-async-prebuilt",
        ASYNC_TASK_DOC,
        "docs/en/features/task.md",
        "await cls.add_task() in the async app",
        "import asyncio\nfrom task_doc_async_app import task_func\n"
        "async def main():\n    return await task_func(21, timeout=50).add_task()\n"
        "task = asyncio.run(main())",
        ("task.returning == 42",),
    ),
    Usage(
        "task-async-plain-def",
        ASYNC_TASK_DOC,
        "docs/en/features/task.md",
        "a plain def in the async app: await its add_task",
        "import asyncio\nfrom task_doc_async_app import plain_func\n"
        "async def main():\n    return await plain_func.add_task(1, timeout=50)\n"
        "task = asyncio.run(main())",
        ("task.returning == 2",),
    ),
    Usage(
        "task-expired-wait",
        TASK_DOC,
        "docs/en/features/task.md",
        "a wait that expires returns None",
        "from task_doc_app import app\nimport time\n"
        "task = app.add_task('task_func', 1, timeout=0.000001)",
        ("task is None",),
    ),
]

# ruff: noqa: E501  (programs are quoted as QTasks documents them)
"""QTasks 1.7.3's documented usages, each a program in the QTasks form.

A program is a tasks module (what the worker imports) and a client (run as
``__main__``) per usage; ``checks`` are the documented outcome, evaluated in
the client's namespace. Sources are paths in txello/qtasks at version 1.7.3.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


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
    #: Why the usage has no place in a Django app ("" when it has one); such a
    #: usage is listed and run on QTasks, not here.
    not_applicable: str = ""
    #: The gap that keeps it from its documented outcome here ("" when none):
    #: the test is an expected failure with this reason.
    gap: str = ""


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

# examples/async/based_async_app.py with what it imports inlined (one module
# per program here): libs/task_middleware.py, libs/task_executor.py,
# router_tasks.py and shared_tasks.py, in that order.
ASYNC_EXAMPLE = Program(
    "based_async_app",
    "examples/async/based_async_app.py",
    """
import json
import logging
import time

import pydantic

from qtasks import AsyncRouter
from qtasks import shared_task
from qtasks.asyncio.qtasks import QueueTasks
from qtasks.executors.base import BaseTaskExecutor
from qtasks.middlewares import TaskMiddleware
from qtasks.registries.async_task_decorator import AsyncTask
from qtasks.registries.sync_task_decorator import SyncTask
from qtasks.stats.async_stats import AsyncStats


class MyTaskMiddleware(TaskMiddleware):
    def __init__(self, task_executor: "BaseTaskExecutor"):
        super().__init__(task_executor)

    async def __call__(self):
        return self.task_executor


router = AsyncRouter()


@router.task(
    description="Router test task."
)
async def router_test():
    print("router_test")


def yield_func(result):
    print(result)
    return result


@shared_task(
    description="Test synchronous task with decorator",
    middlewares_after=[MyTaskMiddleware],
    echo=True,
    generate_handler=yield_func
)
def sync_test(self: SyncTask):
    print("sync_test")
    yield 1


@shared_task(
    description="Test asynchronous task",
    middlewares_after=[MyTaskMiddleware],
    awaiting=True
)
async def async_test():
    print("async_test")


app = QueueTasks()
app.config.logs_default_level_server = logging.DEBUG
app.config.running_older_tasks = True
app.config.result_time_interval = 0.1

app.include_router(router)


@app.task(
    description="Task for load testing"
)
async def load_test_job(num: int):
    end_time = time.time()
    print(f"Job {num} finished at {end_time}")
    return


@app.task(
    name="test",
    description="Test Task."
)
async def test():
    print("It's a test task!")


@app.task(
    name="test_num",
    description="Test task with a number"
)
def test_num(number: int):
    print(f"Number: {number}")
    return number


@app.task(
    name="test_echo",
    description="Test task with console output",
    echo=True
)
async def test_echo(self: AsyncTask):
    task = await self.add_task(5, task_name="test_num", timeout=50)
    if task:
        print(f"Task {task.task_name}, result: {task.returning}")
        return str(task)


@app.task(
    description="Test task with exception handling",
    retry=5,
    retry_on_exc=[ZeroDivisionError]
)
def error_zero():
    result = 1/0
    print(result)


async def yield_func(result):
    print(result)
    return result + 2


@app.task(
    description="Test task with generator",
    echo=True,
    generate_handler=yield_func
)
async def test_yield(self: AsyncTask, n: int):
    self.ctx.get_logger().info(self.ctx.task_uuid)
    for _ in range(n):
        n += 1
        yield n


@app.task(
    description="Test task with retry",
    echo=True,
    retry=2
)
async def test_retry(self: AsyncTask):
    self.ctx.get_logger().info("Retry...")
    raise KeyError("Test error")


class Item(pydantic.BaseModel):
    name: str
    value: int


@app.task(
    description="Test task with Pydantic",
    tags=["example"],
    # echo=True,
    decode=json.dumps,
)
async def example_pydantic(item: Item):
    return f"Hello, {item.name}!"


@app.task(
    description="Test task for demonstrating context usage",
    echo=True, tags=["test"], priority=1,
    retry=3, retry_on_exc=[KeyError], decode=json.dumps,
    test="test"
)
async def test_echo_ctx(self: AsyncTask):
    self.ctx.get_logger().info("This is a test task!")
    await self.ctx.sleep(5)
    self.ctx.get_logger().info(self.ctx.get_config())
    self.ctx.get_logger().info(
        f\"\"\"
            UUID: {self.ctx.task_uuid}
            Name: {self.task_name}
            Tags: {self.tags}
            Priority: {self.priority}
            Additional parameters: {self.extra}
            Retry count of the task: {self.retry}
            Exceptions for repetition: {self.retry_on_exc}
            Function for decorator: {self.ctx.generate_handler}
            Is self caused: {self.echo}
            Decoding via parameter: {self.decode}
            TaskExecutor via parameter: {self.executor}
            Middleware before: {self.middlewares_before}
            Middleware after: {self.middlewares_after}
            \"\"\"
    )
    self.ctx.cancel("Test task cancelled")
    return "Hello, world!"


@app.task
async def example_stats():
    inspect = await stats.inspect()
    print(inspect.tasks())


@app.task(echo=True, max_time=2)
async def example_error_timeout(self: AsyncTask):
    await self.ctx.sleep(5)
    return "This task took too long to complete."


stats = AsyncStats(app=app)

if __name__ == "__main__":
    app.run_forever(num_workers=10)
""",
)

# docs/en/examples/features.md: its snippets in one async app. ``handler``
# (not shown on the page) returns what it is given.
FEATURES = Program(
    "features_app",
    "docs/en/examples/features.md",
    """
from qtasks import AsyncRouter, shared_task
from qtasks.asyncio import QueueTasks

app = QueueTasks()


@shared_task()
def shared_func():
    print("Shared task")


@shared_task(awaiting=True)
async def async_shared():
    print("async shared task")


router = AsyncRouter()


@router.task()
async def example():
    print("Router task")


app.include_router(router)


@app.task(echo=True)
async def echo_task(self):
    print(self.task_name)


@app.task(echo=True)
def show(self):
    print(self.ctx.task_uuid)


@app.task(retry=5, retry_on_exc=[ZeroDivisionError])
def risky():
    return 1 / 0


def handler(result):
    return result


@app.task(generate_handler=handler)
def mytask():
    step = yield "INIT"
    return step
""",
)

# features.md's middleware and executor snippets, with the classes of
# examples/sync/libs/task_middleware.py and examples/async/libs/task_executor.py.
EXTENSIONS = Program(
    "extensions_app",
    "docs/en/examples/features.md, examples/*/libs/",
    """
from typing import Any, Union

from qtasks import QueueTasks
from qtasks.executors.base import BaseTaskExecutor
from qtasks.middlewares import TaskMiddleware

app = QueueTasks()


class MyTaskMiddleware(TaskMiddleware):
    def __init__(self, task_executor: "BaseTaskExecutor"):
        super().__init__(task_executor)

    async def __call__(self):
        return self.task_executor


class MyAsyncTaskExecutor(BaseTaskExecutor):
    def __init__(self, task_func, task_broker, log=None):
        super().__init__(task_func, task_broker, log)

    async def before_execute(self):
        pass

    async def after_execute(self):
        pass

    async def execute_middlewares(self):
        pass

    async def run_task(self) -> Any:
        pass

    async def execute(
        self,
        decode: bool = True
    ) -> Union[Any, str]:
        pass

    async def decode(self) -> str:
        return ""


@app.task(
    middlewares_before=[MyTaskMiddleware],
    middlewares_after=[MyTaskMiddleware])
def example():
    pass


@app.task(executor=MyAsyncTaskExecutor)
async def task():
    return "not run: the executor's execute() returns None"
""",
)

# docs/en/features/contexts.md and docs/en/examples/echo.md: what self.ctx offers.
CONTEXTS = Program(
    "contexts_app",
    "docs/en/features/contexts.md",
    """
from qtasks.asyncio import QueueTasks

app = QueueTasks()


@app.task(echo=True)
async def my_task(self):
    print(self.ctx.task_name)
    return self.ctx.task_name


@app.task(echo=True)
async def ctx_async(self):
    meta = await self.ctx.get_metadata()
    other = await self.ctx.get_task(self.ctx.task_uuid)
    self.ctx.get_logger("custom").info("logged")
    await self.ctx.sleep(0.1)
    return [
        str(meta.uuid) == str(self.ctx.task_uuid),
        other is not None,
        self.ctx.get_component("broker") is not None,
        self.ctx.get_config() is not None,
    ]


@app.task(echo=True)
def ctx_sync(self):
    meta = self.ctx.get_metadata(cache=True)
    other = self.ctx.get_task(uuid=self.ctx.task_uuid)
    self.ctx.sleep(0.1)
    return [str(meta.uuid) == str(self.ctx.task_uuid), other is not None]


@app.task(echo=True)
async def ctx_cancel(self):
    self.ctx.cancel()
""",
)

# docs/en/examples/yield.md, examples 1 and 2.
YIELD_EXAMPLES = Program(
    "yield_examples_app",
    "docs/en/examples/yield.md",
    """
from qtasks.asyncio import QueueTasks

app = QueueTasks()


async def yield_func(result):
    print(f"Processed: {result}")
    return result + 2

@app.task(generate_handler=yield_func, echo=True)
async def test_yield(n: int):
    for _ in range(n):
        n += 1
        yield n


def sync_handler(value):
    print("SYNC:", value)
    return value * 2

@app.task(generate_handler=sync_handler)
def sync_gen(n: int):
    for i in range(n):
        yield i + 1
""",
)

YIELD_FEATURE = Program(
    "yield_feature_app",
    "docs/en/features/yield.md",
    """
from qtasks.asyncio import QueueTasks

app = QueueTasks()


async def yield_func(result: int) -> int:
    print(result)
    return result + 2


@app.task(
    description="Test task with a generator.",
    generate_handler=yield_func,)

async def test_yield(n: int):
    for _ in range(n):
        n += 1
        yield n
""",
)

DEPENDS_ASYNC = Program(
    "based_async_depends",
    "examples/depends/based_async_depends.py",
    """
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated

from qtasks.asyncio import QueueTasks
from qtasks.plugins.depends import Depends, ScopeEnum

app = QueueTasks()
app.config.delete_finished_tasks = True
app.config.running_older_tasks = True
app.config.logs_default_level_server = 20


class AwaitableClass:
    def __await__(self):
        print("Awaiting...")
        return self.some_coroutine().__await__()

    async def some_coroutine(self):
        return 123


async def test_dep():
    print("Open")
    try:
        yield 123
    finally:
        print("Close")


@app.task
async def test(dep: Annotated[int, Depends(test_dep, scope=ScopeEnum.TASK)]):
    print(55555, dep)


if __name__ == "__main__":
    app.run_forever()
""",
)

DEPENDS_SYNC = Program(
    "based_sync_depends",
    "examples/depends/based_sync_depends.py",
    """
from contextlib import contextmanager
from typing import Annotated

from qtasks import QueueTasks
from qtasks.plugins.depends import Depends, ScopeEnum

app = QueueTasks()
app.config.delete_finished_tasks = True
app.config.running_older_tasks = True
app.config.logs_default_level_server = 20


@contextmanager
def test_dep():
    print("Open")
    yield 123
    print("Close")


@app.task
def test(dep: Annotated[int, Depends(test_dep, scope=ScopeEnum.TASK)]):
    print(dep)


if __name__ == "__main__":
    app.run_forever()
""",
)

DEPENDS_DOC = Program(
    "depends_doc_app",
    "docs/en/features/depends.md",
    """
from typing import Annotated
from contextlib import asynccontextmanager
from qtasks.asyncio import QueueTasks
from qtasks.plugins.depends import Depends, ScopeEnum

app = QueueTasks()

@asynccontextmanager
async def test_dep():
    print("Open")
    yield 123
    print("Close")

@app.task
async def test(dep: Annotated[int, Depends(test_dep, scope=ScopeEnum.TASK)]):
    print(dep)
    return dep
""",
)

STATES_EXAMPLE = Program(
    "based_async_states_app",
    "examples/states/based_async_states_app.py",
    """
from qtasks.asyncio import QueueTasks
from qtasks.plugins import AsyncState
from qtasks.registries import AsyncTask

app = QueueTasks()


class MyState(AsyncState):
    pass


@app.task
async def step1(state: MyState):
    await state.set("state", "await_phone")
    await state.update(step=1, prompt="Enter your phone number")
    return "ok"


@app.task(echo=True)
async def step2(self: AsyncTask, state: MyState):
    print(await state.get_all())
    cur = await state.get("state")
    if cur != "await_phone":
        return "error"
    await state.update(step=2)
    await state.delete("state")
    await state.clear()
    return "ok"


if __name__ == "__main__":
    app.run_forever()
""",
)

STATES_DOC = Program(
    "states_doc_app",
    "docs/en/features/states.md",
    """
from qtasks.asyncio import QueueTasks
from qtasks.plugins.states import AsyncState

app = QueueTasks()

class MyState(AsyncState):
    pass

@app.task
async def step1(state: MyState):
    await state.set("state", "await_phone")
    await state.update(step=1, prompt="Enter phone number")
    return "ok"

@app.task
async def step2(state: MyState):
    print(await state.get_all())

    cur = await state.get("state")
    if cur != "await_phone":
        return "error"

    await state.update(step=2)
    await state.delete("state")
    await state.clear()
    return "ok"
""",
)

CLS = Program(
    "based_async_app_cls",
    "examples/cls/based_async_app_cls.py",
    """
from qtasks.asyncio import QueueTasks

app = QueueTasks()
app.config.delete_finished_tasks = True

@app.task
async def add(a: int, b: int) -> int:
    return a + b

if __name__ == "__main__":
    app.run_forever()
""",
)

CONCURRENT_ASYNC = Program(
    "concurrent_async_app",
    "examples/concurrent/test_async_concurrent_tasks.py (its app; the client is the rest)",
    """
import logging
import time

from qtasks.asyncio import QueueTasks

app = QueueTasks()
app.config.logs_default_level_server = logging.INFO
app.config.running_older_tasks = True
app.config.delete_finished_tasks = True
app.config.result_time_interval = 0.1


@app.task(
    description="Task for load testing"
)
async def load_test_job(num: int):
    end_time = time.time()
    print(f"Job {num} finished at {end_time}")
    return
""",
)

CONCURRENT_SYNC = Program(
    "concurrent_sync_app",
    "examples/concurrent/test_sync_concurrent_tasks.py (its app; the client is the rest)",
    CONCURRENT_ASYNC.code.replace(
        "from qtasks.asyncio import QueueTasks", "from qtasks import QueueTasks"
    ).replace("async def load_test_job", "def load_test_job"),
)

ENV = Program(
    "env_app",
    "examples/env/based_async_app.py",
    """
import os

from qtasks.asyncio import QueueTasks

os.environ["QTASKS_TASK_DEFAULT_PRIORITY"] = "21"

app = QueueTasks()
print(app.config.task_default_priority)
print(app.worker.config.task_default_priority)
print(app.broker.config.task_default_priority)
print(app.broker.storage.config.task_default_priority)
if app.broker.storage.global_config:
    print(app.broker.storage.global_config.config.task_default_priority)
""",
)

TIMERS = Program(
    "timer_app",
    "examples/timers/test_async_timer.py",
    """
import logging

from apscheduler.triggers.cron import CronTrigger

from qtasks.asyncio import QueueTasks
from qtasks.timers import AsyncTimer

app = QueueTasks()
app.config.logs_default_level_server = logging.INFO
app.config.running_older_tasks = True
app.config.result_time_interval = 0.1


@app.task(
    name="test",
    description="Test task"
)
async def test(num: int):
    print(f"Number: {num}")


timer = AsyncTimer(app=app)
timer.add_task(5, task_name="test", trigger=CronTrigger(second="*/5"))
""",
)

# QTasks' own test suite: tests/apps/app_sync.py and tests/apps/app_async.py.
QT_TESTS_SYNC = Program(
    "qt_app_sync",
    "tests/apps/app_sync.py",
    '''
"""Sync App."""

from qtasks import QueueTasks

app = QueueTasks(name="QueueTasks")
app.config.delete_finished_tasks = True


@app.task(name="test")
def sample_task(id: int):
    result = f"Пользователь {id} записан"
    return result


@app.task(name="error_task")
def error_zero():
    result = 1/0
    print(result)


if __name__ == "__main__":
    app.run_forever()
''',
)

QT_TESTS_ASYNC = Program(
    "qt_app_async",
    "tests/apps/app_async.py",
    QT_TESTS_SYNC.code.replace('"""Sync App."""', '"""Async App."""')
    .replace("from qtasks import QueueTasks", "from qtasks.asyncio import QueueTasks")
    .replace("def sample_task", "async def sample_task")
    .replace("def error_zero", "async def error_zero"),
)

RESULTS = Program(
    "results_app",
    "qtasks/results/sync_result.py, async_result.py (docstrings)",
    """
from qtasks import QueueTasks

app = QueueTasks()

@app.task(name="test")
def test():
    return "result"
""",
)

PLUGIN_RAISE = Program(
    "plugin_raise_app",
    "docs/en/examples/plugins.md",
    """
from qtasks.asyncio import QueueTasks
from qtasks.exc import TaskPluginTriggerError

app = QueueTasks()


@app.task
async def raises():
    raise TaskPluginTriggerError("This is the reason")


@app.task(echo=True)
async def via_ctx(self):
    self.ctx.plugin_error("This is the reason")
""",
)


def wait_async(call: str, module: str, names: str = "") -> str:
    """A client that awaits ``call`` (an expression) inside asyncio.run."""
    imports = f"from {module} import {names}\n" if names else ""
    return (
        f"import asyncio\n{imports}"
        f"async def main():\n    return await {call}\n"
        "task = asyncio.run(main())"
    )


def qt_tests_usages(program: Program, flavour: str) -> list[Usage]:
    """QTasks' tests/<flavour>/test_<flavour>_task.py, one usage per test."""
    source = f"tests/{flavour}/test_{flavour}_task.py"
    case = "SyncTestCase" if flavour == "sync" else "AsyncTestCase"
    head = (
        f"from uuid import uuid4\nfrom qtasks.enums.task_status import TaskStatusEnum\n"
        f"from qtasks.schemas.test import TestConfig\nfrom qtasks.tests import {case}\n"
        f"from {program.module} import app\n"
        f"test_case = {case}(app=app)\ntest_case.settings(TestConfig.full())\n"
    )
    if flavour == "sync":
        calls = {
            "get": 'task = test_case.add_task("test", 5)\nresult = app.get(uuid=task.uuid)',
            "wait": 'result = test_case.add_task("test", 5, timeout=500)',
            "error": 'result = test_case.add_task("error_task", timeout=500)',
            "returning": 'result = test_case.add_task("test", 5, timeout=500)',
            "not-found": "result = app.get(uuid=str(uuid4()))",
            "timeout": 'result = test_case.add_task("test", 5, timeout=0.1)',
        }
    else:
        run = "import asyncio\nasync def main():\n    {}\nresult = asyncio.run(main())"
        calls = {
            "get": run.format(
                'task = await test_case.add_task("test", 5)\n'
                "    return await app.get(uuid=task.uuid)"
            ),
            "wait": run.format('return await test_case.add_task("test", 5, timeout=500)'),
            "error": run.format('return await test_case.add_task("error_task", timeout=500)'),
            "returning": run.format('return await test_case.add_task("test", 5, timeout=500)'),
            "not-found": run.format("return await app.get(uuid=str(uuid4()))"),
            "timeout": run.format('return await test_case.add_task("test", 5, timeout=0.1)'),
        }
    checks = {
        "get": ("result is not None",),
        "wait": ("result.status == TaskStatusEnum.SUCCESS.value",),
        "error": ("result.status == TaskStatusEnum.ERROR.value",),
        "returning": ('result.returning == "Пользователь 5 записан"',),
        "not-found": ("result is None",),
        "timeout": ("result is None",),
    }
    return [
        Usage(
            f"qt-tests-{flavour}-{name}",
            program,
            source,
            f"test_task_{name}",
            head + call,
            checks[name],
        )
        for name, call in calls.items()
    ]


APP_USAGES = [
    Usage(
        "async-pydantic-mixed",
        ASYNC_EXAMPLE,
        "examples/async/test_async_task_wait.py",
        "the example's active call: a field by position, one by name, decode=json.dumps",
        wait_async(
            'example_pydantic.add_task("Test", value=42, timeout=50)',
            "based_async_app",
            "example_pydantic",
        ),
        ('task.status == "success"', '"Hello, Test!" in task.returning'),
    ),
    Usage(
        "async-prebuilt-print",
        ASYNC_EXAMPLE,
        "examples/async/test_async_task_wait.py",
        'task_cls = example_pydantic("Test", 42) keeps the call',
        'from based_async_app import example_pydantic\ntask_cls = example_pydantic("Test", 42)\nprint(task_cls)',
        ('task_cls.task_name == "example_pydantic"', 'task_cls.args == ("Test", 42)'),
    ),
    Usage(
        "async-test-num",
        ASYNC_EXAMPLE,
        "examples/async/test_async_task_wait.py",
        "await a plain def's add_task in the async app",
        wait_async("test_num.add_task(5, timeout=50)", "based_async_app", "test_num"),
        ("task.returning == 5",),
    ),
    Usage(
        "async-error-zero",
        ASYNC_EXAMPLE,
        "examples/async/test_async_task_wait.py",
        "retry=5 on ZeroDivisionError, then error",
        wait_async("error_zero.add_task(timeout=50)", "based_async_app", "error_zero"),
        ('task.status == "error"',),
    ),
    Usage(
        "async-yield",
        ASYNC_EXAMPLE,
        "examples/async/test_async_task_wait.py",
        "echo async generator, async generate_handler (+2)",
        wait_async("test_yield.add_task(5, timeout=50)", "based_async_app", "test_yield"),
        ("task.returning == [8, 9, 10, 11, 12]",),
    ),
    Usage(
        "async-router",
        ASYNC_EXAMPLE,
        "examples/async/test_async_task_wait.py",
        "an AsyncRouter's task, through its handle",
        wait_async("router_test.add_task(timeout=50)", "based_async_app", "router_test"),
        ('task.status == "success"',),
    ),
    Usage(
        "async-echo-nested",
        ASYNC_EXAMPLE,
        "examples/async/test_async_task_wait.py",
        'await self.add_task(5, task_name="test_num", timeout=50) inside a task',
        wait_async("test_echo.add_task(timeout=50)", "based_async_app", "test_echo"),
        ('task.status == "success"', '"test_num" in task.returning'),
    ),
    Usage(
        "async-retry",
        ASYNC_EXAMPLE,
        "examples/async/test_async_task_wait.py",
        "retry=2 with any exception, then error",
        wait_async("test_retry.add_task(timeout=50)", "based_async_app", "test_retry"),
        ('task.status == "error"', '"KeyError" in task.traceback'),
    ),
    Usage(
        "async-echo-ctx",
        ASYNC_EXAMPLE,
        "examples/async/test_async_task_wait.py, docs/en/examples/echo.md",
        "every self / self.ctx attribute, then ctx.cancel(reason)",
        wait_async("test_echo_ctx.add_task(timeout=50)", "based_async_app", "test_echo_ctx"),
        (
            'task.status == "cancel"',
            'task.cancel_reason == "Test task cancelled"',
            "\"cancel_reason='Test task cancelled'\" in repr(task)",
        ),
    ),
    Usage(
        "async-stats-in-task",
        ASYNC_EXAMPLE,
        "examples/async/test_async_task_wait.py",
        "a task that awaits AsyncStats(app=app).inspect()",
        wait_async("example_stats.add_task(timeout=50)", "based_async_app", "example_stats"),
        ('task.status == "success"',),
    ),
    Usage(
        "async-max-time",
        ASYNC_EXAMPLE,
        "examples/async/test_async_task_wait.py",
        "max_time=2 stops an async task that sleeps 5s",
        wait_async(
            "example_error_timeout.add_task(timeout=50)", "based_async_app", "example_error_timeout"
        ),
        ('task.status == "error"',),
    ),
    Usage(
        "async-shared-sync-gen",
        ASYNC_EXAMPLE,
        "examples/async/shared_tasks.py",
        "a shared sync generator task with a middleware after it",
        wait_async('app.add_task("sync_test", timeout=50)', "based_async_app", "app"),
        ("task.returning == [1]",),
    ),
    Usage(
        "async-shared-awaiting",
        ASYNC_EXAMPLE,
        "examples/async/shared_tasks.py",
        "@shared_task(awaiting=True): await its add_task",
        wait_async("async_test.add_task(timeout=50)", "based_async_app", "async_test"),
        ('task.status == "success"',),
    ),
    Usage(
        "features-shared-task",
        FEATURES,
        "docs/en/examples/features.md",
        "@shared_task() outside the app, run by name",
        wait_async('app.add_task("shared_func", timeout=50)', "features_app", "app"),
        ('task.status == "success"',),
    ),
    Usage(
        "features-shared-awaiting",
        FEATURES,
        "docs/en/examples/features.md",
        "@shared_task(awaiting=True): an AsyncTask",
        wait_async("async_shared.add_task(timeout=50)", "features_app", "async_shared"),
        ('task.status == "success"',),
    ),
    Usage(
        "features-router",
        FEATURES,
        "docs/en/examples/features.md",
        "AsyncRouter task, included with app.include_router",
        wait_async('app.add_task("example", timeout=50)', "features_app", "app"),
        ('task.status == "success"',),
    ),
    Usage(
        "features-echo-self",
        FEATURES,
        "docs/en/examples/features.md",
        "echo=True: self.task_name",
        wait_async("echo_task.add_task(timeout=50)", "features_app", "echo_task"),
        ('task.status == "success"',),
    ),
    Usage(
        "features-ctx-uuid",
        FEATURES,
        "docs/en/examples/features.md",
        "a sync echo task reads self.ctx.task_uuid",
        wait_async("show.add_task(timeout=50)", "features_app", "show"),
        ('task.status == "success"',),
    ),
    Usage(
        "features-retry",
        FEATURES,
        "docs/en/examples/features.md",
        "retry=5, retry_on_exc=[ZeroDivisionError], then error",
        wait_async("risky.add_task(timeout=50)", "features_app", "risky"),
        ('task.status == "error"',),
    ),
    Usage(
        "features-yield-return",
        FEATURES,
        "docs/en/examples/features.md, docs/en/features/uniqueness.md",
        'step = yield "INIT"; return step, with a generate_handler',
        wait_async("mytask.add_task(timeout=50)", "features_app", "mytask"),
        ('task.status == "success"', 'task.returning == ["INIT"]'),
    ),
    Usage(
        "features-middlewares",
        EXTENSIONS,
        "docs/en/examples/features.md",
        "middlewares_before / middlewares_after with TaskMiddleware subclasses",
        "from extensions_app import example\ntask = example.add_task(timeout=50)",
        ('task.status == "success"',),
    ),
    Usage(
        "features-executor",
        EXTENSIONS,
        "docs/en/examples/features.md, examples/async/libs/task_executor.py",
        "executor=MyAsyncTaskExecutor: its execute() gives the result (None)",
        "from extensions_app import task as handle\ntask = handle.add_task(timeout=50)",
        ('task.status == "success"', "task.returning is None"),
    ),
    Usage(
        "contexts-echo",
        CONTEXTS,
        "docs/en/features/contexts.md",
        "echo=True: self.ctx.task_name",
        wait_async("my_task.add_task(timeout=50)", "contexts_app", "my_task"),
        ('task.returning == "my_task"',),
    ),
    Usage(
        "contexts-async",
        CONTEXTS,
        "docs/en/features/contexts.md",
        "await get_metadata / get_task / sleep; get_component, get_config, get_logger(name)",
        wait_async("ctx_async.add_task(timeout=50)", "contexts_app", "ctx_async"),
        ("task.returning == [True, True, True, True]",),
    ),
    Usage(
        "contexts-sync",
        CONTEXTS,
        "docs/en/features/contexts.md",
        "a sync task's ctx: get_metadata(cache=True), get_task(uuid=...), sleep",
        wait_async("ctx_sync.add_task(timeout=50)", "contexts_app", "ctx_sync"),
        ("task.returning == [True, True]",),
    ),
    Usage(
        "contexts-cancel-default",
        CONTEXTS,
        "docs/en/features/contexts.md",
        'ctx.cancel() without a reason: "<task_name>.cancel"',
        wait_async("ctx_cancel.add_task(timeout=50)", "contexts_app", "ctx_cancel"),
        ('task.status == "cancel"', 'task.cancel_reason == "ctx_cancel.cancel"'),
    ),
    Usage(
        "yield-echo-no-self",
        YIELD_EXAMPLES,
        "docs/en/examples/yield.md (example 1)",
        "echo=True on a generator without a self parameter: [8, ..., 12]",
        wait_async("test_yield.add_task(5, timeout=50)", "yield_examples_app", "test_yield"),
        ("task.returning == [8, 9, 10, 11, 12]",),
    ),
    Usage(
        "yield-sync-handler",
        YIELD_EXAMPLES,
        "docs/en/examples/yield.md (example 2)",
        "sync generator, sync handler (*2)",
        wait_async("sync_gen.add_task(5, timeout=50)", "yield_examples_app", "sync_gen"),
        ("task.returning == [2, 4, 6, 8, 10]",),
    ),
    Usage(
        "yield-feature",
        YIELD_FEATURE,
        "docs/en/features/yield.md",
        "await test_yield.add_task(5, timeout=50): [8, ..., 12]",
        wait_async("test_yield.add_task(5, timeout=50)", "yield_feature_app", "test_yield"),
        ("task.returning == [8, 9, 10, 11, 12]",),
    ),
    Usage(
        "depends-async",
        DEPENDS_ASYNC,
        "examples/depends/test_async_depends_wait.py",
        "Annotated[int, Depends(async generator, scope=TASK)] (500 calls here 5)",
        "import asyncio\nfrom based_async_depends import test\n"
        "async def main():\n    tasks = [test.add_task() for _ in range(5)]\n"
        "    await asyncio.gather(*tasks)\n    return await test.add_task(timeout=50)\n"
        "task = asyncio.run(main())",
        ('task.status == "success"',),
    ),
    Usage(
        "depends-sync",
        DEPENDS_SYNC,
        "examples/depends/test_sync_depends_wait.py",
        "Annotated[int, Depends(contextmanager, scope=TASK)], 10 calls from threads",
        "from based_sync_depends import test\n"
        "from concurrent.futures import ThreadPoolExecutor, as_completed\n"
        "with ThreadPoolExecutor(max_workers=4) as executor:\n"
        "    futures = [executor.submit(test.add_task) for _ in range(10)]\n"
        "    [f.result() for f in as_completed(futures)]\n"
        "task = test.add_task(timeout=50)",
        ('task.status == "success"',),
    ),
    Usage(
        "depends-doc",
        DEPENDS_DOC,
        "docs/en/features/depends.md",
        "Depends(asynccontextmanager): the task gets 123",
        wait_async("test.add_task(timeout=50)", "depends_doc_app", "test"),
        ('task.status == "success"', "task.returning == 123"),
    ),
    Usage(
        "states-example",
        STATES_EXAMPLE,
        "examples/states/test_async_task_wait_states.py",
        "step1 writes an AsyncState, step2 reads, checks and clears it",
        "import asyncio\nfrom based_async_states_app import step1, step2\n"
        "async def main():\n    await step1.add_task(timeout=50)\n"
        "    return await step2.add_task(timeout=50)\n"
        "task = asyncio.run(main())",
        ('task.returning == "ok"',),
    ),
    Usage(
        "states-doc",
        STATES_DOC,
        "docs/en/features/states.md",
        "the same with qtasks.plugins.states.AsyncState",
        "import asyncio\nfrom states_doc_app import step1, step2\n"
        "async def main():\n    await step1.add_task(timeout=50)\n"
        "    return await step2.add_task(timeout=50)\n"
        "task = asyncio.run(main())",
        ('task.returning == "ok"',),
    ),
    Usage(
        "cls-gather",
        CLS,
        "examples/cls/test_async_cls.py",
        "asyncio.gather over pre-built tasks' add_task()",
        "import asyncio\nfrom based_async_app_cls import add\n"
        "async def main():\n    task_cls_list = [\n        add(2, 3, timeout=50),\n"
        "        add(3, 4, timeout=50),\n        add(4, 5, timeout=50),\n        add(6, 7, timeout=50)\n    ]\n"
        "    print(task_cls_list)\n"
        "    tasks = await asyncio.gather(*map(lambda cls: cls.add_task(), task_cls_list))\n"
        "    print(tasks)\n    return tasks\ntasks = asyncio.run(main())",
        ("[task.returning for task in tasks] == [5, 7, 9, 13]",),
    ),
    Usage(
        "cls-chain",
        CLS,
        "examples/cls/test_async_taskutils_wait.py",
        "AsyncTaskUtils.chain(add(2, 2), add(4), add(8)).get(timeout=100)",
        "import asyncio\nfrom based_async_app_cls import add\n"
        "from qtasks.utils.tasks.async_task_utils import AsyncTaskUtils\n"
        "async def main():\n    task_cls_list = [\n        add(2, 2),\n        add(4),\n        add(8)\n    ]\n"
        "    chain = AsyncTaskUtils.chain(*task_cls_list)\n    return await chain.get(timeout=100)\n"
        "result = asyncio.run(main())",
        ("result is not None",),
    ),
    Usage(
        "concurrent-async",
        CONCURRENT_ASYNC,
        "examples/concurrent/test_async_concurrent_tasks.py",
        "gather of add_task(args=(i,)) (20000 calls here 20)",
        "import asyncio\nfrom concurrent_async_app import app, load_test_job\n"
        "async def main(num):\n    async def run_single_task(i):\n"
        "        try:\n            result = await load_test_job.add_task(args=(i,))\n            return result\n"
        '        except asyncio.TimeoutError:\n            return f"Timeout for task {i}"\n'
        "    tasks = [run_single_task(i) for i in range(num)]\n"
        "    return await asyncio.gather(*tasks)\n"
        "results = asyncio.run(main(20))",
        ("len(results) == 20 and all(task is not None for task in results)",),
    ),
    Usage(
        "concurrent-sync",
        CONCURRENT_SYNC,
        "examples/concurrent/test_sync_concurrent_tasks.py",
        "a loop of add_task(i) (main2; 20000 calls here 20)",
        "import time\nfrom concurrent_sync_app import app, load_test_job\n"
        "def main2(num):\n    start_time = time.time()\n    for i in range(num):\n"
        "        load_test_job.add_task(i)\n    end_time = time.time()\n"
        '    print(f"Completed: {num} tasks in {(end_time - start_time):.2f} seconds")\n'
        "main2(20)\ntask = load_test_job.add_task(20, timeout=50)",
        ('task.status == "success"',),
    ),
    Usage(
        "results-sync",
        RESULTS,
        "qtasks/results/sync_result.py",
        "SyncResult(uuid=task.uuid).result(timeout=50) after app.add_task(task_name=...)",
        "from results_app import app\nfrom qtasks.results import SyncResult\n"
        'task = app.add_task(task_name="test")\nresult = SyncResult(uuid=task.uuid).result(timeout=50)',
        ('result.returning == "result"',),
    ),
    Usage(
        "results-async",
        RESULTS,
        "qtasks/results/async_result.py",
        "await app.add_task on the sync QueueTasks, then AsyncResult (as the docstring writes it)",
        "import asyncio\nfrom results_app import app\nfrom qtasks.results import AsyncResult\n"
        "async def main():\n"
        '    task = await app.add_task(task_name="test")\n'
        "    return await AsyncResult(uuid=task.uuid).result(timeout=50)\n"
        "result = asyncio.run(main())",
        ('result.returning == "result"',),
    ),
    Usage(
        "plugins-raise",
        PLUGIN_RAISE,
        "docs/en/examples/plugins.md",
        'raise TaskPluginTriggerError("This is the reason") with no plugin: error',
        wait_async("raises.add_task(timeout=50)", "plugin_raise_app", "raises"),
        ('task.status == "error"', '"This is the reason" in task.traceback'),
    ),
    Usage(
        "plugins-ctx-reason",
        PLUGIN_RAISE,
        "docs/en/examples/plugins.md",
        'self.ctx.plugin_error("This is the reason") with no plugin: error',
        wait_async("via_ctx.add_task(timeout=50)", "plugin_raise_app", "via_ctx"),
        ('task.status == "error"', '"TaskPluginTriggerError" in task.traceback'),
    ),
    Usage(
        "env-default-priority",
        ENV,
        "examples/env/based_async_app.py",
        "QTASKS_TASK_DEFAULT_PRIORITY in the environment sets each component's config",
        "from env_app import app",
        ("app.config.task_default_priority == 21",),
        not_applicable="QTasks' per-component config (worker, broker, storage, global config) read "
        "from QTASKS_* environment variables; here the one QTASKS setting configures the app",
    ),
    Usage(
        "timer-async",
        TIMERS,
        "examples/timers/test_async_timer.py",
        "AsyncTimer(app=app).add_task(5, task_name=..., trigger=CronTrigger(second='*/5'))",
        "from timer_app import timer",
        ("len(timer.tasks) == 1",),
        not_applicable="QTasks' own timer process (apscheduler); here a periodic schedule "
        "(docs/periodic.md) run by the worker's beat does the same",
    ),
]

APP_USAGES += qt_tests_usages(QT_TESTS_SYNC, "sync") + qt_tests_usages(QT_TESTS_ASYNC, "async")

USAGES += APP_USAGES

#: Documented usages that are listed, and not run: they cannot run as written,
#: or they need a QTasks component that has no place in a Django app.
NOT_RUN: list[tuple[str, str, str]] = [
    (
        "timer-sync",
        "examples/timers/test_sync_timer.py",
        "not applicable: QTasks' SyncTimer; here periodic schedules (docs/periodic.md)",
    ),
    (
        "timer-doc",
        "docs/en/features/timer.md",
        "not runnable as written (db, mailer undefined); QTasks' AsyncTimer",
    ),
    (
        "grpc-async",
        "examples/grpc/test_async_task_wait_grpc.py",
        "not applicable: QTasks' gRPC starter and broker",
    ),
    (
        "grpc-sync",
        "examples/grpc/test_sync_task_wait_grpc.py",
        "not applicable: QTasks' gRPC starter and broker",
    ),
    (
        "qt-tests-grpc-async",
        "tests/async/test_async_grpc.py",
        "not applicable: QTasks' gRPC starter",
    ),
    ("qt-tests-grpc-sync", "tests/sync/test_sync_grpc.py", "not applicable: QTasks' gRPC starter"),
    ("locust", "tests/locust/main.py", "not applicable: a load test of QTasks' HTTP plugin"),
    (
        "variables-depends",
        "docs/en/examples/variables.md (example 1)",
        "not runnable as written (connect_to_db undefined)",
    ),
    (
        "variables-state",
        "docs/en/examples/variables.md (example 2)",
        "not runnable as written (statements outside the function); features/states.md is the runnable form",
    ),
    (
        "yield-ids",
        "docs/en/examples/yield.md (example 3)",
        "not runnable as written (db undefined)",
    ),
    (
        "yield-notifications",
        "docs/en/examples/yield.md (company example)",
        "not runnable as written (get_employees undefined)",
    ),
    (
        "features-nested",
        "docs/en/examples/features.md",
        'not runnable as written (task "subtask" undefined)',
    ),
    (
        "features-executor-stub",
        "docs/en/examples/features.md",
        "not runnable as written (class MyExec: ...)",
    ),
]

#: Usages that do not reach their documented outcome here, and why.
GAPS = {
    "yield-echo-no-self": "Fails on QTasks as well: echo=True passes self as the only parameter",
    "results-async": "Fails on QTasks as well: the sync app's add_task is not awaitable",
    "features-executor": "Fails on QTasks as well (its wait returns None): the executor's "
    "constructor refuses the plugins= keyword; here the task ends in error with that TypeError",
    "concurrent-async": "Refused here: its add_task(args=(i,)) gives load_test_job(num) a "
    "keyword argument 'args' it does not take; QTasks 1.7.3 writes the 20 tasks and each ends "
    "in error, here the call raises TaskSignatureError and writes none",
}

#: Usages whose outcome here depends on how fast the machine runs the task:
#: listed, not run (a test must not hang on timing).
TIMING = {
    "qt-tests-sync-timeout": "Timing: a wait here ends as soon as the task does, so the outcome "
    "depends on whether the task ends within the 0.1 s wait; QTasks looks only every "
    "result_time_interval (1 s), so it returns None there",
    "qt-tests-async-timeout": "As qt-tests-sync-timeout",
}

USAGES = [
    replace(
        usage,
        gap=GAPS.get(usage.id, usage.gap),
        not_applicable=TIMING.get(usage.id, usage.not_applicable),
    )
    for usage in USAGES
]

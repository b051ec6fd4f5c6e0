"""The documentation builds, and every Python example in it runs.

How the ```python blocks of README.md and docs/*.md are run:

- Blocks run in page order, in one namespace per page, so a later block can
  use what an earlier one defined. Django is set up on the test database
  (``transaction=True``: what a block writes is committed) and a worker runs
  in this process for the whole page, on the queues in ``WORKER_QUEUES``, so
  ``add.add_task(2, 3, timeout=10)`` really waits for a real run. Tasks
  without a queue go to ``DOCS_QUEUE`` (``QTASKS["DEFAULT_QUEUE"]`` is set to
  it), which no other test's worker serves.
- Each page starts with an empty task registry: it runs the tasks it defines,
  and its tasks are forgotten after it.
- A block whose first line names a Python file, ``# myapp/tasks.py``, is that
  module: it runs as ``myapp.tasks`` (later blocks import from it). Blocks that
  name the same file add to one module. A block that names a ``settings.py``
  or ``urls.py`` is a fragment of a project's configuration: it is compiled,
  not run.
- A block preceded by ``<!-- not-run: <reason> -->`` is compiled, not run.
  Use it for what cannot run here (another project's layout, a service).
- A block with a top-level ``await`` runs as a coroutine, as in
  ``python -m asyncio``: everything in it must then be async-safe.
- Functions named ``test_*`` and ``unittest.TestCase`` classes that a block
  defines are run right after it, as pytest or ``manage.py test`` would; a
  test function gets the fixtures of ``FIXTURES`` that it names.
- A page with ``<!-- no-worker: <reason> -->`` gets no background worker (its
  examples run their own).

Pages in ``PENDING`` are compiled only, until their authors mark their blocks.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.util
import inspect
import io
import os
import re
import subprocess
import sys
import threading
import types
import unittest
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections, transaction
from django.test import override_settings

from django_qtasks import app
from django_qtasks.conf import OPTIONS
from django_qtasks.testing import WorkerThread, immediate

pytestmark = pytest.mark.db_independent

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

#: Pages that other developers are still writing: compiled, not run, until
#: their blocks follow the convention above.
PENDING = {
    # Its second block (line 41) is a urls.py fragment without a "# urls.py"
    # first line: it stops at NameError: name 'path' is not defined.
    "api.md": "its urls.py example needs a '# urls.py' first line or a not-run marker",
}

#: The default queue while the examples run, and every queue their worker serves.
DOCS_QUEUE = "docs"
WORKER_QUEUES = [DOCS_QUEUE, "emails", "reports"]

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)")
MARKER = re.compile(r"^\s*<!--\s*(?P<name>[a-z-]+)\s*:\s*(?P<reason>.*?)\s*-->\s*$")
FILE_COMMENT = re.compile(r"^#\s*(?P<path>[\w./-]+\.py)\b")
CONFIG_FILES = ("settings.py", "urls.py")
BLOCK_MARKERS = ("not-run",)
PAGE_MARKERS = ("no-worker",)


@dataclass
class Block:
    path: Path
    #: Line of the block's first line of code in its page (1-based).
    line: int
    code: str
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def file(self) -> str | None:
        """The file the block says it is (its first line, ``# myapp/tasks.py``)."""
        match = FILE_COMMENT.match(self.code)
        return match["path"] if match else None

    @property
    def is_config(self) -> bool:
        return self.file is not None and self.file.rsplit("/", 1)[-1] in CONFIG_FILES

    @property
    def module(self) -> str | None:
        if self.file is None or self.is_config:
            return None
        name = self.file.removesuffix(".py").replace("/", ".")
        return name.removesuffix(".__init__")

    def compile(self) -> types.CodeType:
        # Padding keeps line numbers: a traceback points into the page.
        source = "\n" * (self.line - 1) + self.code
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        return compile(source, str(self.path), "exec", flags=flags, dont_inherit=True)


def python_blocks(path: Path) -> list[Block]:
    """The page's ```python blocks, with the marker on the line before each."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        end = index + 1
        while end < len(lines) and not re.match(
            rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", lines[end]
        ):
            end += 1
        if opening["info"].lower() in ("python", "py"):
            body = [line.removeprefix(indent) for line in lines[index + 1 : end]]
            blocks.append(
                Block(path, index + 2, "\n".join(body) + "\n", block_marker(path, lines, index))
            )
        index = end + 1
    return blocks


def block_marker(path: Path, lines: list[str], fence_index: int) -> str | None:
    """The reason of a ``<!-- not-run: ... -->`` right before the fence, if any."""
    previous = fence_index - 1
    while previous >= 0 and not lines[previous].strip():
        previous -= 1
    if previous < 0 or not lines[previous].lstrip().startswith("<!--"):
        return None
    marker = MARKER.match(lines[previous])
    where = f"{path.relative_to(ROOT)}:{previous + 1}"
    assert marker is not None, f"{where}: a comment before a code block must be a marker"
    assert marker["name"] in BLOCK_MARKERS, f"{where}: unknown block marker {marker['name']!r}"
    assert marker["reason"], f"{where}: a {marker['name']} marker needs a reason"
    return marker["reason"]


def page_markers(path: Path) -> dict[str, str]:
    found = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        marker = MARKER.match(line)
        if marker is not None and marker["name"] in PAGE_MARKERS:
            assert marker["reason"], f"{path.name}:{number}: {marker['name']} needs a reason"
            found[marker["name"]] = marker["reason"]
    return found


# The site ---------------------------------------------------------------------------


def test_site_builds_without_warnings(tmp_path: Path) -> None:
    missing = [name for name in ("mkdocs", "material") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(
            f"{' and '.join(missing)} not installed: pip install mkdocs-material to build the docs"
        )
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        # Material's banner about its end of life is not a warning about the docs.
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not re.search(r"^(WARNING|ERROR)\b", output, re.MULTILINE), output
    assert (tmp_path / "index.html").exists()


def test_every_page_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    missing = [page.name for page in DOCS.glob("*.md") if f" {page.name}" not in config]
    assert not missing, f"not in mkdocs.yml's nav: {missing}"


def test_settings_page_documents_every_key_with_its_type_and_default() -> None:
    rows = {}
    for line in (DOCS / "settings.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        key = re.fullmatch(r"`([A-Z][A-Z0-9_]*)`", cells[0]) if line.startswith("|") else None
        if key is not None:
            assert key[1] not in rows, f"settings.md documents {key[1]} twice"
            rows[key[1]] = cells
    assert sorted(set(rows) - set(OPTIONS)) == [], "settings.md documents unknown keys"
    assert sorted(set(OPTIONS) - set(rows)) == [], "settings.md misses keys"
    for key, option in OPTIONS.items():
        _, types_cell, default_cell, *_ = rows[key]
        words = set(re.findall(r"\w+", types_cell))
        for name in option.describe_types().split(" or "):
            assert name.strip("'") in words, f"settings.md: type of {key} should mention {name}"
        default = re.fullmatch(r"`(.*)`", default_cell)
        assert default is not None, f"settings.md: default of {key} should be `a literal`"
        value = ast.literal_eval(default[1])
        assert value == option.default, f"settings.md: {key} defaults to {option.default!r}"
        assert type(value) is type(option.default), f"settings.md: type of {key}'s default"


def test_worker_page_documents_every_option_of_qtasks_worker() -> None:
    from django.core.management.base import BaseCommand

    from django_qtasks.management.commands.qtasks_worker import Command

    def options(command: BaseCommand) -> set[str]:
        parser = command.create_parser("manage.py", "qtasks_worker")
        return {name for action in parser._actions for name in action.option_strings}

    ours = options(Command()) - options(BaseCommand())
    page = (DOCS / "worker.md").read_text()
    missing = sorted(name for name in ours if f"`{name}`" not in page)
    assert ours, "no options found"
    assert not missing, f"worker.md does not document {missing}"


def test_deployment_page_documents_every_option_of_qtasks_purge() -> None:
    from django.core.management.base import BaseCommand

    from django_qtasks.management.commands.qtasks_purge import Command

    def options(command: BaseCommand) -> set[str]:
        parser = command.create_parser("manage.py", "qtasks_purge")
        return {name for action in parser._actions for name in action.option_strings}

    ours = options(Command()) - options(BaseCommand())
    page = (DOCS / "deployment.md").read_text()
    missing = sorted(name for name in ours if f"`{name}`" not in page)
    assert ours, "no options found"
    assert not missing, f"deployment.md does not document {missing}"


# The examples -------------------------------------------------------------------------


def test_every_page_has_its_examples_found() -> None:
    """The extractor sees the blocks (a broken fence would hide them from the tests)."""
    counts = {page.name: len(python_blocks(page)) for page in PAGES}
    for name in ("README.md", "tasks.md", "context.md", "enqueueing.md", "testing.md"):
        assert counts[name] > 0, counts


@pytest.mark.parametrize(
    "path", [page for page in PAGES if page.name in PENDING], ids=lambda path: path.name
)
def test_pending_pages_examples_compile(path: Path) -> None:
    for block in python_blocks(path):
        block.compile()


@pytest.mark.e2e  # a worker in a thread of this process
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "path",
    [page for page in PAGES if page.name not in PENDING and python_blocks(page)],
    ids=lambda path: path.name,
)
def test_examples_run(path: Path) -> None:
    blocks = python_blocks(path)
    markers = page_markers(path)
    config = {**settings.QTASKS, "DEFAULT_QUEUE": DOCS_QUEUE}
    namespace: dict[str, Any] = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
    with override_settings(QTASKS=config), isolated_registry(), page_modules() as modules:
        worker = None if "no-worker" in markers else BackgroundWorker(path.stem)
        try:
            for block in blocks:
                code = block.compile()  # a SyntaxError names the page and line
                if block.not_run is not None or block.is_config:
                    continue
                target = modules[block.module] if block.module else namespace
                try:
                    run(code, target)
                    run_tests_defined(target, block)
                except Exception as exc:
                    raise AssertionError(f"the example at {block.where} failed: {exc!r}") from exc
        finally:
            if worker is not None:
                worker.stop()
            close_async_connections()


def run(code: types.CodeType, namespace: dict[str, Any]) -> None:
    if not code.co_flags & inspect.CO_COROUTINE:
        exec(code, namespace)
        return

    async def main() -> None:
        await eval(code, namespace)

    asyncio.run(main())


def run_tests_defined(namespace: dict[str, Any], block: Block) -> None:
    """Run the test functions and TestCase classes that this block defined."""
    defined = {
        node.name for node in ast.parse(block.code).body if hasattr(node, "name") and node.name
    }
    for name in sorted(defined):
        value = namespace.get(name)
        if inspect.isfunction(value) and name.startswith("test_"):
            with contextlib.ExitStack() as stack:
                fixtures = {
                    parameter: stack.enter_context(FIXTURES[parameter]())
                    for parameter in inspect.signature(value).parameters
                }
                value(**fixtures)
        elif inspect.isclass(value) and issubclass(value, unittest.TestCase):
            suite = unittest.defaultTestLoader.loadTestsFromTestCase(value)
            output = io.StringIO()
            result = unittest.TextTestRunner(stream=output, verbosity=2).run(suite)
            assert result.testsRun, f"{block.where}: {name} has no tests"
            assert result.wasSuccessful(), output.getvalue()


@contextmanager
def rolled_back_transaction() -> Iterator[None]:
    """pytest-django's ``db``: a transaction that is rolled back, as a TestCase's."""
    atomic = transaction.atomic()
    atomic._from_testcase = True  # type: ignore[attr-defined]
    with atomic:
        yield
        transaction.set_rollback(True)


#: The fixtures that examples' test functions may ask for, as pytest gives them.
FIXTURES: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
    "db": rolled_back_transaction,
    "transactional_db": contextlib.nullcontext,  # the page's test commits
    "qtasks_immediate": immediate,
    "qtasks_worker": WorkerThread,
}


@contextmanager
def isolated_registry() -> Iterator[None]:
    """Run a page with an empty registry; restore the project's tasks after it."""
    saved = dict(app.tasks)
    for name in saved:
        app.unregister(name)
    try:
        yield
    finally:
        for name in list(app.tasks):
            app.unregister(name)
        for handle in saved.values():
            app.register(handle)


class PageModules(dict[str, dict[str, Any]]):
    """Modules that a page's blocks define (``# myapp/tasks.py``), by dotted name."""

    def __missing__(self, name: str) -> dict[str, Any]:
        parent, _, child = name.rpartition(".")
        if parent:
            self[parent]
        assert name not in sys.modules, f"a docs example's module {name!r} shadows a real one"
        module = types.ModuleType(name)
        module.__path__ = []  # a package too: myapp holds myapp.tasks
        sys.modules[name] = module
        if parent:
            setattr(sys.modules[parent], child, module)
        self[name] = module.__dict__
        return module.__dict__


@contextmanager
def page_modules() -> Iterator[PageModules]:
    modules = PageModules()
    try:
        yield modules
    finally:
        for name in modules:
            sys.modules.pop(name, None)


class BackgroundWorker:
    """``qtasks_worker`` in a thread of this process, on the page's registry."""

    def __init__(self, name: str) -> None:
        from django_qtasks.worker import Worker

        self.worker = Worker(queues=WORKER_QUEUES, concurrency=8, worker_id=f"docs-{name}")
        self.loop = asyncio.new_event_loop()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self.main, name=f"docs-worker-{name}")
        self.thread.start()

    def main(self) -> None:
        try:
            self.loop.run_until_complete(self.worker.main())
        except BaseException as exc:
            self.error = exc
        finally:
            self.loop.close()

    def stop(self) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.worker.stop)
        self.thread.join(30)
        assert not self.thread.is_alive(), "the docs worker did not stop"
        if self.error is not None:
            raise AssertionError("the docs worker failed") from self.error


def close_async_connections() -> None:
    """Close what async examples opened in asgiref's sync thread (PostgreSQL drops the db)."""

    async def close() -> None:
        await sync_to_async(connections.close_all)()

    asyncio.run(close())

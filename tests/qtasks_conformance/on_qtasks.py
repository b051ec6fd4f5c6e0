"""Run the catalogue on QTasks itself: each usage unchanged, against Redis.

This is how the "works on QTasks" column of docs/coming-from-qtasks.md is
measured. It needs a Python with QTasks (never the project's venv)::

    python -m venv /tmp/qtvenv
    /tmp/qtvenv/bin/pip install qtasks==1.7.3 redis pydantic apscheduler
    /tmp/qtvenv/bin/python tests/qtasks_conformance/on_qtasks.py \
        redis://127.0.0.1:6379/12 > outcomes.json

For each program a QTasks worker (``app.run_forever()``) runs the program
as written; every ``QueueTasks`` is given the Redis URL and a key prefix of
its own (``conformqt``), whose keys are deleted afterwards. Each usage's
client runs as written and prints the same ``CONFORMANCE`` line as run.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from catalogue import USAGES, Program, Usage  # noqa: E402

PREFIX = "conformqt"

SITECUSTOMIZE = """
import os

import qtasks.asyncio.qtasks
import qtasks.qtasks

for cls in (qtasks.qtasks.QueueTasks, qtasks.asyncio.qtasks.QueueTasks):
    def init(self, *args, _init=cls.__init__, **kwargs):
        kwargs["name"] = os.environ["CONFORMQT_PREFIX"]
        kwargs["broker_url"] = os.environ["CONFORMQT_URL"]
        _init(self, *args, **kwargs)
    cls.__init__ = init
"""

RUNNER = """
import json, runpy, sys
namespace = runpy.run_path(sys.argv[1], run_name="__main__")
results = {}
for check in json.loads(sys.argv[2]):
    try:
        results[check] = bool(eval(check, namespace))
    except Exception as exc:
        results[check] = f"error: {exc!r}"
print("CONFORMANCE " + json.dumps(results))
"""


def clean(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"{PREFIX}*"))
    if keys:
        client.delete(*keys)


def run_program(program: Program, usages: list[Usage], url: str) -> dict[str, object]:
    directory = Path(tempfile.mkdtemp(prefix="conformqt-"))
    (directory / f"{program.module}.py").write_text(program.code)
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (directory / "conformqt_run.py").write_text(RUNNER)
    env = dict(os.environ, PYTHONPATH=str(directory), CONFORMQT_PREFIX=PREFIX, CONFORMQT_URL=url)
    log = open(directory / "worker.log", "w+")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-c", f"import {program.module} as m; m.app.run_forever()"],
        cwd=directory,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    time.sleep(3)
    outcomes: dict[str, object] = {}
    try:
        for usage in usages:
            client = directory / f"client_{usage.id.replace('-', '_')}.py"
            client.write_text(usage.client)
            try:
                done = subprocess.run(
                    [sys.executable, "conformqt_run.py", str(client), json.dumps(usage.checks)],
                    cwd=directory,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                lines = [
                    line for line in done.stdout.splitlines() if line.startswith("CONFORMANCE ")
                ]
                if lines:
                    outcomes[usage.id] = json.loads(lines[-1].removeprefix("CONFORMANCE "))
                else:
                    outcomes[usage.id] = {"client": (done.stderr.strip().splitlines() or ["?"])[-1]}
            except subprocess.TimeoutExpired:
                outcomes[usage.id] = {"client": "did not finish in 120 s"}
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
        clean(url)
    return outcomes


def main() -> None:
    url = sys.argv[1]
    only = set(sys.argv[2:])
    programs: dict[str, tuple[Program, list[Usage]]] = {}
    for usage in USAGES:
        if only and usage.id not in only:
            continue
        programs.setdefault(usage.program.module, (usage.program, []))[1].append(usage)
    outcomes: dict[str, object] = {}
    for program, usages in programs.values():
        outcomes.update(run_program(program, usages, url))
        print(f"{program.module}: done", file=sys.stderr)
    print(json.dumps(outcomes, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()

"""Run a ported client program as ``__main__``, then evaluate its checks.

``python -m tests.qtasks_conformance.run PROGRAM CHECKS_JSON`` prints one
line ``CONFORMANCE {"check": true|false|"error", ...}``.
"""

import json
import runpy
import sys

import django

django.setup()

namespace = runpy.run_path(sys.argv[1], run_name="__main__")
results = {}
for check in json.loads(sys.argv[2]):
    try:
        results[check] = bool(eval(check, namespace))
    except Exception as exc:
        results[check] = f"error: {exc!r}"
print("CONFORMANCE " + json.dumps(results))
# What the client saw, for a failure's message.
task = namespace.get("task")
if task is not None and hasattr(task, "status"):
    seen = {
        "uuid": str(getattr(task, "uuid", "")),
        "status": task.status,
        "returning": repr(getattr(task, "returning", None)),
        "traceback": getattr(task, "traceback", None),
    }
    print("CONFORMANCE-TASK " + json.dumps(seen, default=str))

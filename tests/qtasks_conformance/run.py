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

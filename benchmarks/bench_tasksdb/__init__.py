"""Benchmark tasks for one system: noop(x) for W1, stamp() for W2."""

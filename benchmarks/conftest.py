"""Shared benchmark helpers. Run with ``pytest benchmarks/ --benchmark-only``.

Every benchmark records its op, config, pass (``fwd`` / ``fwd+bwd``) and implementation in
``extra_info``; ``benchmarks/report.py`` turns the ``--benchmark-json`` output into
RESULTS.md, computing ratios between implementations measured in the same run.
"""
from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # configs.py, memory.py, report.py

from memory import peak_cpu_bytes  # noqa: E402


def pytest_configure(config):
    # Benchmark files are named bm_<op>.py so that `pytest tests/` never collects them.
    config.addinivalue_line("python_files", "bm_*.py")


@pytest.fixture
def record(benchmark):
    """``record(fn, op=..., config=..., pass_=..., impl=..., target_ms=None, memory=False)``.

    Times ``fn`` with pytest-benchmark and tags the result; with ``memory=True`` also stores
    the peak CPU bytes allocated by one call.
    """

    def run(fn, *, op: str, config: str, pass_: str, impl: str, target_ms: float | None = None,
            target_mb: float | None = None, memory: bool = False, rounds: int | None = None,
            **relative_targets):
        """``relative_targets``: ``baseline`` (an impl of the same group) with ``target_speedup``
        and/or ``target_memory_fraction`` (see ``report.py``)."""
        benchmark.group = f"{op} | {config} | {pass_}"
        benchmark.extra_info.update(op=op, config=config, pass_=pass_, impl=impl,
                                    target_ms=target_ms, target_mb=target_mb,
                                    threads=torch.get_num_threads(), **relative_targets)
        fn()  # warm up (and fail fast before timing)
        if memory:
            benchmark.extra_info["peak_mb"] = peak_cpu_bytes(fn) / 2**20
        if rounds is None:
            benchmark(fn)
        else:
            benchmark.pedantic(fn, rounds=rounds, warmup_rounds=0, iterations=1)

    return run

"""Start-up cost: ``import`` plus the first training step (W1, forward + backward + SGD), each in a
new Python process.

cold: jitgrad's Numba cache is empty (NUMBA_CACHE_DIR points to a new temporary directory), so the
      first backward compiles the interpreter. One round: a compile takes tens of seconds.
warm: the same cache directory again, so the first backward loads the compiled interpreter
      (quick mode: Numba's default cache, which the test suite has filled; no cold run).
torch has no compile cache; its row is the same script (import torch + first W1 step) for scale.

The child process reports its own clocks (import, first step, a second step, then the first step
of a float32 graph on a fresh tape, which jitgrad compiles or loads separately); building the
cases is not counted. The benchmark time is the parent's wall clock for the whole child, Python
start-up included. Each clock is reported as wall time (*_s) and CPU time of the child (*_cpu_s):
on a shared machine the CPU time is what an idle machine would show as wall time.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from . import _env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = _env.quick()

CHILD = r"""
import json, sys, time
clock = lambda: (time.perf_counter(), time.process_time())
t0 = clock()
import {module}
t1 = clock()
from benchmarks.adapters import build
from benchmarks.workloads import W1, W3
case = build("{system}", "w1", W1())
t1b = clock()
case.once()
t2 = clock()
case.once()
t3 = clock()
case32 = build("{system}", "w3", W3(dtype="float32"))
t3b = clock()
case32.once()
t4 = clock()
out = {{}}
for i, kind in enumerate(("s", "cpu_s")):
    out.update({{"import_" + kind: t1[i] - t0[i], "first_step_" + kind: t2[i] - t1b[i],
                "second_step_" + kind: t3[i] - t2[i], "first_float32_" + kind: t4[i] - t3b[i]}})
print(json.dumps(out))
"""


def run_child(system, cache_dir):
    """Run CHILD in a new process; cache_dir=None keeps Numba's default cache (next to the
    generated interpreter), which the test suite has already filled."""
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.pop("NUMBA_CACHE_DIR", None)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    code = CHILD.format(module="torch" if system == "torch" else "jitgrad", system=system)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    wall = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(f"start-up child failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall_s"] = wall
    return res


@pytest.fixture(scope="module")
def cache_root():
    d = tempfile.mkdtemp(prefix="jitgrad-bench-numba-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _available(system):
    try:
        __import__("torch" if system == "torch" else "jitgrad")
    except ImportError:
        pytest.skip(f"{system} is not installed")


def _record(benchmark, system, kind, results):
    med = {k: sorted(r[k] for r in results)[len(results) // 2] for k in results[0]}
    benchmark.extra_info.update(case=f"startup-{kind}", system=system, unit=None, units=None,
                                note="import + first W1 step in a new process", quick=QUICK,
                                rounds=len(results), **med)


@pytest.mark.parametrize("system", ["jitgrad"])
def test_startup_cold(benchmark, system, cache_root):
    if QUICK:
        pytest.skip("a cold compile takes tens of seconds: not in quick mode")
    _available(system)
    results = []

    def cold():
        results.append(run_child(system, tempfile.mkdtemp(dir=cache_root)))
    benchmark.group = "startup-cold"
    benchmark.pedantic(cold, rounds=1)
    _record(benchmark, system, "cold", results)


@pytest.mark.parametrize("system", ["jitgrad", "torch"])
def test_startup_warm(benchmark, system, cache_root):
    _available(system)
    warm_dir = None if QUICK else os.path.join(cache_root, "warm")
    if system == "jitgrad" and warm_dir and not os.path.isdir(warm_dir):
        os.makedirs(warm_dir)
        run_child(system, warm_dir)      # fill the cache (untimed)
    results = []

    def warm():
        results.append(run_child(system, warm_dir))
    benchmark.group = "startup-warm"
    benchmark.pedantic(warm, rounds=1 if QUICK else 3)
    _record(benchmark, system, "warm", results)

"""Timings of every workload on every installed system (pytest-benchmark).

    pytest benchmarks/ --benchmark-only            # or: python -m benchmarks.report

Each test builds one system's Case for one workload, warms it up (untimed: the first call is where
jax compiles and jitgrad loads its compiled interpreter; then a few more calls to estimate the
cost), and times ``rounds`` calls. Statistics are per call; the report quotes medians.
A system that is not installed, or that does not run a workload, is skipped with the reason.
"""
import math
import time

import pytest

from . import _env
from .adapters import SYSTEMS, Unavailable, build, load
from .cases import CASES

QUICK = _env.quick()

def _warm_up(case):
    """Untimed calls: the first (compile/load), then at least 3 more and 0.2 s. Returns
    (first call seconds, median of the later calls)."""
    t0 = time.perf_counter()
    case.once()
    first = time.perf_counter() - t0
    if QUICK:
        return first, first
    times = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < 0.2 and len(times) < 200):
        arg = case.setup() if case.setup else None
        t0 = time.perf_counter()
        case.run(arg)
        times.append(time.perf_counter() - t0)
    times.sort()
    return first, times[len(times) // 2]


def _new_model_first_call(system, spec, wl, models=1 if QUICK else 5):
    """jitgrad's first call of a new model of the workload, built as the first was (median of
    models): what a sweep pays per model once its ops' kernels are loaded (the process's first
    call also loads them). Seconds as (sweep, cold), or (None, None) for other systems.

    sweep: models built one after another, as a sweep builds them (the one before dropped, freed
    by its reference count), after 3 untimed ones: a sweep's first models grow the heap, and the
    page faults of new memory (W7: 400-700 a call in its first models, doubling it) stop once
    freed memory is reused. cold: each built after a full gc.collect(), as build() does for the
    timed runs; a full collection walks every object in the process and so evicts the CPU
    caches (a new W1 model's first eager step then takes ~1.8x the median step), which a sweep's
    own collections, rare and unsynchronised with its models, do not."""
    if system not in ("jitgrad", "jitgrad-compiled"):
        return None, None
    builder = getattr(load(system), spec.builder)
    untimed = 0 if QUICK else 3
    sweep, cold = [], []
    for k in range(untimed + models):
        case = builder(wl)
        t0 = time.perf_counter()
        case.once()
        if k >= untimed:
            sweep.append(time.perf_counter() - t0)
    for _ in range(models):
        case = build(system, spec.builder, wl)
        t0 = time.perf_counter()
        case.once()
        cold.append(time.perf_counter() - t0)
    return sorted(sweep)[len(sweep) // 2], sorted(cold)[len(cold) // 2]


def _plan(per_call, has_setup):
    """(rounds, iterations): about JITGRAD_BENCH_SECONDS of timing, at least 15 rounds (5 for calls
    over 50 ms); calls under 100 us are looped in one round to keep timer overhead out."""
    if QUICK:
        return 1, 1
    iterations = 1 if has_setup else max(1, math.ceil(100e-6 / per_call))
    rounds = int(_env.seconds() / (per_call * iterations))
    return max(5 if per_call > 0.05 else 15, min(rounds, 2000)), iterations


assert set(SYSTEMS) == {s for spec in CASES.values() for s in spec.systems}


@pytest.mark.parametrize("case_id,system", [(c, s) for c, spec in CASES.items() for s in spec.systems])
def test_bench(benchmark, case_id, system):
    if QUICK and system == "torch-compiled":
        pytest.skip("torch.compile's first call takes about a minute (inductor): not in quick runs")
    spec = CASES[case_id]
    unit = spec.unit
    wl = spec.make(QUICK)
    try:
        case = build(system, spec.builder, wl)
    except Unavailable as e:
        pytest.skip(str(e))
    if case is None:
        pytest.skip(f"{system} does not run {case_id}")
    first, per_call = _warm_up(case)
    new_model_first, new_model_cold = _new_model_first_call(system, spec, wl)
    rounds, iterations = _plan(per_call, case.setup is not None)
    benchmark.group = case_id
    benchmark.extra_info.update(case=case_id, system=system, workload=wl.describe, note=case.note,
                                units=getattr(wl, unit) if unit else None, unit=unit,
                                first_call_s=first, new_model_first_call_s=new_model_first,
                                new_model_first_call_cold_s=new_model_cold, quick=QUICK,
                                **case.extra)
    if case.setup:
        benchmark.pedantic(case.run, setup=lambda: ((case.setup(),), {}), rounds=rounds)
    else:
        benchmark.pedantic(case.run, args=(None,), rounds=rounds, iterations=iterations)

"""A new model's first compiled call, split into its parts, in one process.

    PYTHONPATH=. OMP_NUM_THREADS=1 python -m benchmarks.first_call W1 [gc] [nomemo]

After one model of the workload has loaded its kernels, builds 21 more, one after another as a
sweep does (`gc`: a gc.collect() before each, as the report's build(); `nomemo`: the Program's
pass cache emptied before each, a structurally new program), and prints medians: the eager step,
a new eager model's first step, a new compiled model's first call, and within it
Program.__init__, _Compiled.__init__ and the rest (the traced eager step). Alternate it with
another checkout to compare two versions on a noisy machine.
"""
import gc
import statistics
import sys
import time

import jitgrad.compiler as compiler
import jitgrad.compiler.program as program
from benchmarks.adapters import build, load
from benchmarks.cases import CASES


def main(case_id, collect=False, cold_passes=False, models=21):
    spec = CASES[case_id]
    wl = spec.make(False)
    spent = {}

    def timed(owner, name):
        fn = getattr(owner, name)

        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[owner] = spent.get(owner, 0) + time.perf_counter() - t0
        setattr(owner, name, wrapper)
    timed(program.Program, "__init__")
    timed(compiler._Compiled, "__init__")
    for system in ("jitgrad", "jitgrad-compiled"):
        case = build(system, spec.builder, wl)
        case.once()
        for _ in range(3):
            case.run(None)
    eager = build("jitgrad", spec.builder, wl)
    eager.once()
    steps = []
    for _ in range(50):
        t0 = time.perf_counter()
        eager.run(None)
        steps.append(time.perf_counter() - t0)
    new_eager = getattr(load("jitgrad"), spec.builder)
    new_compiled = getattr(load("jitgrad-compiled"), spec.builder)
    rows = []
    for _ in range(models):
        if collect:
            gc.collect()
        model = new_eager(wl)
        t0 = time.perf_counter()
        model.once()
        eager_first = time.perf_counter() - t0
        if collect:
            gc.collect()
        if cold_passes:
            program._MEMO.clear()
            program._MEMO_BYTES[0] = 0
        model = new_compiled(wl)
        spent.clear()
        t0 = time.perf_counter()
        model.once()
        first = time.perf_counter() - t0
        rows.append((eager_first, first, spent.get(program.Program, 0), spent.get(compiler._Compiled, 0)))

    def us(k):
        return statistics.median(r[k] for r in rows) * 1e6
    step = statistics.median(steps) * 1e6
    eager_first, first, prog, wrap = us(0), us(1), us(2), us(3)
    print(f"{case_id}: step {step:.0f} us, a new eager model's first {eager_first:.0f}, a new compiled "
          f"model's first {first:.0f} ({first / step:.2f}x the step, {first / eager_first:.2f}x the eager "
          f"first): Program {prog:.0f}, _Compiled {wrap:.0f}, the traced step and the rest "
          f"{first - prog - wrap:.0f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "W1", "gc" in sys.argv, "nomemo" in sys.argv)

"""Run settings shared by the benchmark files and the report: one thread for everyone, quick mode.

Imported before torch, jax or numpy by benchmarks/conftest.py and benchmarks/report.py, because
thread counts are read when those libraries load.
"""
import os

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def one_thread():
    for v in THREAD_VARS:
        os.environ[v] = "1"
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " " + XLA_ONE_THREAD).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def quick():
    """JITGRAD_BENCH_QUICK=1: tiny sizes, one warm-up call and one timed round (CI smoke run)."""
    return os.environ.get("JITGRAD_BENCH_QUICK") == "1"


def seconds():
    """Target measuring time per benchmark (JITGRAD_BENCH_SECONDS, default 1.0)."""
    return float(os.environ.get("JITGRAD_BENCH_SECONDS", "1.0"))

"""torch's process-wide switches that scripts set at the top: threads, determinism, matmul
precision. jitgrad's compiled kernels run on one thread and are deterministic; BLAS (numpy's
matmuls) follows set_num_threads where threadpoolctl is installed."""
import os

_state = {"threads": os.cpu_count() or 1, "deterministic": False, "warn_only": False,
          "precision": "highest"}
_PRECISIONS = ("highest", "high", "medium")


def set_num_threads(n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RuntimeError("set_num_threads expects a positive integer")
    _state["threads"] = n
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(n, user_api="blas")


def get_num_threads():
    return _state["threads"]


def use_deterministic_algorithms(mode, *, warn_only=False):
    _state["deterministic"], _state["warn_only"] = bool(mode), bool(warn_only)


def are_deterministic_algorithms_enabled():
    return _state["deterministic"]


def is_deterministic_algorithms_warn_only_enabled():
    return _state["warn_only"]


def set_float32_matmul_precision(precision):
    if precision not in _PRECISIONS:
        raise RuntimeError(f"Invalid float32 matmul precision: {precision}")
    _state["precision"] = precision


def get_float32_matmul_precision():
    return _state["precision"]

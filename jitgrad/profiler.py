"""jitgrad.profiler: torch.profiler's entry points over jitgrad.autograd.profiler (CPU only).

Besides the Tensor methods the autograd profiler wraps, a profile here also times the functions
of the ``jitgrad`` and ``jitgrad.nn.functional`` namespaces and every optimizer's ``step``.
"""
import enum
import sys

from . import _methods
from .autograd import profiler as _autograd_profiler
from .autograd.profiler import EventList, record_function  # noqa: F401  (torch.profiler's names)
from .nn import functional as _F

__all__ = ["profile", "record_function", "ProfilerActivity", "ProfilerAction", "EventList"]


class ProfilerActivity(enum.Enum):
    CPU = 0
    CUDA = 1
    MTIA = 2
    XPU = 3


class ProfilerAction(enum.Enum):
    NONE = 0
    WARMUP = 1
    RECORD = 2
    RECORD_AND_SAVE = 3


class profile(_autograd_profiler.profile):
    """torch.profiler.profile: a context manager (or start()/stop()) that records CPU activity.
    A schedule is not supported: the whole block is recorded."""

    def __init__(self, *, activities=None, schedule=None, on_trace_ready=None, record_shapes=False,
                 profile_memory=False, with_stack=False, with_flops=False, with_modules=False,
                 experimental_config=None, execution_trace_observer=None, acc_events=False,
                 use_cuda=None, custom_trace_id_callback=None):
        if schedule is not None:
            raise NotImplementedError("jitgrad.profiler.profile: schedules are not supported; "
                                      "profile the steps you want inside the block")
        if activities is not None and ProfilerActivity.CPU not in set(activities):
            raise ValueError("jitgrad profiles CPU activity only: activities must include "
                             "ProfilerActivity.CPU")
        super().__init__(record_shapes=record_shapes, profile_memory=profile_memory)
        self.on_trace_ready = on_trace_ready

    def start(self):
        self.__enter__()

    def stop(self):
        self.__exit__(None, None, None)

    def __exit__(self, *exc):
        out = super().__exit__(*exc)
        if self.on_trace_ready is not None and exc == (None, None, None):
            self.on_trace_ready(self)
        return out

    def step(self):
        """Marks a step boundary (without a schedule, every step is recorded)."""


def _subclasses(cls):
    out = []
    for c in cls.__subclasses__():
        out += [c] + _subclasses(c)
    return out


def _install(prof):
    jitgrad = sys.modules[__name__.rpartition(".")[0]]     # the package, loaded before its parts
    names = _autograd_profiler._op_names()
    for table in (_methods._FUNCTIONS, _methods._FUNCTION_ONLY):
        for name, fn in table.items():
            if callable(fn) and not isinstance(fn, type) and getattr(jitgrad, name, None) is fn:
                prof._patch(jitgrad, name, prof._timed(fn, "aten::" + names[fn]))
    for name, fn in list(vars(_F).items()):
        if not name.startswith("_") and callable(fn) and not isinstance(fn, type) and \
                getattr(fn, "__module__", "").startswith("jitgrad"):
            prof._patch(_F, name, prof._timed(fn, "aten::" + name))
    optimizer = sys.modules.get("jitgrad.optim.optimizer")     # (loaded on first use of optim)
    if optimizer is not None:
        for cls in [optimizer.Optimizer] + _subclasses(optimizer.Optimizer):
            if "step" in cls.__dict__:
                prof._patch(cls, "step", prof._timed(cls.__dict__["step"], _step_name))


def _step_name(args):
    return f"Optimizer.step#{type(args[0]).__name__}.step"


_autograd_profiler.INSTALLERS.append(_install)

"""jitgrad.profiler: torch.profiler's entry points over jitgrad.autograd.profiler (CPU only).

Besides the Tensor methods the autograd profiler wraps, a profile here also times the functions
of the ``jitgrad`` and ``jitgrad.nn.functional`` namespaces and every optimizer's ``step``.
"""
import enum
import gzip
import os
import socket
import sys
import time
import warnings

from . import _methods
from .autograd import profiler as _autograd_profiler
from .autograd.profiler import EventList, record_function  # noqa: F401  (torch.profiler's names)
from .nn import functional as _F

__all__ = ["profile", "record_function", "ProfilerActivity", "ProfilerAction", "EventList", "schedule",
           "tensorboard_trace_handler"]


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
    With a schedule, ``step()`` moves through its steps: only the active ones are recorded, and
    on_trace_ready(profile) sees each finished active cycle; without one, the whole block is
    recorded and on_trace_ready runs at its end."""

    def __init__(self, *, activities=None, schedule=None, on_trace_ready=None, record_shapes=False,
                 profile_memory=False, with_stack=False, with_flops=False, with_modules=False,
                 experimental_config=None, execution_trace_observer=None, acc_events=False,
                 use_cuda=None, custom_trace_id_callback=None):
        if activities is not None and ProfilerActivity.CPU not in set(activities):
            raise ValueError("jitgrad profiles CPU activity only: activities must include "
                             "ProfilerActivity.CPU")
        super().__init__(record_shapes=record_shapes, profile_memory=profile_memory)
        self.schedule = schedule if schedule is not None else _record_always
        self.on_trace_ready = on_trace_ready
        self.step_num = 0

    def __enter__(self):
        super().__enter__()
        self._recording = self.schedule(self.step_num) in _RECORDING
        return self

    def start(self):
        self.__enter__()

    def stop(self):
        self.__exit__(None, None, None)

    def step(self):
        """Marks a step boundary: the schedule decides what the next step records."""
        done = self.schedule(self.step_num)
        self.step_num += 1
        if done == ProfilerAction.RECORD_AND_SAVE:
            self._finish()
            if self.on_trace_ready is not None:
                self.on_trace_ready(self)
            self._events = []
        self._recording = self.schedule(self.step_num) in _RECORDING

    def __exit__(self, *exc):
        recording = self._recording
        out = super().__exit__(*exc)
        if recording and self.on_trace_ready is not None and exc == (None, None, None):
            self.on_trace_ready(self)
        return out


_RECORDING = (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE)


def _record_always(step):
    return ProfilerAction.RECORD


def schedule(*, wait, warmup, active, repeat=0, skip_first=0, skip_first_wait=0):
    """The action of each step, as torch.profiler.schedule: skip_first steps, then cycles of wait
    (nothing), warmup (nothing kept) and active steps (recorded; the last one saves), repeat times
    (0: forever). skip_first_wait: the first cycle has no wait."""
    if warmup == 0:
        warnings.warn("Profiler won't be using warmup, this can skew profiler results")
    if wait < 0 or warmup < 0 or active <= 0 or repeat < 0 or skip_first < 0:
        raise AssertionError("Invalid profiler schedule arguments")

    def schedule_fn(step):
        if step < skip_first:
            return ProfilerAction.NONE
        step -= skip_first
        if skip_first_wait:
            step += wait
        cycle = wait + warmup + active
        if repeat > 0 and step // cycle >= repeat:
            return ProfilerAction.NONE
        at = step % cycle
        if at < wait:
            return ProfilerAction.NONE
        if at < wait + warmup:
            return ProfilerAction.WARMUP
        return ProfilerAction.RECORD if at < cycle - 1 else ProfilerAction.RECORD_AND_SAVE
    return schedule_fn


def tensorboard_trace_handler(dir_name, worker_name=None, use_gzip=False):
    """An on_trace_ready that writes each cycle's Chrome trace into dir_name."""
    def handler(prof):
        os.makedirs(dir_name, exist_ok=True)
        name = worker_name or f"{socket.gethostname()}_{os.getpid()}"
        path = os.path.join(dir_name, f"{name}.{time.time_ns()}.pt.trace.json")
        prof.export_chrome_trace(path)
        if use_gzip:
            with open(path, "rb") as f, gzip.open(path + ".gz", "wb") as g:
                g.write(f.read())
            os.remove(path)
    return handler


def _subclasses(cls):
    out = []
    for c in cls.__subclasses__():
        out += [c] + _subclasses(c)
    return out


def _install(prof):
    jitgrad = sys.modules[__name__.rpartition(".")[0]]     # the package, loaded before its parts
    names = _autograd_profiler._op_names()
    for table in (_methods.FUNCTIONS,):
        for name, fn in table.items():
            bound = getattr(jitgrad, name, None)        # fn, or fn taking torch's keywords
            if callable(fn) and not isinstance(fn, type) and (
                    bound is fn or getattr(bound, "__wrapped__", None) is fn):
                prof._patch(jitgrad, name, prof._timed(bound, "aten::" + names[fn]))
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

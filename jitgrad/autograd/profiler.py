"""The profiler, as torch.autograd.profiler: ``profile``, ``record_function``, ``key_averages``,
``table`` and ``export_chrome_trace``.

While a profile is active:
- the public ops (``jitgrad.<fn>``, Tensor methods and operators, ``nn.functional``) are wrapped
  so each call is an event named as PyTorch names its ops (``aten::mul``), nested calls included;
- each backward is an event, and the compiled replay counts the nodes it runs per op and reads
  the CPU's time stamp counter around each (loop.replay's PROFILE mode), so every node type
  (``MulBackward0``) gets its count and time from inside the compiled loop; Python nodes
  (autograd.Function backwards, hooks) are timed where they run; compiling kernels (Numba, first
  use) and optimizer steps (their compiled kernels) are events too.
Everything is restored when the profile ends: a program not profiling runs the original functions.
"""
import functools
import json
import os
import threading
import time

import numpy as np

from ..engine import codegen, registry
from ..engine.loop import SERIAL, WIDTH
from ..engine.tape import TAPE, Tape
from ..tensor import Tensor
from . import graph

_active = None          # the recording profile, if any
INSTALLERS = []         # install(profile): wrap more entry points (modules above autograd add theirs)


def _op_names():
    """Each public op function's name (its first name in jitgrad's namespace)."""
    from .. import _methods, ops
    names = {}
    for fn, functions, _, _ in ops.NAMES:
        for name in functions:
            names.setdefault(getattr(_methods, name), name)     # (the op under torch's keywords)
            names.setdefault(fn, name)
    return names


def _now_us():
    return time.perf_counter_ns() / 1000.0


class FunctionEvent:
    """One recorded range: a call of an op, a backward, a node type's share of a backward, ..."""

    def __init__(self, id, name, thread, start_us, end_us, input_shapes=None, count=1):
        self.id, self.name, self.thread = id, name, thread
        self.start_us, self.end_us = start_us, end_us
        self.input_shapes = input_shapes if input_shapes is not None else []
        self.count = count
        self.children_us = 0.0
        self.own_memory = 0              # bytes of the tensors it returned (profile_memory)
        self.children_memory = 0         # ... and the calls it made returned

    key = property(lambda self: self.name)
    cuda_time_total = self_cuda_time_total = device_time_total = self_device_time_total = 0.0
    cpu_time_total = property(lambda self: self.end_us - self.start_us)
    self_cpu_time_total = property(lambda self: self.cpu_time_total - self.children_us)
    cpu_time = property(lambda self: self.cpu_time_total / self.count)
    cpu_memory_usage = property(lambda self: self.own_memory + self.children_memory)
    self_cpu_memory_usage = property(lambda self: self.own_memory)

    def __repr__(self):
        return (f"<FunctionEvent id={self.id} name={self.name} cpu_time={_format_time(self.cpu_time)} "
                f"start_us={self.start_us:.3f} end_us={self.end_us:.3f} input_shapes="
                f"{self.input_shapes}>")


class FunctionEventAvg:
    """Events of one key (name, and input shapes if grouped by them), summed."""

    cuda_time_total = self_cuda_time_total = device_time_total = self_device_time_total = 0.0

    def __init__(self, key, input_shapes=None):
        self.key = key
        self.input_shapes = input_shapes if input_shapes is not None else []
        self.count = 0
        self.cpu_time_total = 0.0
        self.self_cpu_time_total = 0.0
        self.cpu_memory_usage = 0
        self.self_cpu_memory_usage = 0

    def add(self, e):
        self.count += e.count
        self.cpu_time_total += e.cpu_time_total
        self.self_cpu_time_total += e.self_cpu_time_total
        self.cpu_memory_usage += e.cpu_memory_usage
        self.self_cpu_memory_usage += e.self_cpu_memory_usage
        return self

    @property
    def cpu_time(self):
        return self.cpu_time_total / self.count if self.count else 0.0

    self_cpu_time = property(lambda self: self.self_cpu_time_total / self.count if self.count else 0.0)

    def __repr__(self):
        return (f"<FunctionEventAvg key={self.key} self_cpu_time={_format_time(self.self_cpu_time_total)} "
                f"cpu_time={_format_time(self.cpu_time)} input_shapes={self.input_shapes}>")


def _format_memory(nbytes):
    for unit, size in (("Gb", 1 << 30), ("Mb", 1 << 20), ("Kb", 1 << 10)):
        if abs(nbytes) >= size:
            return f"{nbytes / size:.2f} {unit}"
    return f"{nbytes} b"


def _format_time(us):
    if us >= 1e6:
        return f"{us / 1e6:.3f}s"
    if us >= 1e3:
        return f"{us / 1e3:.3f}ms"
    return f"{us:.3f}us"


class EventList(list):
    """A list of events (or of averages) with torch's table."""

    def __init__(self, events=(), profiler_total=None):
        super().__init__(events)

    @property
    def self_cpu_time_total(self):
        return sum(e.self_cpu_time_total for e in self)

    def key_averages(self, group_by_input_shape=False, group_by_stack_n=0):
        groups = {}
        for e in self:
            key = (e.key, str(e.input_shapes)) if group_by_input_shape else e.key
            avg = groups.get(key)
            if avg is None:
                avg = groups[key] = FunctionEventAvg(e.key, e.input_shapes if group_by_input_shape
                                                     else None)
            avg.add(e)
        return EventList(groups.values())

    def total_average(self):
        total = FunctionEventAvg("Total")
        for e in self:
            total.add(e)
        return total

    def table(self, sort_by=None, row_limit=100, max_src_column_width=75,
              max_name_column_width=55, max_shapes_column_width=80, header=None,
              top_level_events_only=False):
        """The events as PyTorch's profiler table. sort_by: an attribute of the events
        (cpu_time_total, self_cpu_time_total, cpu_time, count, cpu_memory_usage,
        self_cpu_memory_usage; the CUDA ones are zero on this CPU-only build), largest first."""
        events = list(self)
        if sort_by is not None:
            if sort_by not in ("cpu_time_total", "self_cpu_time_total", "cpu_time", "count",
                               "self_cpu_time", "cpu_memory_usage", "self_cpu_memory_usage",
                               "cuda_time_total", "self_cuda_time_total", "device_time_total",
                               "self_device_time_total"):
                raise AttributeError(f"'FunctionEventAvg' object has no attribute '{sort_by}'")
            events.sort(key=lambda e: getattr(e, sort_by), reverse=True)
        if row_limit is not None and row_limit > 0:
            events = events[:row_limit]
        total_self = self.self_cpu_time_total or 1.0
        shapes = any(e.input_shapes for e in self) and isinstance(next(iter(self), None),
                                                                    FunctionEventAvg)
        name_w = min(max([len(e.key) for e in events] + [4]) + 4, max_name_column_width)
        memory = any(e.cpu_memory_usage for e in self)
        heads = ["Name", "Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg"]
        heads += ["CPU Mem", "Self CPU Mem"] if memory else []
        heads.append("# of Calls")
        widths = [name_w] + [12] * (len(heads) - 1)
        if shapes:
            shapes_w = min(max(len(str(e.input_shapes)) for e in events) + 4, max_shapes_column_width)
            heads.append("Input Shapes")
            widths.append(max(shapes_w, len("Input Shapes")))
        line = "".join("-" * w + "  " for w in widths)
        rows = [line, "".join(h.rjust(w) + "  " for h, w in zip(heads, widths)), line]
        for e in events:
            name = e.key if len(e.key) <= name_w else e.key[:name_w - 3] + "..."
            cells = [name, f"{100 * e.self_cpu_time_total / total_self:.2f}%",
                     _format_time(e.self_cpu_time_total),
                     f"{100 * e.cpu_time_total / total_self:.2f}%", _format_time(e.cpu_time_total),
                     _format_time(e.cpu_time)]
            if memory:
                cells += [_format_memory(e.cpu_memory_usage), _format_memory(e.self_cpu_memory_usage)]
            cells.append(str(e.count))
            if shapes:
                cells.append(str(e.input_shapes)[:widths[-1]])
            rows.append("".join(c.rjust(w) + "  " for c, w in zip(cells, widths)))
        rows.append(line)
        rows.append(f"Self CPU time total: {_format_time(self.self_cpu_time_total)}")
        return (header + "\n" if header else "") + "\n".join(rows) + "\n"

    def export_chrome_trace(self, path):
        """Write the events in the Trace Event Format (chrome://tracing, Perfetto)."""
        pid = os.getpid()
        trace = [{"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                  "args": {"name": "jitgrad"}}]
        for e in self:
            ev = {"ph": "X", "cat": "cpu_op", "name": e.name, "pid": pid, "tid": e.thread,
                  "ts": e.start_us, "dur": e.cpu_time_total, "args": {}}
            if e.input_shapes:
                ev["args"]["Input Dims"] = e.input_shapes
            if e.count != 1:
                ev["args"]["count"] = e.count
            trace.append(ev)
        with open(path, "w") as f:
            json.dump({"traceEvents": trace, "displayTimeUnit": "ms"}, f)


def _nbytes(out):
    if isinstance(out, Tensor):
        return out._a.nbytes
    if isinstance(out, (tuple, list)):
        return sum(o._a.nbytes for o in out if isinstance(o, Tensor))
    return 0


def _shapes(args):
    return [list(a.shape) if isinstance(a, Tensor) else [] for a in args]


class profile:
    """Profile the code in its block (a context manager), as torch.autograd.profiler.profile.
    Only CPU activity exists; record_shapes keeps each op's input shapes (group_by_input_shape);
    profile_memory counts the bytes of the tensors returned within a range (CPU Mem; Self CPU Mem:
    by the op itself, not by the ops it called), not the allocator's traffic as PyTorch does."""

    def __init__(self, enabled=True, *, use_cuda=False, use_device=None, record_shapes=False,
                 with_flops=False, profile_memory=False, with_stack=False, with_modules=False,
                 use_kineto=True, use_cpu=True, experimental_config=None, acc_events=False,
                 custom_trace_id_callback=None):
        self.enabled = enabled
        self.record_shapes = record_shapes
        self.profile_memory = profile_memory
        self._events = []
        self._stack = []
        self._patches = []
        self._thread = threading.get_ident()
        self._next_id = 0
        self._recording = True       # False between a schedule's active steps (jitgrad.profiler)
        self._replays = []

    # ---- recording -------------------------------------------------------------------------
    def _begin(self, name, shapes=None):
        e = FunctionEvent(self._next_id, name, threading.get_native_id(), _now_us(), 0.0, shapes)
        self._next_id += 1
        self._stack.append(e)
        return e

    def _end(self, e):
        e.end_us = _now_us()
        while self._stack and self._stack.pop() is not e:
            pass
        if self._stack:
            self._stack[-1].children_us += e.cpu_time_total
            self._stack[-1].children_memory += e.cpu_memory_usage
        self._events.append(e)

    def _patch(self, obj, attr, value):
        self._patches.append((obj, attr, obj.__dict__.get(attr, _MISSING)))
        setattr(obj, attr, value)

    def _timed(self, fn, name):
        """fn, recording each call as an event named name (or name(args), if a function)."""
        shapes = self.record_shapes and isinstance(name, str) and name.startswith("aten::")

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if _active is not self or not self._recording or threading.get_ident() != self._thread:
                return fn(*args, **kwargs)
            e = self._begin(name if isinstance(name, str) else name(args),
                            _shapes(args) if shapes else None)
            try:
                out = fn(*args, **kwargs)
                if self.profile_memory:
                    e.own_memory = _nbytes(out)
                return out
            finally:
                self._end(e)
        return timed

    def __enter__(self):
        global _active
        if not self.enabled:
            return self
        if _active is not None:
            raise RuntimeError("Profiler is already enabled on this thread")
        _active = self
        read_ticks = codegen.interpreter().read_ticks
        read_ticks()       # compiled (or loaded) first: the calibration reads both clocks at once
        self._calibrate = (time.perf_counter_ns(), read_ticks())
        self._install()
        TAPE.stats = np.zeros((2, len(registry.OPS)), np.int64)
        return self

    def __exit__(self, *exc):
        global _active
        if not self.enabled or _active is not self:
            return False
        TAPE.stats = None
        for obj, attr, old in reversed(self._patches):
            if old is _MISSING:
                delattr(obj, attr)
            else:
                setattr(obj, attr, old)
        self._patches = []
        _active = None
        self._finish()
        return False

    def _install(self):
        from .. import _methods
        names = _op_names()
        for table in (_methods.METHODS, _methods.INPLACE):
            for name, fn in table.items():
                bound = Tensor.__dict__.get(name)      # fn, or fn taking torch's keywords
                if bound is fn or getattr(bound, "__wrapped__", None) is fn:
                    op = names.get(fn) or (name[2:-2] if name.startswith("__") else name)
                    self._patch(Tensor, name, self._timed(bound, "aten::" + op))
        for install in INSTALLERS:          # the namespaces above autograd (jitgrad/profiler.py)
            install(self)
        self._patch(codegen, "compile_rules",
                    self._timed(codegen.compile_rules, "jitgrad::compile_rules (Numba)"))
        self._patch(graph, "run", self._timed(graph.run, "jitgrad::backward (create_graph)"))
        self._patch(TAPE, "backward", self._timed_backward())
        if TAPE.on_pause is not None:
            self._patch(TAPE, "on_pause", self._timed_python_node(TAPE.on_pause))

    def _timed_backward(self):
        backward = TAPE.__dict__.get("backward") or functools.partial(Tape.backward, TAPE)

        def timed(roots, seeds, retain_graph):
            if not self._recording or threading.get_ident() != self._thread:
                return backward(roots, seeds, retain_graph)
            before = TAPE.stats.copy()
            e = self._begin("jitgrad::backward (compiled replay)")
            try:
                return backward(roots, seeds, retain_graph)
            finally:
                self._end(e)
                self._replays.append((e, before, TAPE.stats.copy()))
        return timed

    def _timed_python_node(self, on_pause):
        def timed(row, g, need, goff, gsz, free_graph):
            if not self._recording:
                return on_pause(row, g, need, goff, gsz, free_graph)
            fn = TAPE.py_nodes.get(TAPE.rows[row * WIDTH + SERIAL])
            e = self._begin(fn.name() if fn is not None else "jitgrad::tensor hooks")
            try:
                return on_pause(row, g, need, goff, gsz, free_graph)
            finally:
                self._end(e)
        return timed

    def _finish(self):
        """The node types' shares of each compiled replay, from the loop's counters: laid one
        after another from the replay's start (their order inside it is not recorded)."""
        p1, t1 = time.perf_counter_ns(), codegen.interpreter().read_ticks()
        p0, t0 = self._calibrate
        ns_per_tick = (p1 - p0) / (t1 - t0) if t1 > t0 else 0.0
        for e, before, after in self._replays:
            width = min(before.shape[1], after.shape[1])
            delta = after[:, :width] - before[:, :width]
            at = e.start_us
            nodes = []
            for op in np.flatnonzero(delta[0]).tolist():
                name = registry.OPS[op].grad_fn or "jitgrad::hidden node"
                dur = delta[1, op] * ns_per_tick / 1000.0
                nodes.append(FunctionEvent(self._next_id, name, e.thread, at, at + dur,
                                           count=int(delta[0, op])))
                self._next_id += 1
                at += dur
            e.children_us += sum(n.cpu_time_total for n in nodes)
            self._events.extend(nodes)
        self._replays = []
        self._events.sort(key=lambda ev: ev.start_us)

    # ---- results ---------------------------------------------------------------------------
    @property
    def function_events(self):
        return EventList(self._events)

    events = function_events

    def key_averages(self, group_by_input_shape=False, group_by_stack_n=0):
        return self.function_events.key_averages(group_by_input_shape, group_by_stack_n)

    def table(self, *args, **kwargs):
        return self.key_averages().table(*args, **kwargs)

    def total_average(self):
        return self.function_events.total_average()

    @property
    def self_cpu_time_total(self):
        return self.function_events.self_cpu_time_total

    def export_chrome_trace(self, path):
        self.function_events.export_chrome_trace(path)

    def __str__(self):
        return self.table()


_MISSING = object()


class record_function:
    """A user-named range in the profile (a context manager and a decorator)."""

    def __init__(self, name, args=None):
        self.name, self.args = name, args
        self._event = None

    def __enter__(self):
        if _active is not None and _active._recording and threading.get_ident() == _active._thread:
            self._profile = _active
            self._event = _active._begin(self.name)
        return self

    def __exit__(self, *exc):
        if self._event is not None:
            self._profile._end(self._event)
            self._event = None
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with record_function(self.name, self.args):
                return fn(*args, **kwargs)
        return wrapper

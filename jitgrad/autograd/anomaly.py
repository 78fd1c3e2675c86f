"""Anomaly mode: ``detect_anomaly`` and ``set_detect_anomaly``, as torch.autograd's.

While it is on, every row appended remembers the Python stack that recorded it (the tape's
``append`` is wrapped; off, the tape's own method runs and nothing is kept), and the compiled
replay checks each node's input gradients for nan (loop.replay's CHECK_NAN mode). A nan raises
torch's error after a warning that shows where the node was recorded in the forward.
"""
import os
import sys
import traceback
import warnings

import numpy as np

from ..engine import registry
from ..engine.loop import A, B, F_MULTI, FLAGS, I1, OP, SERIAL, WIDTH
from ..engine.tape import TAPE, Tape
from .hooks import user_stacklevel

_state = {"enabled": False, "check_nan": True}
_traces = {}            # row serial -> the forward's stack: (file, line, function) per frame
_MAX_TRACES = 1 << 16   # then traces of rows the tape dropped are forgotten
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))    # jitgrad/


def is_anomaly_enabled():
    return _state["enabled"]


def is_anomaly_check_nan_enabled():
    return _state["check_nan"]


def set_anomaly_enabled(enabled, check_nan=True):
    """Turn anomaly mode on or off (as torch.set_anomaly_enabled)."""
    _set(enabled, check_nan)


def _set(enabled, check_nan):
    _state["enabled"], _state["check_nan"] = bool(enabled), bool(check_nan)
    TAPE.check_nan = _state["enabled"] and _state["check_nan"]
    if _state["enabled"]:
        TAPE.append = _traced_append
    else:
        TAPE.__dict__.pop("append", None)      # back to Tape.append: nothing kept
    TAPE.plain = not _state["enabled"]         # (record_pair appends inline only then)
    TAPE.pair_until = 0


def _traced_append(*args, **kwargs):
    serial = TAPE.serial
    row = Tape.append(TAPE, *args, **kwargs)
    stack = []            # (file, line, function) outermost first; source lines read when shown
    f = sys._getframe(1)
    while f is not None:
        stack.append((f.f_code.co_filename, f.f_lineno, f.f_code.co_name))
        f = f.f_back
    stack.reverse()
    _traces[serial] = stack
    if len(_traces) > _MAX_TRACES:
        alive = set(np.frombuffer(TAPE.rows, np.int64)[SERIAL::WIDTH].tolist())
        for s in [s for s in _traces if s not in alive]:
            del _traces[s]
    return row


class detect_anomaly:
    """Context manager (and decorator) that turns anomaly mode on for its block."""

    def __init__(self, check_nan=True):
        self.prev = is_anomaly_enabled()
        self.check_nan = check_nan
        self.prev_check_nan = is_anomaly_check_nan_enabled()
        warnings.warn("Anomaly Detection has been enabled. This mode will increase the runtime and "
                      "should only be enabled for debugging.", UserWarning, stacklevel=2)

    def __enter__(self):
        _set(True, self.check_nan)

    def __exit__(self, *exc):
        _set(self.prev, self.prev_check_nan)
        return False

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)
        wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
        return wrapper


class set_detect_anomaly:
    """Sets anomaly mode on construction (a plain call works), and as a context manager restores
    the previous mode on exit."""

    def __init__(self, mode, check_nan=True):
        self.prev = is_anomaly_enabled()
        self.prev_check_nan = is_anomaly_check_nan_enabled()
        _set(mode, check_nan)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _set(self.prev, self.prev_check_nan)
        return False


def _user_frames(frames):
    """The stack without jitgrad's own frames at its end (where the op was recorded)."""
    frames = list(frames)
    while frames and os.path.abspath(frames[-1][0]).startswith(_PACKAGE + os.sep):
        frames.pop()
    return [traceback.FrameSummary(*f) for f in frames]


def warn_forward_trace(serial, name):
    """torch's warning naming the failing node and where the forward recorded it."""
    frames = _traces.get(serial)
    if frames is None:
        return
    warnings.warn(f"Error detected in {name}. Traceback of forward call that caused the error:\n"
                  + "".join(traceback.format_list(_user_frames(frames))),
                  UserWarning, stacklevel=user_stacklevel())


def report(serial, name, index):
    """Raise anomaly mode's error for the node (serial, named name) whose output index is nan."""
    warn_forward_trace(serial, name)
    raise RuntimeError(f"Function '{name}' returned nan values in its {index}th output.")


def on_nan(row, g, goff, gsz):
    """The tape's hook when the compiled replay found a nan after row: which input got it."""
    base = row * WIDTH
    rows, ints = TAPE.rows, TAPE.ints
    if rows[base + FLAGS] & F_MULTI:
        o = rows[base + I1]
        inputs = [int(ints[o + 1 + 3 * e]) for e in range(int(ints[o]))]
    else:
        inputs = [rows[base + A], rows[base + B]]
    index = next((e for e, v in enumerate(inputs)
                  if v >= 0 and np.isnan(g[goff[v]: goff[v] + gsz[v]]).any()), 0)
    serial = rows[base + SERIAL]
    name = registry.OPS[rows[base + OP]].grad_fn
    if name is None:          # a hidden node: name what feeds it, as the user recorded it
        fn = TAPE.grad_fns.get(serial)
        name = fn.name() if fn is not None else "a hidden node"
    report(serial, name, index)


TAPE.on_nan = on_nan

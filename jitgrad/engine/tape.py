"""The Wengert tape: what the forward pass records and what backward replays.

One process-wide tape guarded by a lock. Each recorded op appends one int64 row (see loop.py for
the columns) and copies the values its backward rule needs into a flat arena. Tensors refer to
their row by index; rows no live tensor can reach are dropped by ``compact``.
"""
import array
import re
import threading
import weakref

import numpy as np

from . import registry
from .loop import WIDTH, LEAF, F_SAVED, SER, ERR_FREED, ERR_DIRTY

_F64 = np.dtype(np.float64)
_MIN_LIMIT = 1 << 16          # rows before the first compaction is considered
_grad_mode = threading.local()


def is_grad_enabled():
    return getattr(_grad_mode, "enabled", True)


def set_grad_enabled_flag(mode):
    _grad_mode.enabled = bool(mode)


FREED_MSG = ("Trying to backward through the graph a second time (or directly access saved tensors "
             "after they have already been freed). Saved intermediate values of the graph are freed "
             "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
             "backward through the graph a second time or if you need to access saved tensors after "
             "calling backward.")


class Tape:
    def __init__(self):
        self.lock = threading.RLock()
        self.shape_ids = {}
        self.shapes = array.array("q")
        self.serial = 0
        self.reset()

    def reset(self):
        """Forget every row. Called when no live tensor refers to the tape."""
        for t in getattr(self, "leaves", {}).values():
            t._leafvar = -1
        self.rows = array.array("q")
        self.outs = []               # per row: weakref to the output tensor, or None
        self.leaves = {}             # leaf row -> the leaf tensor (its gradient's destination)
        self.retained = {}           # row -> weakref of a non-leaf tensor that called retain_grad()
        self.dirty = {}              # serial -> message, for nodes whose saved tensors were modified
        self.arena = np.empty(4096, np.float32)
        self.alen = 0
        self.min_serial = self.serial
        self.limit = _MIN_LIMIT
        self.grad_fns = weakref.WeakValueDictionary()

    # ---- recording -----------------------------------------------------------------------
    def shape_id(self, shape):
        sid = self.shape_ids.get(shape)
        if sid is None:
            sid = len(self.shapes)
            try:
                self.shapes.extend((len(shape),) + tuple(shape))
            except BufferError:
                self.shapes = _unpinned(self.shapes)
                self.shapes.extend((len(shape),) + tuple(shape))
            self.shape_ids[shape] = sid
        return sid

    def maybe_compact(self):
        """Called before recording an op, while its inputs (live tensors) pin their rows."""
        if len(self.outs) >= self.limit or self.alen > 64 * self.limit:
            self.compact()

    def append(self, op, a, b, s, shape, i0, i1, flags, out):
        """Append a row; out is the output tensor (held weakly) or None. Returns the row index."""
        i = len(self.outs)
        row = (op, a, b, s, self.shape_id(shape), i0, i1, flags, self.serial)
        try:
            self.rows.extend(row)
        except BufferError:
            self.rows = _unpinned(self.rows)
            self.rows.extend(row)
        self.serial += 1
        self.outs.append(None if out is None else weakref.ref(out))
        return i

    def var(self, t, shape):
        """The row carrying t's gradient, un-broadcast to t's shape if shape differs."""
        if self.arena.dtype is not _F64 and t._a.dtype == _F64:
            # a float64 graph replays in float64 even if it saves no float64 array (sums, adds,
            # products with Python numbers): promote before its constants are saved
            grown = np.empty(self.arena.size, _F64)      # the unused tail is garbage: skip it
            grown[: self.alen] = self.arena[: self.alen]
            self.arena = grown
        v = t._node
        if v < 0:
            v = t._leafvar
            if v < 0:
                v = self.append(LEAF, -1, -1, -1, t._a.shape, 0, 0, 0, None)
                t._leafvar = v
                self.leaves[v] = t
        if t._a.shape != shape:
            v = self.append(registry.EXPAND, v, -1, -1, shape, 0, 0, 0, None)
        return v

    def save(self, values, shape=None):
        """Copy arrays (and Python floats) into the arena; returns the offset of the first."""
        start = self.alen
        for v in values:
            if isinstance(v, np.ndarray):
                if v.dtype == np.float64 and self.arena.dtype != np.float64:
                    self.arena = self.arena.astype(np.float64)   # the tape now holds float64
                n = v.size if shape is None else _prod(shape)
                self._reserve(n)
                dst = self.arena[self.alen: self.alen + n]
                if shape is None or v.shape == shape:
                    dst[...] = v.reshape(-1) if v.ndim != 1 else v
                else:
                    dst.reshape(shape)[...] = v
                self.alen += n
            else:
                self._reserve(1)
                self.arena[self.alen] = v
                self.alen += 1
        return start

    def _reserve(self, n):
        if self.alen + n > self.arena.size:
            grown = np.empty(max(2 * self.arena.size, self.alen + n), self.arena.dtype)
            grown[: self.alen] = self.arena[: self.alen]
            self.arena = grown

    def note_saved(self, t, serial):
        """Remember that the node with this serial saved t's current value (for in-place checks)."""
        ver = t._ver
        if ver is None:
            t._ver = [0, serial]
            return
        n = len(ver)
        if n > 64 and not n & (n - 1):
            # drop serials of rows compaction has already removed; only at power-of-two lengths,
            # so a tensor saved by k nodes costs O(k) in total rather than O(k^2)
            ver[1:] = [s for s in ver[1:] if s >= self.min_serial]
        ver.append(serial)

    def note_modified(self, t):
        """t's storage was changed in place: every node that saved it may no longer replay."""
        ver = t._ver
        if ver is None:
            t._ver = [1]
            return
        old = ver[0]
        ver[0] = old + 1
        if len(ver) > 1:
            shape = "[" + ", ".join(str(d) for d in t._a.shape) + "]"
            what = f"[jitgrad.{t.dtype.tensor_type} {shape}]"
            if t._node >= 0:
                name = re.sub(r"Backward\d*$", "", registry.OPS[self.row(t._node)[0]].grad_fn or "")
                what += f", which is output 0 of {name},"
            msg = ("one of the variables needed for gradient computation has been modified by an "
                   f"inplace operation: {what} is at version {old + 1}; expected version {old} "
                   "instead. Hint: enable anomaly detection to find the operation that failed to "
                   "compute its gradient, with jitgrad.autograd.set_detect_anomaly(True).")
            for s in ver[1:]:
                self.dirty[s] = msg
            del ver[1:]

    def row(self, i):
        return self.rows[i * WIDTH: (i + 1) * WIDTH]

    def index_of_serial(self, serial):
        """Row index of a serial, or -1 if compaction dropped it (serials increase along rows)."""
        ser = np.frombuffer(self.rows, np.int64)[SER::WIDTH]
        i = int(np.searchsorted(ser, serial))
        return i if i < len(ser) and ser[i] == serial else -1

    # ---- reclaiming ----------------------------------------------------------------------
    def compact(self):
        """Drop rows that no live tensor can reach, renumbering the survivors."""
        live = [i for i, r in enumerate(self.outs) if r is not None and r() is not None]
        live += [i for i, r in self.retained.items() if r() is not None]
        if not live:
            self.reset()
            return
        from .codegen import interpreter
        rows = np.frombuffer(self.rows, np.int64).reshape(-1, WIDTH)
        new_rows, self.arena, idx, self.alen = interpreter().compact(
            rows, self.arena, np.array(sorted(set(live)), np.int64), self.alen)
        del rows
        outs = [None] * len(new_rows)
        for i, r in enumerate(self.outs):
            t = r() if r is not None else None
            if t is not None:
                t._node = int(idx[i])
                outs[t._node] = r
        self.outs = outs
        leaves = {}
        for v, t in self.leaves.items():
            t._leafvar = int(idx[v])
            if t._leafvar >= 0:
                leaves[t._leafvar] = t
        self.leaves = leaves
        self.retained = {int(idx[v]): r for v, r in self.retained.items() if idx[v] >= 0}
        self.rows = array.array("q", new_rows.tobytes())
        survivors = set(new_rows[:, SER].tolist())
        self.dirty = {s: m for s, m in self.dirty.items() if s in survivors}
        self.min_serial = int(new_rows[0, SER]) if len(new_rows) else self.serial
        self.limit = max(_MIN_LIMIT, 2 * len(new_rows))

    # ---- replay --------------------------------------------------------------------------
    def backward(self, roots, seeds, retain_graph):
        """Run the compiled interpreter from roots (row ids) seeded with seeds (arrays).

        Returns (grads, offsets, need) as loop.backward does; raises PyTorch's errors.
        """
        from .codegen import interpreter
        run = interpreter().backward
        with self.lock:
            dt = self.arena.dtype
            flat = np.concatenate([np.asarray(s, dt).reshape(-1) for s in seeds]) if seeds else \
                np.zeros(0, dt)
            rows = np.frombuffer(self.rows, np.int64).reshape(-1, WIDTH)
            shapes = np.frombuffer(self.shapes, np.int64)
            dirty = np.array(sorted(self.dirty), np.int64)
            err, node, g, goff, need = run(rows, shapes, self.arena, np.asarray(roots, np.int64),
                                           flat, not retain_graph, dirty)
            del rows
            if err == ERR_FREED:
                raise RuntimeError(FREED_MSG)
            if err == ERR_DIRTY:
                raise RuntimeError(self.dirty[self.rows[node * WIDTH + SER]])
            return g, goff, need


def _unpinned(buf):
    """A copy of an array.array that a stale numpy view still exports (so it cannot grow).

    Numba's first compile of the interpreter leaves the arguments of that call in a reference
    cycle; until the garbage collector runs, the views of rows/shapes passed to it pin their
    buffers and the next append raises BufferError. Those views are never used again.
    """
    return array.array(buf.typecode, buf)


def _prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


TAPE = Tape()

"""The Wengert tape: what the forward pass records and what backward replays.

One process-wide tape guarded by a lock. Each recorded op appends one int64 row (see loop.py for
the columns) and copies the values its backward rule needs into a flat arena, one per dtype: a
float64 node (flagged F_F64) saves into the float64 arena, any other into the float32 one. A
graph is replayed in float32 unless it reaches a float64 node, so float32 gradients never depend
on other graphs. Tensors refer to their row by index; rows no live tensor can reach are dropped
by ``compact``.
"""
import array
import functools
import gc
import itertools
import operator
import os
import re
import struct
import threading
import weakref

import numpy as np

from . import hook, registry
from . import codegen
from .loop import (WIDTH, LEAF, F_SAVED, F_FREED, F_F64, FLAGS, SERIAL, SHAPE_ID, ERR_FREED, ERR_DIRTY,
                   ERR_RULE, ERR_WIDE, WIDE_ONLY, WIDE_MIXED, NARROW, ERR_PAUSE, ERR_NAN, CHECK_NAN,
                   PROFILE)

_F64 = np.dtype(np.float64)
_MIN_LIMIT = 1 << 16          # rows before the first compaction is considered
_MIN_ARENA = 1 << 20          # saved values (elements) before the first compaction is considered
_MIN_SHAPES = 1 << 12         # distinct shapes in the shape table before compaction rebuilds it
# kept outputs (for create_graph) are mostly dead intermediates of past steps: compacting soon
# lets numpy reuse their memory, so a step's arrays stay in cache
_MIN_HELD = 1 << 20
# Rows between sweeps of outs (see Tape.sweep). The garbage collector runs a young collection per
# 700 net new tracked objects, and a dead output's weakref is one: sweeping more often than that
# frees them young, before a collection walks them or promotes them to the old generation, whose
# full collections cost ~0.1 s each in a process with torch loaded. 15 W4 runs of 10k ops (with
# torch's interleaved) ran 188 young, 18 middle and 2 full collections without sweeps, none with
# them.
_SWEEP = 256


class _GradMode(threading.local):
    enabled = True          # per thread; the class attribute is every new thread's default

    def __setattr__(self, name, value):
        if name == "enabled":
            if value:
                grad_off.discard(threading.get_ident())
            else:
                grad_off.add(threading.get_ident())
        threading.local.__setattr__(self, name, value)


_grad_mode = _GradMode()
# the threads that turned grad mode off (and may not have turned it on again: a thread that ended
# so stays listed). While it is empty grad mode is on in every thread, and a hot path may skip
# reading the thread-local flag (~40 ns): ``not grad_off or _grad_mode.enabled``
grad_off = set()


def is_grad_enabled():
    return _grad_mode.enabled


def set_grad_enabled_flag(mode):
    _grad_mode.enabled = bool(mode)


FREED_MSG = ("Trying to backward through the graph a second time (or directly access saved tensors "
             "after they have already been freed). Saved intermediate values of the graph are freed "
             "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
             "backward through the graph a second time or if you need to access saved tensors after "
             "calling backward.")


class Tape:
    # Python nodes (autograd/function.py, hooks.py) and the modes that watch the replay
    # (anomaly.py, profiler.py) plug in here; the engine imports nothing above it.
    on_pause = None      # on_pause(row, g, need, goff, gsz, free_graph) -> True: run row's rule too
    on_nan = None        # on_nan(row, g, goff, gsz): raises anomaly mode's error
    check_nan = False    # anomaly mode: the replay checks each node's gradients for nan
    stats = None         # profiling: int64 (2, ops) counts and clock ticks per op, or None

    def __init__(self):
        self.lock = threading.RLock()
        self.serial = 0
        self.replaying = 0           # replays under way (a Python node may run a backward)
        self.plain = True            # append is Tape.append (record_pair inlines it), not anomaly
                                     # mode's (an instance attribute: a class one reads slower)
        self.reset()

    def reset(self):
        """Forget every row. Called when no live tensor refers to the tape."""
        for t in getattr(self, "leaves", {}).values():
            t._leafvar = -1
        self.rows = array.array("q")
        self.outs = []               # per row: weakref to the output tensor, or None (none, or
                                     # it died and a sweep saw it)
        self.values = []             # per row: the output's array (what create_graph reads)
        self.held = 0                # elements in values and consts (kept alive by the tape)
        self.hlimit = _MIN_HELD       # compact when held passes it: dead graphs' arrays go early
        self.pinned = 0              # > 0: a create_graph backward holds row numbers: no compacting
        self.consts = {}             # row -> {input name or role: (array, shape it is read at)}
                                     # for inputs that need no gradient (so have no row)
        self.counted = set()         # ids of the arrays in consts, each counted in held once
        self.leaves = {}             # leaf row -> the leaf tensor (its gradient's destination)
        self.retained = {}           # row -> weakref of a non-leaf tensor that called retain_grad()
        self.saver_row = {}          # serial -> row, for rows that saved tensors
        self.dirty = {}              # serial -> message, for nodes whose saved tensors were modified
        self._dirty_sorted = None
        self.arena = np.empty(4096, np.float32)   # the arena of the dtype being recorded
        self.alen = 0
        self.other = np.empty(4096, np.float64)   # the other dtype's (float32 or float64)
        self.olen = 0
        self.f64 = False             # self.arena is the float64 one
        self.fbit = 0                # F_F64 when it is: the flag append() gives a row
        self.has64 = False           # some row may be flagged F_F64
        self.ints = np.empty(1024, np.int64)   # integer data of F_INTS rows (indices, input lists)
        self.ilen = 0
        self.rlimit = _MIN_LIMIT      # compact when the rows or the arena pass these sizes;
        self.alimit = _MIN_ARENA      # record() checks before an op, while its inputs pin their rows
        self.swept = 0                # rows before this one were swept (see sweep)
        self._sweep_after(0)          # (sets limit: see there)
        self.last_dtype = None        # the dtype prepare() last saw
        self.pair_until = 0           # record_pair skips prepare() until this serial (pair_budget)
        self.pair_sid = -1            # meanwhile, the shape ()'s id,
        self.pair_leaves = set()      # and leaf rows it found to have shape (): a 0-dim leaf whose
                                      # row is one needs no check (a row's shape never changes)
        self.shape_ids = {}           # shape -> its offset in shapes: [ndim, dims...] per shape
        self.shapes = array.array("q")
        self.slimit = _MIN_SHAPES     # distinct shapes before the next compaction
        self.grad_fns = weakref.WeakValueDictionary()
        self.py_nodes = {}            # serial -> a Python node's state (autograd.Function's ctx)
        self.hooks = {}               # serial -> the hooks on that row's gradient (a list)
        self._work(0)

    def _work(self, n):
        """(Re)allocate the interpreter's work buffers for a tape of n rows."""
        cap = max(1024, 2 * n)
        self.need = np.zeros(cap, np.uint8)
        # (only need must start zero: the loop writes the others before reading them, and
        # zeroing them cost the backward that outgrew them ~200 us at 40k rows)
        self.goff = np.empty(cap, np.int64)
        self.gsz = np.empty(cap, np.int64)
        self.order = np.empty(cap, np.int64)
        self.marked = np.zeros(0, np.int64)
        self.marked_leaves = self.marked

    # ---- recording -----------------------------------------------------------------------
    def shape_id(self, shape):
        sid = self.shape_ids.get(shape)
        if sid is None:
            sid = len(self.shapes)
            entry = array.array("q", (len(shape),) + shape)     # all or nothing
            try:
                self.shapes.extend(entry)
            except BufferError:   # a view outlived a replay (kept by a traceback): detach from it
                self.shapes = array.array("q", self.shapes)
                self.shapes.extend(entry)
            self.shape_ids[shape] = sid
            if len(self.shape_ids) > self.slimit:
                self.rlimit = self.limit = 0  # compact before the next op (not now: a row is
                                              # being built)
                self.pair_until = 0
        return sid

    def append(self, op, a, b, s, shape, i0, i1, flags, out):
        """Append a row; out is the output tensor (held weakly) or None. Returns the row index."""
        i = len(self.outs)
        sid = self.shape_ids.get(shape)
        if sid is None:
            sid = self.shape_id(shape)
        try:      # packed whole, then appended: 0.2 us, where array.extend(tuple) takes 0.5
            packed = _ROW.pack(op, a, b, s, sid, i0, i1, flags | self.fbit, self.serial)
        except struct.error:
            name = registry.OPS[op].grad_fn or "a hidden"
            raise OverflowError(f"jitgrad: an attribute of {name} node does not fit the tape's "
                                f"int64 row: {(op, a, b, s, sid, i0, i1, flags, self.serial)}") from None
        try:
            self.rows.frombytes(packed)
        except BufferError:   # a numpy view of the rows outlived a replay: detach from it
            self.rows = array.array("q", self.rows)
            self.rows.frombytes(packed)
        self.serial += 1
        if out is None:
            self.outs.append(None)
            self.values.append(None)
        else:
            self.outs.append(weakref.ref(out))
            self.values.append(out._a)
            self.held += out._a.size
        return i

    def keep_constants(self, row, kept):
        """Keep the values of row's inputs that need no gradient (they have no row), for the
        differentiable formulas of a create_graph backward: {input name or role: (array, the
        shape it is read at or None)}."""
        if kept:
            self.consts[row] = kept
            counted = self.counted
            for v, _ in kept.values():
                if id(v) not in counted:    # (a batch every step reads is held once, not per
                    counted.add(id(v))      # step: W2's compacted the tape every 13 steps)
                    self.held += v.size

    def prepare(self, out):
        """Housekeeping before a node producing out is recorded (its inputs, live tensors, pin
        their rows): compact if the tape passed its limits, else sweep outs if due, save into
        out's dtype's arena."""
        if not self.compact_if_due() and len(self.outs) - self.swept >= _SWEEP:
            self.sweep()
        if out.dtype is not self.last_dtype:      # (dtypes are mostly singletons: cheap test)
            self.last_dtype = out.dtype
            if (out.dtype == _F64) != self.f64:
                self._switch()

    def compact_if_due(self):
        """Compact if the tape passed one of its limits and nothing pins its rows; returns
        whether it did. (Also before a trace pins it: a sweep of compiled models records in
        their first calls' traces only, so would never compact.)"""
        if (len(self.outs) >= self.rlimit or self.alen + self.ilen >= self.alimit or
                self.held >= self.hlimit) and not self.pinned:
            self.compact()
            return True
        return False

    def pair_budget(self, out):
        """prepare(out) for record_pair (out a 0-d float64 array), which then skips it until the
        serial this sets: each of its rows adds one row, at most two saved values and one held
        value, so it cannot pass a limit before then (the limits are soft: the first check after
        an op passed one compacts); other ops check for themselves. Whatever changes a limit or
        the arena's dtype or the shape table (compaction renumbers rows) sets pair_until to 0."""
        self.prepare(out)
        self.pair_sid = self.shape_id(())
        self.pair_leaves = set()
        room = min(self.limit - len(self.outs), (self.alimit - self.alen - self.ilen) // 2,
                   self.hlimit - self.held)
        self.pair_until = self.serial + max(room, 0)

    def _switch(self):
        """Record into the other dtype's arena."""
        self.pair_until = 0
        self.alimit += self.olen - self.alen      # it bounds alen + ilen: keep olen counted
        self.arena, self.other = self.other, self.arena
        self.alen, self.olen = self.olen, self.alen
        self.f64 = not self.f64
        self.fbit = F_F64 if self.f64 else 0
        self.has64 = True

    def _by_dtype(self):
        """(float32 arena, its length, float64 arena, its length)."""
        if self.f64:
            return self.other, self.olen, self.arena, self.alen
        return self.arena, self.alen, self.other, self.olen

    def saved_values(self):
        """Every saved value in one array, and the offset float32 rows' values start at in it
        (-1: at their own offsets, as the tape holds one dtype's values only)."""
        a32, l32, a64, l64 = self._by_dtype()
        if not l64:
            return a32[:l32], -1
        if not l32:
            return a64[:l64], -1
        return np.concatenate((a64[:l64], a32[:l32].astype(_F64))), l64

    def save_tensors(self, saves, extra=(), shape=None):
        """Save the values of saves (tensors or arrays), then the arrays in extra, for the node
        about to be appended; remember which tensors it saved (for in-place checks).
        Returns the arena offset."""
        serial = self.serial
        start = self.alen
        for v in saves:
            a = getattr(v, "_a", None)
            if a is None:
                self._put(v, shape)
                continue
            if shape is None or a.shape == shape:       # _put's common case, inline
                alen = self.alen
                end = alen + a.size
                if end > self.arena.size:
                    self._reserve(a.size)
                if a.ndim:
                    self.arena[alen: end] = a.ravel()
                else:           # (an item store: 0.5 us less than a slice's and ravel's views)
                    self.arena[alen] = a
                self.alen = end
            else:
                self._put(a, shape)
            ver = v._ver             # note_saved's common cases, inline: this runs per saved tensor
            if ver is None:
                v._ver = [0, 64, serial]
            elif 1 < len(ver) < ver[1]:
                ver.append(serial)
            else:
                self.note_saved(v, serial)
        for a in extra:
            self._put(a, shape)
        self.saver_row[serial] = len(self.outs)     # the row append() is about to write
        return start

    def var(self, t, shape):
        """The row carrying t's gradient, un-broadcast to t's shape if shape differs."""
        v = t._node
        own = t._a.shape
        if v < 0:
            v = t._leafvar
            # a new leaf row if t has none, or if its storage changed shape since (``.data =``):
            # its gradient slot must have t's size; rows recorded before keep the old one
            if v < 0 or self.rows[v * WIDTH + SHAPE_ID] != self.shape_ids.get(own):
                v = self.append(LEAF, -1, -1, -1, own, 0, 0, 0, None)
                t._leafvar = v
                self.leaves[v] = t
                if (t._a.dtype == _F64) != self.f64:     # flagged with t's dtype, not out's
                    self.rows[v * WIDTH + FLAGS] ^= F_F64
                    self.has64 = True
        elif self.rows[v * WIDTH + SHAPE_ID] != self.shape_ids.get(own):
            raise _shape_changed(self, t, v)
        if own != shape:
            v = self.append(registry.EXPAND, v, -1, -1, shape, 0, 0, 0, None)
            if (t._a.dtype == _F64) != self.f64:
                self.rows[v * WIDTH + FLAGS] ^= F_F64
                self.has64 = True
        return v

    def storage_replaced(self, t, old_shape):
        """t's storage was replaced (``.data =``) and its shape was old_shape. A leaf needs
        nothing (var gives it a fresh leaf row). A recorded non-leaf's node cannot take a gradient
        of another shape, and record() trusts its row's shape: move t to a guard row with the new
        shape that fails any backward reaching it with torch's error, before any rule runs."""
        if t._node < 0 or t._a.shape == tuple(old_shape):
            return
        with self.lock:
            old = t._node
            op = self.rows[old * WIDTH]
            serial = self.serial
            self.saver_row[serial] = len(self.outs)
            self.dirty[serial] = (f"Function {registry.OPS[op].grad_fn} returned an invalid "
                                  f"gradient at index 0 - got {list(t._a.shape)} but expected "
                                  f"shape compatible with {list(old_shape)}")
            self._dirty_sorted = None
            self.outs[old] = None             # or compaction would move t back to its old row
            t._node = self.append(op, old, -1, -1, t._a.shape, 0, 0, F_SAVED, t)

    def _put(self, v, shape):
        """Append array v to the arena, broadcast to shape unless shape is None."""
        alen = self.alen
        n = v.size if shape is None or v.shape == shape else _prod(shape)
        end = alen + n
        if end > self.arena.size:
            self._reserve(n)
        if shape is None or v.shape == shape:
            if v.ndim:
                self.arena[alen: end] = v.ravel()   # (a view when it can be: 0.2 us less than reshape)
            else:
                self.arena[alen] = v                # (as save_tensors)
        else:
            self.arena[alen: end].reshape(shape)[...] = v
        self.alen = end

    def save_consts(self, values):
        """Append Python floats to the arena (right after the node's saved arrays)."""
        n = len(values)
        if self.alen + n > self.arena.size:
            self._reserve(n)
        if n == 1 and type(values[0]) is float:    # (an item store: no slice, no array made of
            self.arena[self.alen] = values[0]       # the tuple; a float casts as it would)
        else:
            self.arena[self.alen: self.alen + n] = values
        self.alen += n

    def save_ints(self, values):
        """Copy integers (an array or a sequence) into the int arena; returns the offset."""
        v = np.asarray(values, np.int64).reshape(-1)
        return self._put_ints(v, v.size)

    def save_int_list(self, values):
        """save_ints for a flat list of Python ints (record_multi's input table), copied into the
        int arena as it is: no array made for it (1 us of a small op's recording)."""
        return self._put_ints(values, len(values))

    def _put_ints(self, v, n):
        start = self.ilen
        if start + n > self.ints.size:
            grown = np.empty(max(2 * self.ints.size, start + n), np.int64)
            grown[:start] = self.ints[:start]
            self.ints = grown
        self.ints[start: start + n] = v
        self.ilen = start + n
        return start

    def _reserve(self, n):
        if self.alen + n > self.arena.size:
            grown = np.empty(max(2 * self.arena.size, self.alen + n), self.arena.dtype)
            grown[: self.alen] = self.arena[: self.alen]
            self.arena = grown

    # A tensor's version record ``_ver`` is a list shared with its views and detached aliases:
    # [version, prune_at, serials of the unfreed nodes that saved its current value...].
    def note_saved(self, t, serial):
        """Remember that the node with this serial saved t's current value (for in-place checks)."""
        ver = t._ver
        if ver is None:
            t._ver = [0, 64, serial]
            return
        if len(ver) == 1:
            ver.append(64)
        if len(ver) >= ver[1]:      # (serial itself is kept: its row may not be written yet)
            ver[2:] = self._replayable(ver[2:]) if len(ver) < 256 else self._unfreed(ver[2:])
            ver[1] = max(64, 2 * len(ver) + 2)
        ver.append(serial)

    def note_modified(self, t, by=-1):
        """t's storage was changed in place: nodes that saved it may no longer replay.

        by: the row of the node whose result was written into t, if any. Its saved copy of t
        is the value from before the write, so the write does not invalidate it."""
        hook.grad_epoch += 1
        if hook.tracer is not None:
            hook.tracer.modified(t)
        ver = t._ver
        if ver is None:
            t._ver = [1, 64]
            return
        old = ver[0]
        ver[0] = old + 1
        if len(ver) <= 2:
            serials = ()
        elif by < 0:                # (an unrecorded write, an optimizer's: no saver to skip)
            serials = self._replayable(ver[2:])
        else:
            mine = self.rows[by * WIDTH + SERIAL]
            serials = self._replayable([s for s in ver[2:] if s != mine])
        if serials:
            shape = "[" + ", ".join(str(d) for d in t._a.shape) + "]"
            # (PyTorch has no legacy type name for bool: its message names the backend's type)
            kind = f"[CPUBoolType {shape}]" if t._a.dtype == np.bool_ else f"[jitgrad.{t.dtype.tensor_type} {shape}]"
            now = by if by >= 0 else t._node
            for s in serials:
                # PyTorch names the node that computed t: the saver itself where t is its own
                # output (exp's), else t's node after this write (add_'s)
                node = t._node if self.saver_row.get(s) == t._node >= 0 else now
                what = kind
                name = self._node_name(node) if node >= 0 else None
                if name is not None:
                    what += f", which is output 0 of {re.sub(r'Backward[0-9]*$', '', name)},"
                self.dirty[s] = (
                    "one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: {what} is at version {old + 1}; expected version {old} "
                    "instead. Hint: enable anomaly detection to find the operation that failed to "
                    "compute its gradient, with jitgrad.autograd.set_detect_anomaly(True, check_nan=False).")
            self._dirty_sorted = None
        del ver[2:]

    def _node_name(self, row):
        """The grad_fn name of row's node for an error message, or None where torch's names
        none (torch.compile's node)."""
        name = registry.OPS[self.row(row)[0]].grad_fn
        if name is None:            # a Python node (or its output's row): its class's name
            node = self.grad_fns.get(self.rows[row * WIDTH + SERIAL])
            if node is None or not getattr(node, "named_in_errors", True):
                return None
            name = node.name()
        return name

    def _replayable(self, serials):
        """The serials whose rows still exist and have not been freed by a backward."""
        where, rows = self.saver_row, self.rows
        out = []
        for s in serials:
            r = where.get(s)
            if r is not None and not rows[r * WIDTH + FLAGS] & F_FREED:
                out.append(s)
        return out

    def _unfreed(self, serials):
        """_replayable for a long list, in numpy (W4's leaves are saved 5,000 times each: the loop
        took ~20 bytecodes per element, two elements per save). A serial a version record lists
        belongs to a row that saved tensors: a row with that serial (rows are in serial order)
        that no backward freed is the saver_row entry _replayable looks for."""
        rows = have = None
        try:
            rows = np.frombuffer(self.rows, np.int64)
            have = rows[SERIAL::WIDTH]
            want = np.array(serials, np.int64)
            if not len(have):
                return []
            at = np.minimum(np.searchsorted(have, want), len(have) - 1)
            return want[(have[at] == want) & (rows[FLAGS::WIDTH][at] & F_FREED == 0)].tolist()
        finally:
            rows = have = None      # (an exported buffer cannot grow: see _views)

    def dirty_serials(self):
        if self._dirty_sorted is None:
            self._dirty_sorted = np.array(sorted(self.dirty), np.int64)
        return self._dirty_sorted

    def row(self, i):
        return self.rows[i * WIDTH: (i + 1) * WIDTH]

    def index_of_serial(self, serial):
        """Row index of a serial, or -1 if compaction dropped it (serials increase along rows)."""
        ser = np.frombuffer(self.rows, np.int64)[SERIAL::WIDTH]
        i = int(np.searchsorted(ser, serial))
        return i if i < len(ser) and ser[i] == serial else -1

    # ---- reclaiming ----------------------------------------------------------------------
    def compact(self):
        """Drop rows that no live tensor can reach, renumbering the survivors (not while
        something pins the row numbers: a paused backward, a trace)."""
        if self.pinned:
            return
        self.pair_until = 0
        old_outs = self.outs
        # the rows holding a weakref (after sweeps, mostly None: found in C, as a weakref is
        # true and None false; enumerate's Python loop took ~700 instructions a row, numpy's
        # fromiter and astype 3x compress's time), then those whose tensor lives
        held_refs = itertools.compress(range(len(old_outs)), old_outs)
        alive = [i for i in held_refs if old_outs[i]() is not None]
        live = alive + [i for i, r in self.retained.items() if r() is not None]
        if not live:
            self.reset()
            return
        rows, shapes = _views(self)
        a32, l32, a64, l64 = self._by_dtype()
        room = _MIN_ARENA + _MIN_ARENA // 4           # to reach the next compaction
        try:
            new_rows, a32, a64, self.ints, idx, l32, l64, self.ilen = codegen.interpreter().compact(
                rows, a32, a64, self.ints, np.array(sorted(set(live)), np.int64), l32, l64,
                self.ilen, room if l32 else 4096, room if l64 else 4096)
        finally:
            del rows, shapes
        if self.f64:
            self.arena, self.alen, self.other, self.olen = a64, l64, a32, l32
        else:
            self.arena, self.alen, self.other, self.olen = a32, l32, a64, l64
        outs = [None] * len(new_rows)
        for i in alive:     # (a tensor dead at the scan stays dead: the others need no look)
            r = old_outs[i]
            t = r()
            if t is not None:
                t._node = int(idx[i])
                outs[t._node] = r
        self.outs = outs
        # loop.compact keeps the survivors' order (new row j is the j-th kept old row), so the
        # kept values are a gather, in C, not a loop reading numpy scalars (~1k rows a ms)
        values = list(map(self.values.__getitem__, np.flatnonzero(idx >= 0).tolist()))
        held = sum(map(_size, filter(_not_none, values)))
        at = idx.tolist()     # (a list's items read ~10x faster than numpy scalars)
        self.consts = {at[v]: c for v, c in self.consts.items() if at[v] >= 0}
        kept = {id(v): v.size for c in self.consts.values() for v, _ in c.values()}
        self.counted = set(kept)
        held += sum(kept.values())
        self.values, self.held = values, held
        leaves = {}
        current = []          # a tensor whose storage changed shape has older leaf rows too
        for v, t in self.leaves.items():
            if at[v] >= 0:
                leaves[at[v]] = t
            if t._leafvar == v:
                current.append((t, at[v]))
        for t, v in current:
            t._leafvar = v
        self.leaves = leaves
        self.retained = {at[v]: r for v, r in self.retained.items() if at[v] >= 0}
        self._rebuild_shapes(new_rows)
        self.has64 = self.f64 or bool((new_rows[:, FLAGS] & F_F64).any())
        self.rows = array.array("q", new_rows.tobytes())
        saved = np.flatnonzero(new_rows[:, FLAGS] & F_SAVED)
        self.saver_row = dict(zip(new_rows[saved, SERIAL].tolist(), saved.tolist()))
        self.dirty = {s: m for s, m in self.dirty.items() if s in self.saver_row}
        self._dirty_sorted = None
        if self.py_nodes or self.hooks:
            alive = set(new_rows[:, SERIAL].tolist())
            self.py_nodes = {s: n for s, n in self.py_nodes.items() if s in alive}
            self.hooks = {s: h for s, h in self.hooks.items() if s in alive}
        self.rlimit = max(_MIN_LIMIT, 2 * len(new_rows))
        self.swept = len(outs)            # (outs holds the live tensors' weakrefs only)
        self._sweep_after(self.swept)
        self.alimit = max(_MIN_ARENA, 2 * (self.alen + self.olen)) - self.olen
        self.hlimit = max(_MIN_HELD, 2 * held)
        self._work(len(new_rows))

    def sweep(self):
        """Replace the dead weakrefs in outs since the last sweep by None (as compact reads them).
        Each recorded row adds a weakref, a GC-tracked object, and a graph's intermediate tensors
        mostly die within an op or two: freed here, young, their weakrefs cost the collector
        nothing (held to the next compaction, each was walked by every collection until then).
        ~55 ns per row in W4 when it was a loop (a comprehension now), the weakref's deallocation
        (compact's, else) included. With the collector off it serves nothing: compaction frees
        them as before, and a sweep after the collector is back on starts where the last one
        stopped."""
        outs = self.outs
        n = len(outs)
        if not gc.isenabled():
            self._sweep_after(n)
            return
        lo = self.swept     # (a comprehension and one slice store: fewer bytecodes a row than
        outs[lo:n] = [r if r is None or r() is not None else None for r in outs[lo:n]]  # a loop)
        # the last row's output is mostly alive still (the head of a chain of ops): the next
        # sweep looks at it again, so it does not wait for a compaction once it dies
        self.swept = n - 1 if n and outs[n - 1] is not None else n
        self._sweep_after(self.swept)

    def _sweep_after(self, row):
        """Next sweep _SWEEP rows after row: limit, the row count at which record() calls
        prepare(), is that or rlimit (compaction) if it comes first."""
        self.limit = min(self.rlimit, row + _SWEEP)

    def _rebuild_shapes(self, rows):
        """Keep only the shapes rows use (renumbering their SHAPE_ID column), so the table does not
        grow with every shape ever recorded."""
        old = np.frombuffer(self.shapes, np.int64)
        used = np.unique(rows[:, SHAPE_ID])
        self.shapes = array.array("q")
        self.shape_ids = {}
        at = np.empty(used.size, np.int64)
        for j, sid in enumerate(used.tolist()):
            at[j] = self.shape_id(tuple(old[sid + 1: sid + 1 + old[sid]].tolist()))
        rows[:, SHAPE_ID] = at[np.searchsorted(used, rows[:, SHAPE_ID])]
        self.slimit = max(_MIN_SHAPES, 2 * len(self.shape_ids))

    # ---- replay --------------------------------------------------------------------------
    def _replay(self, run, roots, seeds, free_graph, dirty, wide):
        if len(self.outs) > self.need.size or self.replaying:
            self._work(len(self.outs))   # (a backward run by a Python node: buffers of its own)
        rows, shapes = _views(self)
        roots = np.asarray(roots, np.int64)
        a32, l32, a64, l64 = self._by_dtype()
        ints = self.ints
        mode, stats = self._mode()
        self.replaying += 1
        try:
            while True:
                if wide == WIDE_MIXED:   # float32 rows' values, widened, after the float64 ones
                    arena, low_at = np.concatenate((a64[:l64], a32[:l32].astype(_F64))), l64
                elif wide:               # (the loop checks the graph fits only if it may not)
                    arena, low_at = a64, -1 if l32 else 0
                else:
                    arena, low_at = a32, NARROW if self.has64 else 0
                flat = _flat_seeds(seeds, arena.dtype)
                addrs = codegen.rule_addresses(arena.dtype)
                err, node, g, self.marked, nodes, missing = run(
                    rows, shapes, arena, ints, roots, flat, free_graph, dirty, addrs, self.need,
                    self.goff, self.gsz, self.order, self.marked, low_at, mode, stats)
                if err == ERR_WIDE:
                    wide = node
                elif err == ERR_RULE:
                    codegen.compile_rules(arena.dtype, missing)   # first use of these ops, this dtype
                    table = codegen.rule_addresses(arena.dtype)
                    left = np.flatnonzero(missing & (table[:missing.size] == 0))
                    if left.size:         # (never expected: a retry would loop forever)
                        raise RuntimeError("jitgrad: no compiled backward rule for " + ", ".join(
                            str(registry.OPS[c].grad_fn) for c in left))
                else:
                    break
            if err in (ERR_PAUSE, ERR_NAN):
                del rows, shapes
                err, node = self._python_nodes(err, node, g, nodes, ints, arena, addrs, free_graph,
                                               low_at, mode, stats)
            self.marked_leaves = self.marked[nodes:]
            return err, node, g
        except BaseException:
            # The loop died (or was interrupted) after marking rows in need but before handing
            # back the list it marked, which the next replay clears: clear everything instead.
            self.need[:] = 0
            self.marked = self.marked_leaves = np.zeros(0, np.int64)
            raise
        finally:
            self.replaying -= 1

    def _python_nodes(self, err, at, g, nodes, ints, arena, addrs, free_graph, low_at, mode, stats):
        """Drive a replay that stopped at a Python node (or, in anomaly mode, at a nan): Python
        runs the node's hooks or Function backward on the buffer g, then the compiled replay
        resumes. The tape is pinned meanwhile (row numbers are in flight) and the user's code
        may record ops or run a backward of its own (which takes fresh work buffers)."""
        mine = (self.need, self.goff, self.gsz, self.order, self.marked)
        need, goff, gsz, order, _ = mine
        replay = codegen.interpreter().replay
        self.pinned += 1
        try:
            while err in (ERR_PAUSE, ERR_NAN):
                row = int(order[at])
                if err == ERR_NAN:
                    self.on_nan(row, g, goff, gsz)
                try:
                    run_rule = self.on_pause(row, g, need, goff, gsz, free_graph)
                finally:
                    self.need, self.goff, self.gsz, self.order, self.marked = mine
                rows, shapes = _views(self)
                try:
                    err, at = replay(rows, shapes, arena, ints, g, order, goff, gsz, addrs,
                                     at if run_rule else at + 1, at if run_rule else -1, nodes,
                                     free_graph, low_at, mode, stats)
                finally:
                    del rows, shapes
            return err, at
        finally:
            self.pinned -= 1

    def _mode(self):
        """The replay's mode bits and profile counters (see loop.replay)."""
        stats = self.stats
        if stats is None:
            return (CHECK_NAN if self.check_nan else 0), _NO_STATS
        if stats.shape[1] < len(registry.OPS):       # ops registered since profiling began
            grown = np.zeros((2, len(registry.OPS)), np.int64)
            grown[:, :stats.shape[1]] = stats
            self.stats = stats = grown
        return (CHECK_NAN if self.check_nan else 0) | PROFILE, stats

    def backward(self, roots, seeds, retain_graph):
        """Run the compiled interpreter from roots (row ids) seeded with seeds (arrays).

        Returns the flat gradient buffer: row i's gradient is grads[goff[i]: goff[i] + gsz[i]]
        for the rows with need[i] set (valid until the next replay). Raises PyTorch's errors.
        A graph replays in float32 unless it reaches a float64 node (then in float64).
        """
        run = codegen.interpreter().backward
        with self.lock:
            rows = self.rows
            wide = 0
            for r in roots:
                if rows[r * WIDTH + FLAGS] & F_F64:
                    wide = WIDE_ONLY
            err, node, g = self._replay(run, roots, seeds, not retain_graph, self.dirty_serials(),
                                        wide)
            if err == ERR_FREED:
                raise RuntimeError(FREED_MSG)
            if err == ERR_DIRTY:
                raise RuntimeError(self.dirty[self.rows[node * WIDTH + SERIAL]])
            if not retain_graph and not err and hook.tracer is None and not self.pinned:
                self._reclaim(self.marked[: self.marked.size - self.marked_leaves.size])
            return g

    def _reclaim(self, nodes):
        """After a backward freed the graph of rows nodes: give back the arena space at the
        tape's end that only freed rows used (see loop.reclaim). A training loop then saves each
        step's values into the same memory, warm in cache. (The nodes' output arrays stay in
        values until compaction: releasing them here, a Python loop over the graph, cost a 10k-node
        backward 3x its replay. nodes are in descending order: the last is the least; a numpy min
        cost a fresh 10k-node graph's backward ~40 us, its cache cold.)"""
        if nodes.size:
            self.reclaim_from(int(nodes[-1]))

    def reclaim_from(self, lo):
        """_reclaim of the freed rows from row lo on (a trace's, once its Program copied their
        saves)."""
        if lo >= len(self.outs):
            return
        rows, shapes = _views(self)
        a32, l32, a64, l64 = self._by_dtype()
        try:
            l32, l64 = codegen.interpreter().reclaim(rows, lo, a32, l32, a64, l64)
        finally:
            del rows, shapes
        if self.f64:
            self.alen, self.olen = l64, l32
        else:
            self.alen, self.olen = l32, l64

    def shape_of(self, row):
        sid = self.rows[row * WIDTH + SHAPE_ID]
        return tuple(self.shapes[sid + 1: sid + 1 + self.shapes[sid]])

    def grad_of(self, g, row):
        """Row's gradient in the last replay's buffer g, or None if the replay did not reach it."""
        if row < 0 or row >= self.need.size or not self.need[row]:
            return None
        return g[self.goff[row]: self.goff[row] + self.gsz[row]]


_NO_STATS = np.zeros((2, 0), np.int64)


def _flat_seeds(seeds, dtype):
    """The seeds (arrays) as one flat array of the replay's dtype. A single seed that already is
    one is passed as it is (a writeable one: Numba compiles read-only arrays separately)."""
    if len(seeds) == 1:
        s = seeds[0]
        if type(s) is np.ndarray and s.dtype == dtype and s.flags.c_contiguous and s.flags.writeable:
            return s.reshape(-1)
    if not seeds:
        return np.zeros(0, dtype)
    return np.concatenate([np.asarray(s, dtype).reshape(-1) for s in seeds])


def _shape_changed(tape, t, row):
    """torch's error for a recorded tensor whose storage changed shape (``.data =``) before
    another op used it: the node that made it cannot take a gradient of the new shape."""
    op = registry.OPS[tape.rows[row * WIDTH]].grad_fn
    return RuntimeError(f"Function {op} returned an invalid gradient at index 0 - got "
                        f"{list(t._a.shape)} but expected shape compatible with "
                        f"{list(tape.shape_of(row))}")


def _views(tape):
    """numpy views of the row and shape buffers; callers must drop them before returning (an
    exported buffer cannot grow), so they never live in a frame an exception could keep."""
    return (np.frombuffer(tape.rows, np.int64).reshape(-1, WIDTH),
            np.frombuffer(tape.shapes, np.int64))


_size = operator.attrgetter("size")
_not_none = functools.partial(operator.is_not, None)
_ROW = struct.Struct(f"{WIDTH}q")      # a tape row, native int64s as array('q') holds them


def _prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


TAPE = Tape()


def _after_fork_in_child():
    """fork() copies the tape lock but not the thread holding it: a child forked while another
    thread held it would wait forever. That thread may have been between marking rows for a
    replay and recording the marks, so drop the marks too (the rows themselves are appended in
    one step)."""
    held = not TAPE.lock.acquire(blocking=False)
    if held:
        TAPE.lock = threading.RLock()
        TAPE.need[:] = 0
        TAPE.marked = TAPE.marked_leaves = np.zeros(0, np.int64)
    else:
        TAPE.lock.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

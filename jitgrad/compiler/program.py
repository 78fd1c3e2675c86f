"""A finished trace as a replayable program: flat buffers, the trace's own tape rows, and the
list of segments a call runs (compiled forward+backward runs, and host calls in between).

The rows the step recorded are copied out of the global tape, renumbered from 0 (leaf rows of
tensors from outside, recorded before the step, are copied first) with their saved values and
int data, so a replay never touches the global tape: the forward kernels rewrite the saved
values in place and loop.py's backward replays the copy. A row that saves only operands the
step computed (an op whose formulas' reads are its saved values: mul, tanh, ...) reads them
where the forward wrote them: the values and the saved values are one buffer (v first), and
such a row's SAVED_AT points into v (see _read_in_place).
"""
import collections
import ctypes
import functools
import math
import struct
import sys
import threading
import weakref
from sys import getrefcount
from weakref import getweakrefcount

import numpy as np
from numba import njit

from ..engine import codegen, hook, registry
from ..engine.loop import (A, B, ERR_FORWARD, F_APART, F_F64, F_FREED, F_INTS, F_MULTI, F_PAUSE, FLAGS, I0,
                           I1, LEAF, OP, SAVED_AT, SERIAL, SHAPE_ID, WIDTH, numel)
from ..engine.replay import (B_START, BLOCK_ARRAYS, NO_INPUT, P_C, P_GRADS, P_I0, P_I1, P_K, P_N, P_OP, P_OSH,
                             P_OUT, P_ROW, P_S, P_X, P_XSH, P_Y, P_YSH, PROGRAM_COLUMNS, SCALAR_ADD, SCALAR_DIV,
                             SCALAR_MUL, SCALAR_SUB, S_CHAIN_X, S_DX, S_DY, S_EXT, S_GENERAL, S_GO_CARRIED,
                             S_X_LAST, S_Y_LAST, D_ADD, D_CARRY, D_NONE, D_REG0, D_SET)
from ..engine.tape import TAPE
from ..ops.elementwise import ADD, DIV, MUL, MUL_SCALAR, SUB
from ..ops.linalg import MM, MM_BIAS, PRODUCTS
from ..tensor import Tensor, _init, _wrap
from .trace import TraceFailed

_F64 = np.dtype(np.float64)
# Program.run reuses a dropped .grad only where reference counts prove that no one else holds
# it: so on CPython before 3.14 with the GIL (3.14 borrows references on the stack, so counts
# may be lower than the holders; a free-threaded build counts per thread)
_EXACT_COUNTS = (sys.implementation.name == "cpython" and sys.version_info < (3, 14)
                 and getattr(sys, "_is_gil_enabled", lambda: True)())


class Program:
    def __init__(self, trace, returned=(), reuse=True, codes=None, cut=False):
        """returned: the slots in v of the tensors the function returns (a replay reads them);
        reuse: whether a plan of a program of the same structure may be taken (see _plan_key);
        codes: the optimizer steps' instructions, when planned already (_check's rebuild); cut:
        the step returns a graph a caller differentiates (see node.py), which may continue into
        rows recorded before it (their copies are leaves: the gradients handed back)."""
        if trace.dtype is None:
            raise TraceFailed("the function computes nothing compiled replay can record")
        self.dtype = dtype = trace.dtype
        if trace.draw_dtypes - {dtype}:
            raise TraceFailed(f"a random draw of another dtype than the computation's ({dtype})")
        r0, i0, lens0 = trace.start
        r1, i1, lens1 = trace.end
        wide = dtype == _F64
        vsize = max(trace.vsize, 1)
        prog = _int64s(trace.prog).reshape(-1, len(PROGRAM_COLUMNS))
        # (one compiled pass: as ~40 numpy calls it took ~190 us of a new model's first call;
        # its load costs ~6 ms once per process, its compile ~2 s once per install)
        rows, bints, listing, refs, status = _renumbered(
            np.frombuffer(TAPE.rows, np.int64).reshape(-1, WIDTH), r0, r1, TAPE.ints, i0, i1,
            lens0[dtype], vsize, prog, wide, cut)
        if status:
            raise TraceFailed(_RENUMBER_FAILURES[status])
        a32, _, a64, _ = TAPE._by_dtype()
        # v, the saved values, then a slot per tensor from outside (see _plan_scalars)
        saves = lens1[dtype] - lens0[dtype]
        self.sv = _unwritten(vsize + saves + len(trace.ext), dtype)
        self.sv[vsize: vsize + saves] = (a64 if wide else a32)[lens0[dtype]: lens1[dtype]]
        shift = len(refs) - r0
        self.rows = rows
        self.ext_base = vsize + saves
        self.v = self.sv[:vsize]
        self.bints = bints if bints.size else np.zeros(1, np.int64)
        self.cv = np.array(trace.cv + [0.0], np.float64).astype(dtype)   # numpy's rounding
        self.shapes = np.frombuffer(TAPE.shapes, np.int64).copy()
        self.no_roots = np.zeros(0, np.int64)
        self.module = codegen.interpreter()

        # optimizer steps run inside the call before them: their instructions follow the traced
        # ones, with their int data after the trace's (pints' last element stays the status word)
        rank_of_ref = {r: k for k, r in enumerate(refs.tolist())}

        def row_of(r):
            """renumber, of one row (a Python int)."""
            if r >= r0:
                return r + shift
            if r not in rank_of_ref:
                raise TraceFailed(_RENUMBER_FAILURES[3])
            return rank_of_ref[r]
        self.row_of = row_of
        self.segments = _segments(trace.events, row_of, trace.steps)
        # each optimizer step's instructions: planned per model (plan() keeps the model's state)
        if codes is None:
            codes = {i: self._step_code(run, trace) for i, run in enumerate(self.segments)
                     if isinstance(run, _Run) and run.step is not None}
        else:           # (_check's second analysis: the steps were planned once, as they were)
            for i, code in codes.items():
                if code is None:
                    self.segments[i].step = self.segments[i].host = None
        bounds = tuple(x for run in self.segments if isinstance(run, _Run)
                       for x in (run.start, run.stop, run.post))
        # (the int data's values reach the analysis only here: a model's targets, a max's
        # indices do not make another key)
        folds = _foldable_updates(prog, bounds, set(trace.pints).union(returned))
        key = self._plan_key(trace, prog, bints[listing], folds, codes) if reuse else None
        plan = _memo_get(key) if key is not None else None
        if plan is None:
            self.faddrs = codegen.compile_forwards(dtype, _distinct(prog[:, 0], len(registry.OPS)).tolist())
            folded = self._analyse(trace, prog, bints, listing, folds, codes)
            wanted = np.zeros(len(codegen.registry.OPS), np.uint8)
            wanted[self.rows[:, OP]] = 1
            wanted[0] = 0
            codegen.compile_rules(dtype, wanted)
            if key is not None:
                _memo_put(key, self._plan(folded))
        else:       # (its kernels and rules were compiled for the plan, in this module)
            self._take(plan, trace, codes)
            if _CHECK_PLANS[0]:
                self._check(Program(trace, returned, reuse=False, codes=codes, cut=cut))

        n = self.rows.shape[0]
        self.need = np.zeros(n + 1, np.uint8)
        self.goff = np.zeros(n + 1, np.int64)
        self.gsz = np.zeros(n + 1, np.int64)
        self.order = np.zeros(n + 1, np.int64)
        self.seed = np.ones(1, dtype)
        self.no_work = np.zeros(0, dtype)
        # the gradient buffer of the runs whose gradients gcopy hands out (room for every row's)
        self.work = np.zeros(int(self.numel_of[self.rows[:, SHAPE_ID]].sum()), dtype)
        self.grad_ext = trace.grad_ext      # ext index -> ext index of the tensor whose .grad
        self.spare = {}     # ext index -> a .grad set to None this call whose object is reused
        # the leaves whose .grad the step sets to None (a spare comes from there only: a .grad
        # dropped by zero_grad is gone before a replay could take it)
        self.dropped = frozenset(e for seg in self.segments if type(seg) is list for e in seg[1])
        self.stores = {}    # ext index -> (weakref to a .grad's array a replay made, its negated
                            # address, dtype, shape): what a spare's array must be
        self.store_count = 0    # stores made: a run's addresses from _fresh stand while it holds
        self.addrs = codegen.rule_addresses(dtype)
        for run in self.segments:
            if isinstance(run, _Run) and run.roots is not None:
                run.views = [(e, self.v[gslot: gslot + trace.ext[e][1].size].reshape(trace.ext[e][1].shape))
                             if gslot >= 0 else None for _, e, gslot in run.leaves]
        # the segments a replay walks: `p.grad = None` for the leaves of the backward right
        # after it (and for parameters it does not reach: frozen ones, zero_grad's) folds into
        # that run (_run_fresh: one pass over them, not two)
        folded = set()
        for i, (before, run) in enumerate(zip(self.segments, self.segments[1:])):
            if isinstance(run, _Run) and run.roots is not None and type(before) is list and \
                    not run.grads_may_exist and run.all_new is not None and _EXACT_COUNTS and \
                    not self.grad_ext and set(run.exts) <= set(before[1]):
                run.fresh = list(enumerate(run.exts))
                run.also_none = sorted(set(before[1]) - set(run.exts))
                run.handed = [None] * len(run.exts)
                folded.add(i)
        # a run whose .grads the step drops right after its optimizer step, unread (`opt.step();
        # opt.zero_grad()` at the step's end): its call need not hand them out
        segments, reads = self.segments, trace.grads_read_at
        for i, run in enumerate(segments):
            if isinstance(run, _Run) and run.roots is not None and not self.grad_ext:
                j = i + 2 if run.host is not None and i + 1 < len(segments) and \
                    segments[i + 1] is run.host else i + 1
                after = segments[j] if j < len(segments) else None
                run.drops = type(after) is list and set(run.exts) <= set(after[1]) and \
                    not any(run.backward_at < r <= after[2] for r in reads)
        self.calls = [seg for i, seg in enumerate(self.segments) if i not in folded]
        # the common step, one run whose `p.grad = None` folded in, and its optimizer step if any
        # (run inside the call when ready, else its host call after it), then host calls (a
        # scheduler's step): replayed without the loop over segments (host calls change .grads
        # through zero_grads, which moves the grad epoch, as every public way does)
        first, *rest = self.calls
        if rest and first.__class__ is _Run and first.host is not None and rest[0] is first.host:
            rest = rest[1:]
        self.only = first if folded and isinstance(first, _Run) and first.fresh is not None and \
            all(type(seg) is tuple and seg[0] == "host" for seg in rest) else None
        self.hosts_after = rest
        # the instructions where a forward kernel stopping the replay leaves everything outside
        # the program as before the call, but for the draws: those of the first call, when only
        # draws come before it, up to the first that writes a tensor from outside. _failed then
        # raises ReplayStopped: the caller puts the generators back and runs the step eagerly
        # (eager's error, where its op is, after the Python the step runs before it)
        self.clean = (0, 0)
        first = next((seg for seg in self.calls
                      if not (type(seg) is tuple and seg[0] == "draws")), None)
        if isinstance(first, _Run):
            outside = _at(self.prog[first.start: first.stop, P_OUT] < 0)
            self.clean = (first.start, first.start + outside[0] if outside.size else first.stop)

    def _analyse(self, trace, prog, bints, listing, folds, codes):
        """The passes over the renumbered step: folds (of scaled updates: _foldable_updates),
        in-place reads, scalar runs, the optimizer steps' instructions (codes: each run's, by
        segment index). Returns the int data the bias folds appended to bints."""
        dtype = self.dtype
        prog, removed = _fold_scaled_updates(prog, folds, len(self.faddrs))
        kernels = {}
        if removed.size:
            kernels[scaled_update] = 0
            for run in self.segments:
                if isinstance(run, _Run):
                    at = (run.start, run.stop, run.post)
                    run.start, run.stop, run.post = (x - n for x, n in
                                                     zip(at, removed.searchsorted(at).tolist()))
        traced = prog.shape[0]
        for before, run in zip(self.segments, self.segments[1:]):
            if isinstance(run, _Run) and run.roots is not None and type(before) is list and \
                    set(run.exts) <= set(before[1]):
                run.grads_may_exist = False     # (the `p.grad = None` right before sets them)
        pints, extra = list(trace.pints), []
        for i, run in enumerate(self.segments):
            if isinstance(run, _Run) and run.post > run.stop:
                outs = prog[run.stop: run.post, P_OUT, None]
                lo = np.array([gslot for _, _, gslot in run.leaves if gslot >= 0], np.int64)
                hi = lo + [trace.ext[e][1].size for _, e, gslot in run.leaves if gslot >= 0]
                run.grads_written = bool(((outs >= lo) & (outs < hi)).any())
            if i in codes:
                extra += self._fuse(run, codes[i], prog.shape[0] + len(extra), pints, kernels)
        if extra:
            prog = np.concatenate((prog, np.array(extra, np.int64)))
        if kernels:
            self.faddrs = np.concatenate((self.faddrs, [codegen.kernel_address(k, dtype)
                                                        for k in kernels]))
        self.prog = prog
        self.pints = np.array(pints + [0], np.int64)     # (the last: the status word)
        self.numel_of = _numel_table(self.shapes, self.rows[:, SHAPE_ID], prog[:, P_XSH], prog[:, P_YSH],
                                     prog[:, P_OSH])
        handed = [(gslot, gslot + trace.ext[e][1].size) for run in self.segments if isinstance(run, _Run)
                  for _, e, gslot in run.leaves if gslot >= 0]
        # (the rows but SERIAL, which no pass reads: it differs between models of one structure)
        structure = self.rows[:, :SERIAL]
        _read_in_place(prog, structure, self.numel_of, traced, np.array(handed, np.int64).reshape(-1, 2))
        _mark_scalars(prog, self.numel_of, len(self.faddrs))
        self.faddrs = np.concatenate((self.faddrs, _SCALAR_MARKS))
        backwards = sum(isinstance(run, _Run) and run.roots is not None for run in self.segments)
        for run in self.segments:
            if isinstance(run, _Run):
                run.fcode, run.bcode, run.sgrad = self._plan_scalars(run, backwards)
        roots = [run.roots for run in self.segments if isinstance(run, _Run) and run.roots is not None]
        # (the step's multi-input rows list their inputs where they did: the folds change neither)
        extra = _fold_bias_adds(structure, self.shapes, np.concatenate([bints[listing]] + roots),
                                self.bints.size)
        if extra.size:
            self.bints = np.concatenate((self.bints, extra))
        return extra

    # A new model of a structure seen before (a sweep's) takes the results of _analyse from the
    # first: keyed by everything _analyse reads, by value, and held in the passes' memo. The
    # tests check each reuse against the analysis itself (_CHECK_PLANS, tests/conftest.py).
    def _plan_key(self, trace, prog, listed, folds, codes):
        segments = tuple(
            (seg.start, seg.stop, seg.post, seg.step is not None, tuple(seg.leaves),
             None if seg.roots is None else seg.roots.tobytes()) if isinstance(seg, _Run)
            else ("grad_none",) + tuple(seg[1]) if type(seg) is list else seg[0]
            for seg in self.segments)
        steps = tuple((i, None if code is None else tuple((k, len(ints)) for k, ints in code))
                      for i, code in codes.items())
        return ("plan", len(registry.OPS), id(self.module), self.dtype.char, self.rows.shape,
                self.rows[:, :SERIAL].tobytes(), prog.shape, prog.tobytes(), self.bints.size,
                listed.tobytes(),
                self.shapes.tobytes(), self.v.size, self.ext_base,
                folds.tobytes(), len(trace.pints), tuple(a.shape for _, a in trace.ext),
                segments, steps)

    _RUN_FIELDS = ("start", "stop", "post", "ustart", "ustop", "grads_may_exist", "grads_written")

    def _runs(self):
        """Each run's fields _analyse sets, then whether its step and host are set (by
        _step_code, before the analysis), by segment index."""
        return tuple((i, tuple(getattr(run, f) for f in self._RUN_FIELDS) +
                      (run.step is not None, run.host is not None), run.fcode, run.bcode, run.sgrad.size)
                     for i, run in enumerate(self.segments) if isinstance(run, _Run))

    def _plan(self, folded):
        """What _analyse left that a model of the same structure gets (copies: the analysis of
        the next model writes into its own). Not pints or bints: their values are the model's
        (parameters' addresses, class targets), but for the int data the bias folds appended
        (folded)."""
        return (self.rows[:, :SERIAL].copy(), self.prog.copy(), self.faddrs.copy(), self.numel_of.copy(),
                folded.copy(), tuple((i, f, fc.copy(), bc.copy(), n) for i, f, fc, bc, n in self._runs()))

    def _take(self, plan, trace, codes):
        rows, prog, faddrs, numel_of, folded, runs = plan
        self.rows[:, :SERIAL] = rows
        self.prog, self.faddrs, self.numel_of = prog.copy(), faddrs.copy(), numel_of.copy()
        if folded.size:
            self.bints = np.concatenate((self.bints, folded))
        self.pints = np.array(list(trace.pints) + [x for code in codes.values() if code is not None
                                                   for _, ints in code for x in ints] + [0], np.int64)
        for i, fields, fcode, bcode, nsgrad in runs:
            run = self.segments[i]
            for f, value in zip(self._RUN_FIELDS, fields):     # (not the step's and host's flags)
                setattr(run, f, value)
            run.fcode, run.bcode, run.sgrad = fcode.copy(), bcode.copy(), np.zeros(nsgrad, self.dtype)

    def _check(self, analysed):
        """Raise if this program, from a plan, differs from analysed, its own analysis."""
        same = all(_equal(getattr(self, k), getattr(analysed, k))
                   for k in ("prog", "pints", "numel_of", "bints", "rows"))
        # (the forward table's entries the program reads: others may have been compiled since)
        same = same and self.faddrs.size == analysed.faddrs.size and \
            _equal(self.faddrs[self.prog[:, P_OP]], analysed.faddrs[analysed.prog[:, P_OP]])
        mine, theirs = self._runs(), analysed._runs()
        same = same and len(mine) == len(theirs) and all(
            i == j and f == g and _equal(fc, gc) and _equal(bc, hc) and n == m
            for (i, f, fc, bc, n), (j, g, gc, hc, m) in zip(mine, theirs))
        if not same:
            raise AssertionError("internal: a program from a reused plan differs from its own analysis")

    def _step_code(self, run, trace):
        """The instructions [(kernel, int data)] of the optimizer step following run, if each
        gradient it reads is one this backward leaves in v (else None: the step then runs as
        a host call)."""
        by_slot = {gslot: e for _, e, gslot in run.leaves if gslot >= 0}

        def slot_of(p, g):
            slot = trace.slots.get(id(g))
            e = by_slot.get(slot)
            if e is None or trace.ext[e][0] is not p or id(trace.ext[e][1]) in trace.arguments:
                return None         # (an argument: a replay's may be another tensor)
            return slot
        code = run.step.plan(slot_of, self.v)
        if code is None:
            run.step = run.host = None
        return code

    def _fuse(self, run, code, at, pints, kernels):
        """Instructions (at `at` in prog) running the optimizer step that follows run inside
        run's call (code: its _step_code), appending their int data to pints; [] if none."""
        if code is None:
            return []
        rows = []
        for kernel, ints in code:
            op = len(self.faddrs) + kernels.setdefault(kernel, len(kernels))
            rows.append([op, NO_INPUT, NO_INPUT, NO_INPUT, 0, -1, -1, -1, -1, -1, 0, 0, len(pints),
                         0, 0])
            pints += ints
        run.ustart, run.ustop = at, at + len(rows)
        return rows

    def _plan_scalars(self, run, backwards):
        """The codes of run_scalars for a run whose instructions are all inline scalar rows, when
        its backward (the program's only one: the forward skips the saves) is from one root and
        reaches only those rows and the leaves it hands gradients to; empty codes otherwise.
        Also only where each operand in v is written once, before it is read, so the backward
        finds it unchanged. Returns (fcode, bcode, gradient buffer); see run_scalars. Numpy
        over the rows, but for the reach (W4's 10k rows: ~5 ms)."""
        none = (_NO_FCODE, _NO_BCODE, np.zeros(0, self.dtype))
        if run.roots is None or backwards != 1 or run.roots.size != 1 or run.stop <= run.start:
            return none
        ins = self.prog[run.start: run.stop]
        addr = self.faddrs[ins[:, P_OP]]
        if (addr >= 0).any():
            return none
        kinds = SCALAR_ADD - addr                       # S_ADD...S_DIV
        outs, xs, ys = ins[:, P_OUT], ins[:, P_X], ins[:, P_Y]
        n = outs.size
        js = np.arange(n)
        when = np.full(self.v.size, n)                  # the instruction writing a slot (n: none)
        when[outs] = js
        if np.unique(outs).size != n:
            return none
        for col in (xs, ys):
            inside = col >= 0
            w = when[col[inside]]
            if ((w >= js[inside]) & (w < n)).any():
                return none
        base = self.ext_base
        at_x, at_y = (np.where(col >= 0, col, base - col - 2) for col in (xs, ys))
        outside = np.unique(-2 - np.concatenate((xs[xs < 0], ys[ys < 0])))
        prev = np.concatenate(([NO_INPUT], outs[:-1]))    # (x and y are never NO_INPUT)
        flags = kinds | np.where(xs == prev, S_X_LAST, 0) | np.where(ys == prev, S_Y_LAST, 0)
        fcode = np.concatenate((
            np.stack((np.full(outside.size, S_EXT), base + outside, outside, 0 * outside), 1),
            np.stack((flags, outs, at_x, at_y), 1))).astype(np.int32)

        # the rows the root reaches, descending (eager's order): these instructions' and leaves
        rows = self.rows
        nrows = rows.shape[0]
        row_of = ins[:, P_ROW]
        recorded = row_of >= 0
        j_of = np.full(nrows, -1)                       # the instruction of a row (-1: none)
        j_of[row_of[recorded]] = js[recorded]
        root = int(run.roots[0])
        col_a, col_b = rows[:, A].tolist(), rows[:, B].tolist()
        need = bytearray(nrows)
        need[root] = 1
        for i in np.sort(row_of[recorded])[::-1].tolist():
            if need[i]:
                if col_a[i] >= 0:
                    need[col_a[i]] = 1
                if col_b[i] >= 0:
                    need[col_b[i]] = 1
        needed = np.frombuffer(need, np.uint8) != 0
        leaf_rows = np.array([r for r, _, _ in run.leaves], np.int64)
        is_leaf = np.zeros(nrows + 1, np.bool_)        # (the last: no row, -1)
        is_leaf[leaf_rows] = True
        order = _at(needed & (j_of >= 0))[::-1]
        jo = j_of[order]
        if j_of[root] < 0 or (needed & (j_of < 0) & ~is_leaf[:nrows]).any() or \
                not needed[leaf_rows].all() or (rows[leaf_rows, OP] != LEAF).any() or \
                (rows[order, OP] != _SCALAR_OPS[kinds[jo]]).any() or (rows[order, FLAGS] & F_MULTI).any():
            return none

        # each gradient term (row, x then y, in eager's order) and where it goes
        m, nl = order.size, leaf_rows.size
        slot = np.zeros(nrows + 1, np.int64)
        slot[order] = np.arange(m)
        slot[leaf_rows] = m + np.arange(nl)
        to = rows[order][:, [A, B]].reshape(-1)        # the term's target row, or -1
        got = to >= 0
        reads = np.bincount(to[got], minlength=nrows + 1)
        hot = leaf_rows[np.argsort(-reads[leaf_rows], kind="stable")[:2]]  # summed in registers
        reg = np.full(nrows + 1, -1)
        reg[hot] = np.arange(hot.size)
        first = np.zeros(to.size, np.bool_)
        first[_at(got)[np.unique(to[got], return_index=True)[1]]] = True
        after = np.concatenate((order[1:], [-1]))[np.arange(to.size) // 2]
        inner = got & ~is_leaf[to]
        carried = inner & (reads[to] == 1) & (after == to)
        dest = np.select([~got, reg[to] >= 0, is_leaf[to] | (inner & ~first), carried],
                         [D_NONE, D_REG0 + reg[to], D_ADD, D_CARRY], D_SET).reshape(m, 2)
        where = np.where((dest == D_SET) | (dest == D_ADD), slot[to].reshape(m, 2), 0)
        go_carried = np.zeros(nrows + 1, np.bool_)
        go_carried[to[carried]] = True
        codes = (kinds[jo] | np.where(go_carried[order], S_GO_CARRIED, 0) | dest[:, 0] << S_DX |
                 dest[:, 1] << S_DY | S_GENERAL)
        # chain rows: the gradient carried in, one term carried on, the other into a register
        leaf_x = dest[:, 1] == D_CARRY
        other = np.where(leaf_x, dest[:, 0], dest[:, 1])
        chain = go_carried[order] & ((dest[:, 0] == D_CARRY) | leaf_x) & (other >= D_REG0)
        codes = np.where(chain, kinds[jo] << 2 | np.where(leaf_x, S_CHAIN_X, 0) | (other - D_REG0), codes)
        header = [slot[hot[0]] if hot.size else -1, slot[hot[1]] if hot.size > 1 else -1, 0, 0, 0, 0]
        bcode = np.concatenate(([header], np.stack((codes, slot[order], at_x[jo], at_y[jo], where[:, 0],
                                                   where[:, 1]), 1))).astype(np.int32)
        return fcode, bcode, np.zeros(m + nl, self.dtype)

    def bind(self, ext, iext):
        """Build each run's argument block for run_block: the addresses of the program's arrays
        and of ext/iext, which the caller keeps (and rewrites in place, never replaces)."""
        for run in self.segments:
            if isinstance(run, _Run):
                backward = run.roots is not None
                run.block = self._block(ext, iext, run.start, run.stop,
                                        run.roots if backward else self.no_roots,
                                        run.gcopy if backward else self.no_roots,
                                        run.post if backward else run.stop, run.ustart, run.ustop,
                                        run.fcode, run.bcode, run.sgrad)
                run.block_ustop = run.ustop

    def _block(self, ext, iext, start, stop, roots, gcopy, post, ustart, ustop, fcode, bcode, sgrad):
        arrays = dict(prog=self.prog, faddrs=self.faddrs, ext=ext, iext=iext, sv=self.sv,
                      shapes=self.shapes, pints=self.pints, rows=self.rows, bints=self.bints,
                      cv=self.cv, roots=roots, seeds=self.seed, addrs=self.addrs, goff=self.goff,
                      gsz=self.gsz, order=self.order, gcopy=gcopy,
                      work=self.work if roots.size else self.no_work, fcode=fcode, bcode=bcode,
                      sgrad=sgrad)
        block = []
        for name in BLOCK_ARRAYS:
            a = arrays[name]
            if not a.flags.c_contiguous:
                raise TraceFailed(f"internal: the program's {name} array is not contiguous")
            block += [address(a), a.shape[0], a.shape[1] if a.ndim == 2 else 0]
        return np.array(block + [start, stop, post, ustart, ustop], np.int64)

    def run(self, ext, iext, tensors):
        """Replay every segment; tensors: the external tensors of this call (ext's owners)."""
        if self.only is not None:       # (the common step: no loop over segments)
            self._only(tensors)
            return
        done = None                 # an optimizer step a run has already done
        try:
            for seg in self.calls:
                if seg.__class__ is _Run:
                    done = self._run(seg, ext, iext, tensors) if seg.fresh is None else \
                        self._run_fresh(seg, tensors)
                    continue
                kind = seg[0]
                if kind == "host":
                    if seg is not done:
                        _, fn, args, kwargs = seg
                        fn(*args, **kwargs)
                elif kind == "draws":
                    v = self.v
                    for make, slots in seg[1]:
                        for (slot, n), a in zip(slots, make()):
                            v[slot: slot + n] = a.reshape(-1)
                else:                                   # grad_none: p.grad = None, for each
                    spare, stores = self.spare, self.stores
                    for e in seg[1]:
                        t = tensors[e]
                        old = t._grad
                        if old is None:
                            continue
                        t._grad = None
                        # a .grad a replay made that nothing else reaches (no reference to it or
                        # its array, no weak one, no view: numpy's views refer to the array
                        # owning the data): the next one new here takes its object and storage
                        # (the backward writes into it), which no one can tell from a fresh one
                        # (carray: C-contiguous, aligned and writeable)
                        known = stores.get(e)
                        if known is not None and _EXACT_COUNTS and type(old) is Tensor and \
                                getrefcount(old) == 2 and not getweakrefcount(old) and \
                                old._base is None:
                            a = old._a
                            if known[0]() is a and getrefcount(a) == 3 and \
                                    getweakrefcount(a) == 1 and a.dtype is known[2] and \
                                    a.shape == known[3] and a.flags.carray:
                                spare[e] = old
        finally:
            self.spare.clear()
            hook.grad_epoch += 1    # (the segments change .grads: no run's last handout holds)

    def _only(self, tensors):
        """Replay a program of one run (self.only) and its optimizer step."""
        run = self.only
        if self._run_fresh(run, tensors) is None and run.host is not None:    # (not ready)
            _, fn, args, kwargs = run.host
            fn(*args, **kwargs)
        for _, fn, args, kwargs in self.hosts_after:
            fn(*args, **kwargs)

    def _call(self, ext, iext, start, stop, roots, gcopy, post, seeds=None):
        return self.module.run_segment(
            self.prog, self.faddrs, self.v, ext, iext, self.sv, self.shapes, self.pints,
            self.rows, self.bints, self.cv, start, stop, roots,
            self.seed if seeds is None else seeds, self.addrs, self.need, self.goff, self.gsz,
            self.order, gcopy, post, 0, 0, self.no_work, _NO_FCODE, _NO_BCODE, self.no_work)

    def gradients(self, roots, seeds, leaves):
        """The backward alone, of a program whose forward ran (node.py): from the rows roots,
        seeded with seeds (flat, in root order), the gradient of each row in leaves (a view of
        this call's buffer, flat), or None where the roots do not reach it."""
        gsz = self.gsz
        gsz[leaves] = -1            # (the backward sizes each row it reaches)
        err, _, g = self._call(self.no_roots, self.no_roots, 0, 0, roots, self.no_roots, 0, seeds)
        if err:
            raise RuntimeError(f"jitgrad.compile: the compiled backward failed (error {err})")
        return [g[o: o + n] if n >= 0 else None
                for o, n in zip(self.goff[leaves].tolist(), gsz[leaves].tolist())]

    def backward_block(self, roots, gcopy):
        """The block of a backward alone (node.py) from roots, adding the gradients of the rows
        gcopy lists where it says; the caller writes the seeds' address and length into it."""
        return self._block(self.no_roots, self.no_roots, 0, 0, roots, gcopy, 0, 0, 0, _NO_FCODE,
                           _NO_BCODE, self.no_work)

    def _run(self, run, ext, iext, tensors):
        """One run's call; returns the host segment of the optimizer step it ran, if any."""
        if self.grad_ext:
            self._refresh(ext, tensors)
        block = run.block
        if run.roots is None:
            if self.module.run_block(block, self.v, self.need) == ERR_FORWARD:
                self._failed(tensors)
            return None
        # one call, the gradients handed to .grad inside it, when each .grad is new or one the
        # kernel can add into (as backward's `grad += g`)
        for e in run.exts if run.grads_may_exist else ():
            if tensors[e]._grad is not None:
                new = self._add_into(run, tensors)
                break
        else:                           # (the common case: every .grad is new)
            new = run.all_new if not (run.adding or self.spare) else self._fresh(run)
        if new is None:
            return self._run_apart(run, ext, iext, tensors)
        ustop, err = self._call_block(run)
        if err and not self._after_backward(run, err):
            self._block_failed(err, tensors)
        if new and run.drops and not err and (run.step is None or ustop != run.ustart):
            new = ()                # (dropped unread after this call's optimizer step)
        if new:                     # the new .grads: copies of their slots (views kept shaped:
            views, addrs = run.views, run.addrs     # a slice and a reshape cost more than a copy)
            spare = self.spare
            for q in new:
                e, view = views[q]
                if addrs[q] < 0:        # written into a spare's storage by the call: as new
                    t = tensors[e]._grad = spare.pop(e)
                    _init(t, t._a, False)
                else:
                    tensors[e]._grad = t = _wrap(view.copy())
                    if e in self.dropped and (e not in self.stores or self.stores[e][0]() is None):
                        self._store(e, t._a)
        if err:
            self._block_failed(err, tensors)
        return self._stepped(run) if ustop != run.ustart else None

    def _run_fresh(self, run, tensors):
        """run right after `p.grad = None` for each of its leaves (run.fresh: (index, ext
        index) per leaf), in one pass: every .grad it hands out is new. The .grad the last call
        handed out, if nothing else reaches it (no reference to it or its array, no weak one,
        no view: numpy's views refer to the array owning the data), is not dropped: it is reset
        as new and the call writes the new values into its storage, which no one can tell from
        a fresh one (carray: C-contiguous, aligned and writeable). Where nothing reached or
        changed a .grad since this run's last call (hook.grad_epoch unmoved), each leaf's
        .grad is still the one it handed out, unreached: no check then."""
        fast = run.epoch == hook.grad_epoch
        run.epoch = -1
        if fast and run.step is None:   # (the steady state of a step without an optimizer)
            ustop, err, new = run.ustart, self.module.run_block(run.block, self.v, self.need), ()
            if not err:
                hook.grad_epoch = run.epoch = hook.grad_epoch + 1
                return None
        else:
            new = () if fast else self._reset_grads(run, tensors)
            ustop, err = self._call_block(run)
        if err and not self._after_backward(run, err):
            for q, e in run.fresh:     # as eagerly: each .grad None when the step raised
                tensors[e]._grad = None
            self._block_failed(err, tensors)
        if new:                     # the others: copies of their slots
            views, handed, addrs, gcopy = run.views, run.handed, run.addrs, run.gcopy
            for q in new:
                e, view = views[q]
                tensors[e]._grad = t = _wrap(view.copy())
                # (a reused storage is written before the ops after the backward: where they
                # write into the gradients, each .grad is a new copy of its slot after them)
                if not run.grads_written:
                    a = t._a
                    handed[q] = known = (a, -address(a), a.dtype, a.shape)
                    addrs[q] = gcopy[3 * q + 2] = known[1]      # (the next call writes there)
        if err:
            self._block_failed(err, tensors)
        stepped = self._stepped(run) if ustop != run.ustart else None
        hook.grad_epoch += 1        # (this call handed out the .grads: the next may skip the checks)
        if not run.grads_written:
            run.epoch = hook.grad_epoch
        return stepped

    @staticmethod
    def _reset_grads(run, tensors):
        """_run_fresh's `p.grad = None` of run's leaves and also_none's, before its call (a
        handed-out .grad nothing reaches is reset, not dropped: see there). Returns the leaves
        whose .grad the call makes anew."""
        addrs, gcopy, handed, new = run.addrs, run.gcopy, run.handed, []
        for e in run.also_none:
            tensors[e]._grad = None
        for q, e in run.fresh:
            t = tensors[e]
            old = t._grad
            if old is not None:
                # (references to old: t._grad, old, getrefcount's argument; to a: old._a,
                # handed's, a, the argument. A view has a weak one, from its base's _views)
                known = handed[q]
                if known is not None and known[0] is (a := old._a) and type(old) is Tensor and \
                        getrefcount(old) == 3 and not getweakrefcount(old) and \
                        getrefcount(a) == 4 and not getweakrefcount(a) and a.dtype is known[2] and \
                        a.shape == known[3] and a.flags.carray:
                    old._node = old._leafvar = -1       # as _init's
                    old._rg = False
                    old._grad = old._ver = old._views = None
                    if addrs[q] != known[1]:
                        addrs[q] = gcopy[3 * q + 2] = known[1]
                    continue
                t._grad = None
            new.append(q)
            if addrs[q]:
                addrs[q] = gcopy[3 * q + 2] = 0
        return new

    def _call_block(self, run):
        """run's call with its optimizer step if the step is ready (else without): returns
        where the step's instructions end (run.ustart: none ran) and the call's error."""
        ustop = run.ustop if run.step is not None and run.step.ready() else run.ustart
        if ustop != run.block_ustop:
            run.block_ustop = run.block[B_START + 4] = ustop
        return ustop, self.module.run_block(run.block, self.v, self.need)

    def _after_backward(self, run, err):
        """Whether run's call stopped at a forward kernel after its backward had handed out the
        gradients (an op after it, as eager's, raises with each .grad set)."""
        return err == ERR_FORWARD and self.pints[-1] - 1 >= run.stop

    def _block_failed(self, err, tensors):
        self.work[:] = 0            # (it may have stopped with the buffer in use)
        if err == ERR_FORWARD:
            self._failed(tensors)
        raise RuntimeError(f"jitgrad.compile: the compiled backward failed (error {err})")

    @staticmethod
    def _stepped(run):
        """After run's call ran its optimizer step: that step's host segment."""
        bump_versions(run.step.bumps)     # as p._write(None) in step()
        run.step.finish()
        return run.host

    def _store(self, e, a):
        """Remember a new .grad's array of leaf e (weakly: its lifetime stays the user's) with
        its address, so a later replay can write into it if it comes back as a spare."""
        self.stores[e] = (weakref.ref(a), -address(a), a.dtype, a.shape)
        self.store_count += 1

    def _fresh(self, run):
        """Write into run's gcopy, for every .grad new (all are), where the call puts it: into
        the storage of leaf's spare (its negated address), or into its slot (0). Returns
        run.all_new."""
        addrs, spare, stores, any_address = run.addrs, self.spare, self.stores, False
        if run.fresh_at == self.store_count and spare.keys() == run.fresh_keys:
            return run.all_new          # (the steady state: the last call's addresses stand)
        for q, e, _ in run.where:
            # (a spare's storage is written before the ops after the backward: if they write
            # into the gradients, the new .grad is the slot's copy after them)
            addr = stores[e][1] if e in spare and not run.grads_written else 0
            if addr != addrs[q]:
                addrs[q] = run.gcopy[3 * q + 2] = addr
            any_address |= addr != 0
        run.adding = any_address
        run.fresh_keys, run.fresh_at = set(spare), self.store_count
        return run.all_new

    def _add_into(self, run, tensors):
        """Write into run's gcopy the address of each existing .grad the call adds into (0 for
        a new one); returns the leaves whose .grad is new, or None if a .grad cannot be added
        into there (or a new one has no slot)."""
        addrs, known, new = run.addrs, run.known, []
        run.adding = True               # (until every address is written)
        run.fresh_at = -1
        for q, e, gslot in run.where:
            grad = tensors[e]._grad
            if grad is None:
                if gslot < 0:
                    return None
                new.append(q)
                addr = 0
            else:
                if gslot >= 0 and run.grads_written:   # (ops would change the slot, not it)
                    return None
                a = grad._a
                if a is not known[q][0]:
                    t = tensors[e]._a
                    if not (a.flags.c_contiguous and a.flags.writeable and
                            a.dtype == self.v.dtype and a.shape == t.shape):
                        return None
                    known[q] = (a, address(a))  # (a kept: the address holds)
                addr = known[q][1]
            if addr != addrs[q]:
                addrs[q] = run.gcopy[3 * q + 2] = addr
        run.adding = len(new) < len(addrs)
        return new

    def _run_apart(self, run, ext, iext, tensors):
        """run's backward with its gradients read in Python (a .grad the kernel cannot add
        into), its post instructions in a second call, and the optimizer step as a host call."""
        start, stop, post = run.start, run.stop, run.post
        err, node, g = self._call(ext, iext, start, stop, run.roots, self.no_roots, stop)
        if err == ERR_FORWARD:
            self._failed(tensors)
        if err:
            raise RuntimeError(f"jitgrad.compile: the compiled backward failed (error {err})")
        v = self.v
        for row, e, gslot in run.leaves:
            t = tensors[e]
            grad = g[self.goff[row]: self.goff[row] + self.gsz[row]].reshape(t._a.shape)
            if t._grad is None:                     # as backward's _accumulate
                t._grad = _wrap(grad.copy())
            else:
                t._grad._a += grad
            if gslot >= 0:
                v[gslot: gslot + t._a.size] = t._grad._a.reshape(-1)
        if post > stop:
            if self.grad_ext:
                self._refresh(ext, tensors)
            if self._call(ext, iext, stop, post, self.no_roots, self.no_roots, post)[0] == ERR_FORWARD:
                self._failed(tensors)
            for _, e, gslot in run.leaves:          # what those ops did to the gradients
                if gslot >= 0:
                    a = tensors[e]._grad._a
                    a[...] = v[gslot: gslot + a.size].reshape(a.shape)
        return None

    def _failed(self, tensors):
        """A forward kernel stopped the replay (ERR_FORWARD): raise the error the eager forward
        raises for the inputs it met (they are in v or the external tensors)."""
        j = int(self.pints[-1]) - 1
        self.pints[-1] = 0
        if self.clean[0] <= j < self.clean[1]:
            raise ReplayStopped
        ins = self.prog[j]
        kernel = registry.OPS[ins[P_OP]].forward_kernel
        ints = self.pints[ins[P_K]:] if ins[P_K] >= 0 else None
        kernel.fails(self._value(ins[P_X], ins[P_XSH], tensors), self._value(ins[P_Y], ins[P_YSH], tensors),
                     int(ins[P_I0]), ints)
        raise RuntimeError(f"jitgrad.compile: {registry.OPS[ins[P_OP]].grad_fn}'s forward kernel stopped "
                           "the replay on input it cannot compute")

    def _value(self, slot, sid, tensors):
        """The array at an operand slot (see engine/replay.py), or None."""
        if slot == NO_INPUT:
            return None
        if slot < 0:
            return tensors[-slot - 2]._a
        shape = tuple(self.shapes[sid + 1: sid + 1 + self.shapes[sid]].tolist())
        return self.v[slot: slot + int(math.prod(shape))].reshape(shape).copy()

    def _refresh(self, ext, tensors):
        """Point the ext entries of gradients read from their tensors at this call's .grad."""
        for k, owner in self.grad_ext.items():
            grad = tensors[owner]._grad
            if grad is not None:
                if not grad._a.flags.c_contiguous or grad._a.shape != tensors[owner]._a.shape:
                    raise RuntimeError("jitgrad.compile: a .grad the step reads was replaced by a "
                                       "non-contiguous or differently shaped tensor")
                tensors[k] = grad
                ext[k] = address(grad._a)


class ReplayStopped(Exception):
    """A forward kernel stopped a replay before it changed anything outside the program but the
    generators its draws advanced (see Program.clean)."""


def address(a):
    """The address of a's data (through a ctypes view: __array_interface__ costs ~2.5x as much,
    as it builds a descr list; that view needs a writable, C-contiguous, non-empty array)."""
    try:
        return _addressof(_c_char_at(a))
    except (TypeError, ValueError, BufferError):
        return a.__array_interface__["data"][0]


_addressof, _c_char_at = ctypes.addressof, ctypes.c_char.from_buffer


def bump_versions(written):
    """Each tensor's version moved n times, as n in-place writes in eager ((tensor, n) each)."""
    plain = hook.tracer is None
    for t, n in written:
        ver = t._ver
        if plain and ver is not None and len(ver) == 2:
            ver[0] += n             # (note_modified's, where no row saved t: no lock needed)
        else:
            with TAPE.lock:
                for _ in range(n):
                    TAPE.note_modified(t)


class _Run:
    """One compiled call: ops start..stop, then, with roots, backward from them, the gradients
    handed to the leaves' .grads (leaves: (row, ext index, slot in v or -1) each), ops
    stop..post (the ops right after the backward: a manual update) and the optimizer step that
    follows, if it can run there (step: its optim._ReplayStep; host: its host segment, which
    the replay then skips; ustart..ustop: its instructions, see Program._fuse)."""

    def __init__(self, start, stop, roots=None, leaves=()):
        self.start, self.stop, self.post, self.roots, self.leaves = start, stop, stop, roots, leaves
        self.step = self.host = None
        self.ustart = self.ustop = self.block_ustop = 0
        self.grads_written = False  # whether ops stop..post write into a gradient's slot
        self.grads_may_exist = True     # whether a leaf's .grad may be set when the call starts
        self.block = None
        if roots is not None:       # [row, slot, address of an existing .grad or 0] per leaf
            self.gcopy = np.array([x for r, _, gslot in leaves for x in (r, gslot, 0)], np.int64)
            self.where = [(q, e, gslot) for q, (_, e, gslot) in enumerate(leaves)]
            self.exts = [e for _, e, _ in leaves]
            # every .grad new, when each leaf has a slot (else None: the call cannot make them)
            self.all_new = list(range(len(leaves))) if all(g >= 0 for _, _, g in leaves) else None
            self.adding = False                     # whether gcopy holds an address now
            self.addrs = [0] * len(leaves)          # gcopy's addresses, as Python ints
            self.known = [(None, 0)] * len(leaves)  # (a .grad's array, its address) per leaf
            # _fresh's last spares and Program.store_count then (-1: addrs written otherwise)
            self.fresh_keys, self.fresh_at = None, -1
            self.views = None               # per leaf: (ext index, its slot in v, shaped) or None
        self.drops = False      # whether the step sets each .grad it hands out to None, unread
        self.backward_at = -1   # the index of its backward among the trace's events
        self.fresh = None       # (index, ext index) per leaf, if `p.grad = None` of them folds in
        self.also_none = ()     # then the ext indices of the others that `p.grad = None` is of
        self.epoch = -1         # hook.grad_epoch after its last call handed out every leaf's .grad
        self.handed = None      # then per leaf: (the array of the .grad the last call handed out,
                                # its negated address, dtype, shape), or None


# (int32: W4's codes then take 400 kB, not 800: its step slowed by a half when another process
# shared the cache)
_NO_FCODE = np.zeros((0, 4), np.int32)
_NO_BCODE = np.zeros((0, 6), np.int32)
_SCALAR_OPS = np.array((ADD, SUB, MUL, DIV))    # by S_ADD...S_DIV
_SCALAR_MARKS = np.array((SCALAR_ADD, SCALAR_SUB, SCALAR_MUL, SCALAR_DIV), np.int64)  # their faddrs

_NONE = np.zeros(0, np.int64)
_PICKS = [None]
_IS_PRODUCT = [None]
_PRODUCTS = np.array(sorted(PRODUCTS), np.int64)


# results of the pure passes below, by their arguments' values: the models of a sweep share one
# structure, so a new model's passes are lookups. Keyed by the values themselves (no digest to
# collide), bounded by bytes (W4's arrays are MBs).
_MEMO = collections.OrderedDict()
_MEMO_BYTES = [0]
_MEMO_LIMIT = 1 << 25
_MEMO_LOCK = threading.Lock()


_CHECK_PLANS = [False]      # tests: build each program from a reused plan twice, and compare


def _memo_get(key):
    with _MEMO_LOCK:            # (programs may be built in several threads)
        hit = _MEMO.get(key)
        if hit is not None:
            _MEMO.move_to_end(key)
    return hit


def _memo_put(key, value):
    with _MEMO_LOCK:
        if key not in _MEMO:
            _MEMO[key] = value
            _MEMO_BYTES[0] += _nbytes(key) + _nbytes(value)
        while _MEMO_BYTES[0] > _MEMO_LIMIT:
            oldest, dropped = _MEMO.popitem(last=False)
            _MEMO_BYTES[0] -= _nbytes(oldest) + _nbytes(dropped)


def _memo(*writes):
    """Cache a pass that is a function of its arguments' values alone (arrays: dtype, shape and
    contents) and of the op table's size; it may write into the arrays at positions `writes`,
    which a cached call writes as the pass did."""
    def wrap(fn):
        @functools.wraps(fn)
        def cached(*args):
            key = (fn, len(registry.OPS)) + tuple((a.dtype.char, a.shape, a.tobytes())
                                                  if isinstance(a, np.ndarray) else a for a in args)
            hit = _memo_get(key)
            if hit is not None:
                for k, written in zip(writes, hit[1]):
                    args[k][...] = written
                return _copied(hit[0])
            result = fn(*args)
            _memo_put(key, (_copied(result), [args[k].copy() for k in writes]))
            return result
        return cached
    return wrap


def _equal(a, b):
    return a.dtype == b.dtype and np.array_equal(a, b)


def _unwritten(n, dtype):
    """Storage for sv, not zeroed: a replay writes each slot before it reads it (the forward
    kernels write v, the saves are copied in at once, the ext slots are filled by their S_EXT
    codes), and np.zeros of memory the heap reuses is a memset (W2's sv: ~140 us of a ~950 us
    Program). tests/conftest.py fills it with nan instead, so a read before a write shows."""
    return np.empty(n, dtype)


def _copied(x):
    """x with its arrays copied (the caller may write into what a pass returns)."""
    if isinstance(x, np.ndarray):
        return x.copy()
    return tuple(map(_copied, x)) if isinstance(x, tuple) else x


def _nbytes(x):
    """The bytes of the arrays and bytes in x (a key or a cached result)."""
    if isinstance(x, np.ndarray):
        return x.nbytes
    if isinstance(x, bytes):
        return len(x)
    return sum(map(_nbytes, x)) if isinstance(x, (tuple, list)) else 0


class _Ranges:
    """Ranges [lo, hi) of slots, asked which ranges meet them: by the ranges sorted by lo and
    their running greatest hi (O(log n) a question, whatever the size of v)."""

    def __init__(self, lo, hi):
        some = hi > lo
        order = np.argsort(lo[some], kind="stable")
        self.lo = lo[some][order]
        self.reach = np.maximum.accumulate(hi[some][order]) if order.size else order

    def meet(self, lo, hi):
        """Whether each [lo, hi) shares a slot with some range."""
        k = self.lo.searchsorted(hi)           # the ranges starting before hi: the first k
        return (hi > lo) & (k > 0) & (self.reach[np.maximum(k - 1, 0)] > lo) if self.lo.size \
            else np.zeros(lo.shape, np.bool_)


@_memo(0, 1)
def _read_in_place(prog, rows, numel_of, traced, handed):
    """Point the saved values of rows that save operands (Op.saved) at the operands in v,
    and let their forward kernels save nothing: a copy less to write and to read back. Only
    where the saved value is the operand as is: in v (not outside the trace), of the
    output's shape (not broadcast; a product's operands are never broadcast), and never
    written after the op that computed it (no in-place update, optimizer step or .grad
    hand-off writes there). A product whose other operand is outside v (a parameter) reads
    the one in v in place and its forward saves the other alone (P_GRADS keeps its bit).
    traced: the instructions before it are the trace's (those after: optimizer steps); handed:
    the [lo, hi) of each slot a .grad is handed out from. Writes prog and rows."""
    picks = _save_picks()
    pick = picks[np.minimum(prog[:, P_OP], len(picks) - 1), prog[:, P_GRADS] & 3]
    j = _at((prog[:, P_ROW] >= 0) & (prog[:, P_S] >= 0) & (pick[:, 0] >= 0))
    if not j.size:
        return
    # v's ranges written by anything but the instruction computing them
    later = np.arange(prog.shape[0]) >= traced
    into = _at((prog[:, P_OUT] >= 0) & ((prog[:, P_OUT] == prog[:, P_X]) | later))
    written = _Ranges(np.concatenate((prog[into, P_OUT], handed[:, 0])),
                      np.concatenate((prog[into, P_OUT] + prog[into, P_N], handed[:, 1])))
    ins = prog[j]
    r = ins[:, P_ROW]
    cols = ins[:, [P_X, P_Y, P_OUT]]
    shapes = ins[:, [P_XSH, P_YSH, P_OSH]]
    product = _is_product()[np.minimum(ins[:, P_OP], len(picks) - 1)]
    numels = numel_of[shapes]
    # a second saved value goes at I1 (F_APART): only where I1 holds nothing else (I0 neither,
    # but for the products, whose I0 is their own: m and the batch)
    free = (rows[r, FLAGS] & F_INTS == 0) & ((rows[r, I0] == 0) | (product & (rows[r, I1] == 0)))
    two = pick[j, 1] >= 0
    at, good = [], []
    for c in (0, 1):                 # the first saved value, then the second (if any)
        which = pick[j, c]
        k = np.maximum(which, 0)
        rng = np.arange(j.size)
        slot = cols[rng, k]
        size = numels[rng, k]
        ok = (slot >= 0) & ((shapes[rng, k] == ins[:, P_OSH]) | product)
        ok &= ~written.meet(slot, slot + size)
        at.append(slot)
        good.append(ok & (which >= 0))
    whole = good[0] & (good[1] | ~two) & (~two | free)
    rows[r[whole], SAVED_AT] = at[0][whole]
    both = whole & two
    rows[r[both], I1] = at[1][both]
    rows[r[both], FLAGS] |= F_APART
    prog[j[whole], P_S] = -1
    # products reading one operand in place: the forward copies the other to the row's saves
    bit = np.where(prog[j, P_GRADS] & 1, 1, 2)      # the first saved value's input bit
    first = product & two & free & good[0] & ~good[1]
    second = product & two & free & good[1] & ~good[0]
    rows[r[first], I1] = ins[first, P_S]         # x, saved alone at the row's saves
    rows[r[first], SAVED_AT] = at[0][first]
    prog[j[first], P_GRADS] &= ~bit[first]
    rows[r[second], I1] = at[1][second]          # y stays at the row's saves
    prog[j[second], P_GRADS] &= ~2
    rows[r[first | second], FLAGS] |= F_APART


@_memo(0)
def _mark_scalars(prog, numel_of, base):
    """Give each one-element + - * / of two one-element operands, its output in v, an op
    code past the kernels' whose faddrs entry is SCALAR_ADD...SCALAR_DIV: run_ops computes it
    inline (base: the first such code; faddrs then gains _SCALAR_MARKS). Last: the folds
    above read the op codes. Writes prog."""
    ops = prog[:, P_OP]
    one = ((prog[:, P_N] == 1) & (prog[:, P_OUT] >= 0) & (prog[:, P_X] != NO_INPUT) &
           (prog[:, P_Y] != NO_INPUT) & (numel_of[prog[:, P_XSH]] == 1) &
           (numel_of[prog[:, P_YSH]] == 1))
    for k, op in enumerate((ADD, SUB, MUL, DIV)):
        prog[one & (ops == op), P_OP] = base + k


@_memo()
def _numel_table(shapes, *sids):
    """An array giving the element count of each shape id in sids at that id, and 0 at -1 (its
    last element): numel_of[sids] for any of them."""
    table = np.zeros(shapes.size + 1, np.int64)
    sids = np.concatenate(sids)
    for sid in _distinct(sids[sids >= 0], shapes.size).tolist():
        table[sid] = numel(shapes, sid)
    return table


def _is_product():
    """[op] -> whether it is a product (MM...: its operands are never broadcast), as _save_picks'
    rows (the last: any other op)."""
    if _IS_PRODUCT[0] is None or len(_IS_PRODUCT[0]) != len(registry.OPS) + 1:
        table = np.zeros(len(registry.OPS) + 1, np.bool_)
        table[_PRODUCTS] = True
        _IS_PRODUCT[0] = table
    return _IS_PRODUCT[0]


def _save_picks():
    """[op, grads] -> which operands (0 x, 1 y, 2 out; -1 none) a row saves as its first and
    second value, for the ops whose rows save what their formulas read (registry.Op.saved)."""
    if _PICKS[0] is not None and len(_PICKS[0]) == len(registry.OPS) + 1:
        return _PICKS[0]
    picks = np.full((len(registry.OPS) + 1, 4, 2), -1, np.int64)   # (the last: any other op)
    for op in registry.OPS:
        if op.plan is not None and "node" not in op.reads:    # (its arguments follow the saves)
            for grads in (1, 2, 3):
                names = op.saved(grads)
                # (a condition is never in v: the forward writes it, 0/1, from the int data)
                if len(names) <= 2 and "cond" not in names:
                    for c, name in enumerate(names):
                        picks[op.code, grads, c] = ("x", "y", "out").index(name)
    _PICKS[0] = picks
    return picks


def _int64s(values):
    """A list of ints as a new int64 array (struct converts ints ~3x faster than np.array)."""
    return np.frombuffer(struct.pack(f"{len(values)}q", *values), np.int64).copy()


def _at(mask):
    """The indices where a 1-d mask is true (np.flatnonzero, without its Python-level calls:
    a small program's analysis is mostly the cost of calls)."""
    return mask.nonzero()[0]


def _distinct(values, bound):
    """The distinct values in [0, bound), sorted (np.unique hashes each value: slower)."""
    seen = np.zeros(bound, np.bool_)
    seen[values] = True
    return _at(seen)


@_memo(0)
def _fold_bias_adds(rows, shapes, reads, at):
    """Rewrite each x @ W + b of the step's graph (an MM row, the EXPAND row broadcasting b to
    the product's shape and their ADD row) into one MM_BIAS row in the ADD's place, and return
    its int data, to append to bints at `at` (reads: the rows read but by columns A and B: the
    inputs multi-input rows list, the backwards' roots). Its backward reads the gradient once,
    for b's sums over the rows and the two products, where the ADD copied it into two slots, the
    EXPAND summed one and both slots were zeroed again (W1: its compiled call ~10% shorter). The
    MM and EXPAND rows stay, unreached (the forward still runs the MM's instruction, which saves
    what the new row reads). Only where each gradient gets exactly the terms the three rows gave it, in
    their order: the MM is 2-d by 2-d; the MM and EXPAND rows feed the ADD alone and are no
    backward's root; b is one row of the output (shape (n,), (1, n)...: EXPAND sums it row by
    row, as MM_BIAS); and every row between the MM and the ADD is the EXPAND or a leaf (no
    gradient flows between them, so the terms moved to the ADD's place keep their order)."""
    expand = registry.EXPAND
    ops, a, b = rows[:, OP], rows[:, A], rows[:, B]
    reads = np.concatenate((a, b, reads))
    uses = np.bincount(np.where(reads < 0, rows.shape[0], reads), minlength=rows.shape[0] + 1)
    # (the last: no row, -1)
    extra = []
    for j in _at((ops == ADD) & (a >= 0) & (b >= 0)).tolist():
        i, e = (a[j], b[j]) if ops[a[j]] == MM else (b[j], a[j])
        if ops[i] != MM or ops[e] != expand or uses[i] != 1 or uses[e] != 1 or a[e] < 0 or e < i:
            continue
        between = ops[i + 1: j]
        if ((between != LEAF) & (np.arange(i + 1, j) != e)).any():
            continue
        mm_row, bias = rows[i], a[e]
        m, out = mm_row[I0], rows[j, SHAPE_ID]
        if mm_row[FLAGS] & F_INTS or m >> 32 or shapes[out] != 2 or mm_row[SHAPE_ID] != out:
            continue
        nn = shapes[out + 2]
        bdims = shapes[rows[bias, SHAPE_ID] + 1: rows[bias, SHAPE_ID] + 1 + shapes[rows[bias, SHAPE_ID]]]
        if m == 0 or nn == 0 or (bdims[:-1] != 1).any() or (bdims.size and bdims[-1] != nn) or \
                (not bdims.size and nn != 1):
            continue
        x, w = mm_row[A], mm_row[B]
        kk = shapes[rows[w if w >= 0 else x, SHAPE_ID] + (1 if w >= 0 else 2)]
        if kk == 0:
            continue
        # where _mm reads them: W at SAVED_AT (when x needs a gradient), x at I1 (F_APART) or after W
        s = mm_row[SAVED_AT]
        x_at = mm_row[I1] if mm_row[FLAGS] & F_APART else s + (kk * nn if x >= 0 else 0)
        inputs = [(bias, 0, 0)] + ([(x, 1, s)] if x >= 0 else []) + ([(w, 2, x_at)] if w >= 0 else [])
        rows[j, OP] = MM_BIAS
        rows[j, A] = rows[j, B] = -1
        rows[j, SAVED_AT] = -1
        rows[j, I0] = m
        rows[j, I1] = at + len(extra)
        rows[j, FLAGS] = (rows[j, FLAGS] & F_F64) | F_MULTI | F_INTS
        extra += [len(inputs)] + [v for entry in inputs for v in entry]
    return np.array(extra, np.int64)


@njit(cache=True, error_model="numpy")
def scaled_update(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    """out = x - y * c (I0 0) or x + y * c (I0 1), out being x: `p -= lr * p.grad` in one pass.
    Each product is rounded before the sum (Numba contracts no multiply-add without fastmath),
    so the values are those of the two ops it replaces."""
    c = cv[prog[j, P_C]]
    if prog[j, P_I0]:
        for e in range(out.size):
            out[e] = x[e] + y[e] * c
    else:
        for e in range(out.size):
            out[e] = x[e] - y[e] * c


_RENUMBER_FAILURES = {
    1: "float32 and float64 tensors in one graph",
    2: "a custom autograd.Function or a tensor hook in the graph (its Python backward runs in "
       "eager backward only)",
    3: "the function's graph continues into one recorded before it"}


@njit(cache=True)
def _renumbered(tape, r0, r1, tape_ints, i0, i1, saved0, vsize, prog, wide, cut):
    """The step's rows r0..r1 of the global tape (tape) as the program's: the rows recorded
    before it that they reach (leaves of tensors from outside: refs, sorted; with cut, any row,
    copied as a leaf: the graph a caller's backward continues into) copied first, then
    its own, every row number renumbered to match, saved-value offsets moved from the arena's
    (saved0 its first) to after v (vsize), int data offsets from tape_ints' (i0) to bints' (the
    step's int data, copied). prog's recorded instructions get their row, saved-values offset
    and int data offset rewritten (in place). Returns (rows, bints, listing: where bints lists
    multi-input rows' inputs, refs, status: 0, or the reason the step cannot replay, a key of
    _RENUMBER_FAILURES)."""
    n = r1 - r0
    bints = tape_ints[i0:i1].copy()
    some, every = 0, -1                 # flags some row has, flags every row has
    count = 0                           # multi-input rows' inputs
    for k in range(r0, r1):
        some |= tape[k, FLAGS]
        every &= tape[k, FLAGS]
        if tape[k, FLAGS] & F_MULTI:
            count += bints[tape[k, I1] - i0]
    none = np.zeros(0, np.int64)
    if (~every if wide else some) & F_F64:
        return tape[r0:r0], bints, none, none, 1
    if some & F_PAUSE:
        return tape[r0:r0], bints, none, none, 2
    listing = np.empty(count, np.int64)
    count = 0
    for k in range(r0, r1):
        if tape[k, FLAGS] & F_MULTI:
            at = tape[k, I1] - i0
            for q in range(bints[at]):
                listing[count] = at + 1 + 3 * q
                count += 1
    # the rows before the step it reads: distinct, in order (lo..hi), and each one's rank there
    earlier = np.empty(2 * n + listing.size, np.int64)
    m = 0
    for k in range(r0, r1):
        for r in (tape[k, A], tape[k, B]):
            if 0 <= r < r0:
                earlier[m] = r
                m += 1
    for q in listing:
        if 0 <= bints[q] < r0:
            earlier[m] = bints[q]
            m += 1
    lo, hi = r0, -1
    for r in earlier[:m]:
        lo, hi = min(lo, r), max(hi, r)
    rank = np.empty(max(hi - lo + 1, 0), np.int64)
    rank[:] = -1
    for r in earlier[:m]:
        rank[r - lo] = 0
    nrefs = 0
    for r in range(rank.size):
        if rank[r] == 0:
            if tape[lo + r, OP] != LEAF and not cut:
                return tape[r0:r0], bints, none, none, 3
            rank[r] = nrefs
            nrefs += 1
    refs = np.empty(nrefs, np.int64)
    shift = nrefs - r0
    width = tape.shape[1]
    rows = np.empty((nrefs + n, width), np.int64)
    for r in range(rank.size):
        if rank[r] >= 0:
            refs[rank[r]] = lo + r
            for c in range(width):      # (not rows[k] = tape[r]: Numba compiles that for seconds)
                rows[rank[r], c] = tape[lo + r, c]
            if rows[rank[r], OP] != LEAF:   # (cut: a non-leaf input as a leaf)
                rows[rank[r], OP] = LEAF
                rows[rank[r], A] = rows[rank[r], B] = rows[rank[r], SAVED_AT] = -1
                rows[rank[r], I0] = rows[rank[r], I1] = 0
                rows[rank[r], FLAGS] &= F_F64
    for k in range(n):
        row = rows[nrefs + k]
        for c in range(width):
            row[c] = tape[r0 + k, c]
        for col in (A, B):
            r = row[col]
            if r >= 0:
                row[col] = rank[r - lo] if r < r0 else r + shift
        if row[SAVED_AT] >= 0:
            row[SAVED_AT] += vsize - saved0
        if row[FLAGS] & F_INTS:
            row[I1] -= i0
        row[FLAGS] &= ~F_FREED
    for q in listing:
        r = bints[q]
        if r >= 0:
            bints[q] = rank[r - lo] if r < r0 else r + shift
    for j in range(prog.shape[0]):
        if prog[j, P_ROW] >= 0:
            r = prog[j, P_ROW] + shift
            prog[j, P_ROW] = r
            prog[j, P_S] = rows[r, SAVED_AT]
            if rows[r, FLAGS] & F_INTS:     # (its offset in the global tape's int data before)
                prog[j, P_I1] = rows[r, I1]
    return rows, bints, listing, refs, 0


codegen.load_lightly(sys.modules[__name__])


def _foldable_updates(prog, bounds, names):
    """The a of each unrecorded `t = g * c` followed by an in-place `p -= t` (or +=, also
    `p.sub_(g, alpha=c)`) that _fold_scaled_updates may rewrite into one scaled_update
    instruction reading g, where nothing else reads t: a manual SGD update reads and writes each
    parameter once, not t twice (W2: ~1/8 of its step was these two passes over W0). bounds:
    the runs' instruction bounds; names: the ints that may name t (the int data of multi-input
    ops and loss weights, the function's results; any equal int counts, targets too)."""
    a = _scaled_update_pairs(prog, bounds)
    return a[[t not in names for t in prog[a, P_OUT].tolist()]]


def _fold_scaled_updates(prog, a, base):
    """prog with the pairs at a (_foldable_updates) folded into scaled_update instructions (op
    code base), and a: the indices of the instructions removed (the runs' bounds move down by
    those before)."""
    return (_scaled_updates(prog, a, base), a) if a.size else (prog, _NONE)


@_memo()
def _scaled_updates(prog, a, base):
    """prog with the pairs at a, a + 1 folded (see _fold_scaled_updates)."""
    b = a + 1
    ops = prog[:, P_OP]
    prog = prog.copy()
    prog[b, P_I0] = ops[b] == ADD
    prog[b, P_OP] = base
    prog[b, P_Y] = prog[a, P_X]
    prog[b, P_C] = prog[a, P_C]
    keep = np.ones(prog.shape[0], np.bool_)
    keep[a] = False
    return prog[keep]


@_memo()
def _scaled_update_pairs(prog, bounds):
    """The a of each `t = g * c` (a) and `p -= t` or += (a + 1) _fold_scaled_updates may fold:
    no run starts or ends between them (a backward or host call) and no other instruction reads
    t."""
    ops = prog[:, P_OP]
    a = _at((ops[:-1] == MUL_SCALAR) & (prog[:-1, P_ROW] < 0) & (prog[:-1, P_OUT] >= 0))
    b = a + 1
    t = prog[a, P_OUT]
    ok = (((ops[b] == ADD) | (ops[b] == SUB)) & (prog[b, P_ROW] < 0) & (prog[b, P_OUT] == prog[b, P_X]) &
          (prog[b, P_Y] == t) & (prog[b, P_N] == prog[a, P_N]) & (prog[b, P_YSH] == prog[b, P_XSH]))
    edges = set(bounds)
    ok &= np.array([x not in edges for x in b.tolist()], np.bool_)
    # g and p both from outside may overlap (views of one array): then p's writes could reach
    # g's elements not yet read, which the two ops read first
    g, p = prog[a, P_X], prog[b, P_X]
    ok &= (g >= 0) | (p >= 0) | (g == p)
    # its two uses here make 2
    ok &= _counts(np.concatenate((prog[:, P_X], prog[:, P_Y], prog[:, P_OUT])), t) == 2
    return a[ok]


def _counts(values, keys):
    """How many times each of keys occurs in values."""
    if not keys.size:
        return np.zeros(0, np.int64)
    order = np.sort(keys)
    at = np.minimum(order.searchsorted(values), order.size - 1)
    counts = np.bincount(at[order[at] == values], minlength=order.size)
    return counts[order.searchsorted(keys)]


def _segments(events, renumber, steps):
    """The calls a replay makes: _Runs (ops start..stop then, with roots, backward, and ops
    stop..post: the ops right after a backward, a manual update, fused into the same call);
    host calls and ``p.grad = None`` between them, as traced. An optimizer step right after a
    backward (steps: event index -> its optim._ReplayStep) may run in the backward's call
    (Program._fuse). Random draws depend on nothing the step computes: ("draws", [(make,
    slots)...]) runs them just before the call whose ops follow them, in their traced order."""
    segments, start, count, open_bwd, draws = [], 0, 0, None, []

    def emit(seg):
        nonlocal draws
        if draws:
            segments.append(("draws", draws))
            draws = []
        segments.append(seg)

    def close():
        nonlocal start
        if count > start:
            if open_bwd is not None:
                open_bwd.post = count
            else:
                emit(_Run(start, count))
            start = count

    for i, ev in enumerate(events):
        if ev[0] == "ops":
            count += ev[1]
            continue
        if ev[0] == "draw":
            if open_bwd is not None:       # ops after it must not run in the backward's call
                close()
                open_bwd = None
            draws.append(ev[1:])
            continue
        if ev[0] != "backward":       # (a backward's segment runs the ops before it)
            close()
        bwd, open_bwd = open_bwd, None
        if ev[0] == "backward":
            leaves = [(renumber(r), e, gslot) for r, e, gslot in ev[2]]
            open_bwd = _Run(start, count, np.array([renumber(r) for r in ev[1]], np.int64),
                            leaves)
            open_bwd.backward_at = i
            emit(open_bwd)
        elif ev[0] == "grad_none" and segments and type(segments[-1]) is list and not draws:
            segments[-1][1].append(ev[1])     # consecutive `p.grad = None`: one segment
            segments[-1][2] = i
        else:       # (a grad_none list: its ext indices, the index of its last event)
            emit(["grad_none", [ev[1]], i] if ev[0] == "grad_none" else ev)
            if bwd is not None and i in steps:
                bwd.step, bwd.host = steps[i], ev
        start = count
    close()
    if draws:                      # drawn but never read: still drawn, as eagerly
        segments.append(("draws", draws))
    return segments

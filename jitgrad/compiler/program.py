"""A finished trace as a replayable program: flat buffers, the trace's own tape rows, and the
list of segments a call runs (compiled forward+backward runs, and host calls in between).

The rows the step recorded are copied out of the global tape, renumbered from 0 (leaf rows of
tensors from outside, recorded before the step, are copied first) with their saved values and
int data, so a replay never touches the global tape: the forward kernels rewrite the saved
values in place and loop.py's backward replays the copy.
"""
import numpy as np

from ..engine import codegen
from ..engine.loop import A, B, F_F64, F_FREED, F_INTS, F_MULTI, FLAGS, I1, LEAF, OP, SAVED_AT, WIDTH
from ..engine.replay import P_ROW, P_S
from ..engine.tape import TAPE
from ..tensor import _wrap
from .trace import TraceFailed

_F64 = np.dtype(np.float64)


class Program:
    def __init__(self, trace):
        if trace.dtype is None:
            raise TraceFailed("the function computes nothing compiled replay can record")
        self.dtype = dtype = trace.dtype
        r0, i0, lens0 = trace.start
        r1, i1, lens1 = trace.end
        rows = np.frombuffer(TAPE.rows, np.int64).reshape(-1, WIDTH)[r0:r1].copy()
        wide = F_F64 if dtype == _F64 else 0
        if ((rows[:, FLAGS] & F_F64) != wide).any():
            raise TraceFailed("float32 and float64 tensors in one graph")
        bints = TAPE.ints[i0:i1].copy()
        a32, _, a64, _ = TAPE._by_dtype()
        sv = (a64 if wide else a32)[lens0[dtype]: lens1[dtype]].copy()

        # rows recorded before the step that the step's rows reach: leaves only, copied first
        refs = set(rows[:, A][(rows[:, A] >= 0) & (rows[:, A] < r0)].tolist())
        refs |= set(rows[:, B][(rows[:, B] >= 0) & (rows[:, B] < r0)].tolist())
        multi = np.flatnonzero(rows[:, FLAGS] & F_MULTI)
        for r in multi.tolist():
            at = rows[r, I1] - i0
            for e in range(bints[at]):
                v = bints[at + 1 + 3 * e]
                if v < r0:
                    refs.add(int(v))
        old = np.frombuffer(TAPE.rows, np.int64).reshape(-1, WIDTH)
        refs = sorted(refs)
        if any(old[r, OP] != LEAF for r in refs):
            raise TraceFailed("the function's graph continues into one recorded before it")
        pre = old[refs].copy() if refs else np.zeros((0, WIDTH), np.int64)
        shift = len(refs) - r0
        where = {r: k for k, r in enumerate(refs)}

        def renumber(v):
            return where[v] if v < r0 else v + shift
        for c in (A, B):
            col = rows[:, c]
            for r in np.flatnonzero(col >= 0).tolist():
                col[r] = renumber(int(col[r]))
        saved = rows[:, SAVED_AT] >= 0
        rows[saved, SAVED_AT] -= lens0[dtype]
        ints = (rows[:, FLAGS] & F_INTS) != 0
        rows[ints, I1] -= i0
        for r in multi.tolist():
            at = rows[r, I1]
            for e in range(bints[at]):
                bints[at + 1 + 3 * e] = renumber(int(bints[at + 1 + 3 * e]))
        rows[:, FLAGS] &= ~F_FREED
        self.rows = np.ascontiguousarray(np.concatenate((pre, rows)))
        self.sv = sv if sv.size else np.zeros(1, dtype)
        self.bints = bints if bints.size else np.zeros(1, np.int64)

        prog = np.array(trace.prog, np.int64).reshape(-1, 15)
        for j in range(prog.shape[0]):
            r = prog[j, P_ROW]
            if r >= 0:
                prog[j, P_ROW] = r = r + shift
                prog[j, P_S] = self.rows[r, SAVED_AT]
        self.prog = prog
        self.pints = np.array(trace.pints or [0], np.int64)
        self.cv = np.array(trace.cv or [0.0], np.float64)
        self.shapes = np.frombuffer(TAPE.shapes, np.int64).copy()
        self.v = np.zeros(max(trace.vsize, 1), dtype)

        # segments: runs of ops up to and including a backward; host calls between them
        self.segments = []
        start = 0
        for ev in trace.events:
            kind = ev[0]
            if kind == "op":
                continue
            stop = self._ops_before(trace, ev)
            if kind == "backward":
                roots = np.array([renumber(r) for r in ev[1]], np.int64)
                leaves = [(renumber(r), e) for r, e in ev[2]]
                self.segments.append(("run", start, stop, roots, leaves))
            else:
                if stop > start:
                    self.segments.append(("run", start, stop, None, ()))
                self.segments.append(ev)
            start = stop
        if prog.shape[0] > start:
            self.segments.append(("run", start, prog.shape[0], None, ()))

        n = self.rows.shape[0]
        self.need = np.zeros(n + 1, np.uint8)
        self.goff = np.zeros(n + 1, np.int64)
        self.gsz = np.zeros(n + 1, np.int64)
        self.order = np.zeros(n + 1, np.int64)
        self.prev = np.zeros(0, np.int64)
        self.seed = np.ones(1, dtype)
        self.no_roots = np.zeros(0, np.int64)
        self.grad_ext = trace.grad_ext      # ext index -> ext index of the tensor whose .grad
        self.module = codegen.interpreter()
        self.faddrs = codegen.compile_forwards(dtype, sorted(set(prog[:, 0].tolist())))
        wanted = np.zeros(len(codegen.registry.OPS), np.uint8)
        wanted[np.unique(self.rows[:, OP])] = 1
        wanted[0] = 0
        codegen.compile_rules(dtype, wanted)
        self.addrs = codegen.rule_addresses(dtype)

    @staticmethod
    def _ops_before(trace, ev):
        """How many ops the trace had run when event ev happened."""
        n = 0
        for e in trace.events:
            if e is ev:
                return n
            if e[0] == "op":
                n += 1
        return n

    def run(self, ext, iext, tensors):
        """Replay every segment; tensors: the external tensors of this call (ext's owners)."""
        mod = self.module
        for seg in self.segments:
            kind = seg[0]
            if kind == "run":
                _, start, stop, roots, leaves = seg
                for k, owner in self.grad_ext.items():      # this call's .grad tensors
                    grad = tensors[owner]._grad
                    if grad is not None:
                        tensors[k] = grad
                        ext[k] = grad._a.reshape(-1)
                err, node, g, marked, nodes, missing = mod.run_segment(
                    self.prog, self.faddrs, self.v, ext, iext, self.sv, self.shapes, self.pints,
                    self.rows, self.bints, self.cv, start, stop,
                    self.no_roots if roots is None else roots, self.seed, self.addrs, self.need,
                    self.goff, self.gsz, self.order, self.prev)
                if roots is None:
                    continue
                self.prev = marked
                if err:
                    raise RuntimeError(f"jitgrad.compile: the compiled backward failed ({err})")
                for row, e in leaves:
                    t = tensors[e]
                    grad = g[self.goff[row]: self.goff[row] + self.gsz[row]].reshape(t._a.shape)
                    if t._grad is None:
                        t._grad = _wrap(grad.copy())
                    else:
                        t._grad._a += grad
            elif kind == "host":
                _, fn, args, kwargs = seg
                fn(*args, **kwargs)
            else:                                   # grad_none
                tensors[seg[1]]._grad = None

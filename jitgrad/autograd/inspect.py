"""Looking at the tape: the rows a tensor depends on, as records, text, a graphviz graph or a
matplotlib drawing, and a step-by-step replay of backward in plain Python."""
import inspect as _pyinspect
import math

import numpy as np

from ..engine import registry
from ..engine.loop import (COLUMNS, WIDTH, OP, A, B, SAVED_AT, SHAPE_ID, I0, I1, FLAGS, SERIAL, F_SAVED, F_FREED, F_F64,
                           F_INTS, F_MULTI, LEAF, view_args)
from ..engine.tape import TAPE, FREED_MSG
from ..tensor import Tensor
from .differentiate import _as_tuple, _make_grads, _root_rows

#: Names of a tape row's int64 columns, in order (the ``raw`` field of ``tape_rows``): the op code,
#: the two input rows (-1: none), where the saved values start in the arena (-1: none), the output
#: shape's id, two op-specific attributes, flag bits (1: saved values, 2: freed by a backward) and
#: a serial number that survives compaction.
ROW_COLUMNS = COLUMNS


def _inputs(rows, ints, i):
    """The rows node i takes gradients to, with the int data offset of each (multi-input rows)."""
    if rows[i, FLAGS] & F_MULTI:
        o = int(rows[i, I1])
        return [(int(ints[o + 1 + 3 * e]), o + 1 + 3 * e) for e in range(int(ints[o]))]
    k = int(rows[i, I1]) if rows[i, FLAGS] & F_INTS else -1
    return [(int(rows[i, c]), k) for c in (A, B) if rows[i, c] >= 0]


def _snapshot():
    with TAPE.lock:
        rows = np.frombuffer(TAPE.rows, np.int64).reshape(-1, WIDTH).copy()
        arena, low_at = TAPE.saved_values()     # one array, as a mixed-dtype replay sees it
        if low_at >= 0:
            rows[(rows[:, SAVED_AT] >= 0) & (rows[:, FLAGS] & F_F64 == 0), SAVED_AT] += low_at
        return (rows, np.frombuffer(TAPE.shapes, np.int64).copy(), arena.copy(),
                TAPE.ints[: TAPE.ilen].copy(), dict(TAPE.dirty))


def _reached(rows, ints, roots):
    need = np.zeros(max(roots) + 1, bool)
    need[roots] = True
    for i in range(max(roots), -1, -1):
        if need[i]:
            for v, _ in _inputs(rows, ints, i):
                need[v] = True
    return need


def tape_rows(*tensors):
    """The tape rows the given tensors depend on, oldest first, as dicts with keys
    row, op (grad_fn name, or 'Leaf' / 'Unbroadcast'), code, inputs, shape, saved (the saved
    values, flat), attrs (I0, I1), flags and raw (the row's int64 columns as stored, named by
    ``ROW_COLUMNS``)."""
    rows, shapes, arena, ints, _ = _snapshot()
    roots = [t._node if t._node >= 0 else t._leafvar for t in tensors if isinstance(t, Tensor)]
    roots = [r for r in roots if r >= 0]
    if not roots:
        return []
    need = _reached(rows, ints, roots)
    starts = sorted(((i, rows[i, SAVED_AT]) for i in range(len(rows)) if rows[i, SAVED_AT] >= 0),
                    key=lambda e: (e[1], e[0]))
    ends = {i: (starts[k + 1][1] if k + 1 < len(starts) else len(arena)) for k, (i, _) in enumerate(starts)}
    out = []
    for i in np.flatnonzero(need):
        r = rows[i]
        op = registry.OPS[r[OP]]
        sid = r[SHAPE_ID]
        flags = [f for f, bit in (("saved", F_SAVED), ("freed", F_FREED)) if r[FLAGS] & bit]
        out.append(dict(row=int(i), code=int(r[OP]),
                        op="Leaf" if op.code == registry.LEAF else (op.grad_fn or "Unbroadcast"),
                        inputs=[v for v, _ in _inputs(rows, ints, i)],
                        shape=tuple(int(d) for d in shapes[sid + 1: sid + 1 + shapes[sid]]),
                        saved=arena[r[SAVED_AT]: ends[i]].copy() if r[SAVED_AT] >= 0 else np.zeros(0, arena.dtype),
                        attrs=(int(r[I0]), int(r[I1])), flags=flags, raw=r.copy()))
    return out


def format_tape(*tensors, max_values=4):
    """The Wengert list behind tensors as text, one row per line: row index, op (with its op
    code), input rows, output shape, the first max_values saved values, flags."""
    table = []
    for r in tape_rows(*tensors):
        vals = r["saved"]
        shown = ", ".join(f"{v:.4g}" for v in vals[:max_values]) + (", ..." if len(vals) > max_values else "")
        table.append((str(r["row"]), f"{r['op']} ({r['code']})", ",".join(map(str, r["inputs"])) or "-",
                      str(list(r["shape"])), f"[{shown}]" if len(vals) else "-", " ".join(r["flags"])))
    head = ("row", "op", "inputs", "shape", "saved", "flags")
    widths = [max([len(h)] + [len(t[k]) for t in table]) for k, h in enumerate(head)]
    lines = []
    for t in [head] + table:
        cells = [t[0].rjust(widths[0])] + [c.ljust(w) for c, w in zip(t[1:-1], widths[1:-1])] + [t[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def to_dot(*tensors):
    """The graph behind tensors in graphviz dot syntax (edges point from input to consumer)."""
    lines = ["digraph tape {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for r in tape_rows(*tensors):
        shape = "ellipse" if r["op"] == "Leaf" else "box"
        lines.append(f'  n{r["row"]} [label="{r["row"]}: {r["op"]}\\n{list(r["shape"])}", shape={shape}];')
        for v in r["inputs"]:
            lines.append(f"  n{v} -> n{r['row']};")
    lines.append("}")
    return "\n".join(lines)


def tape_stats():
    """The whole tape's size: {'rows': rows recorded, 'saved_values': elements in the arenas,
    'arena_dtype': float64 if any saved value is float64, else float32}. Rows stay until
    compaction drops those no live tensor reaches, so the counts show what recording (or not
    recording, under no_grad) did."""
    with TAPE.lock:
        return {"rows": len(TAPE.outs), "saved_values": int(TAPE.alen + TAPE.olen),
                "arena_dtype": "float64" if TAPE._by_dtype()[3] else "float32"}


def trace_backward(tensors, grad_tensors=None):
    """Replay backward from tensors step by step in plain Python and return the steps.

    It runs what ``backward`` runs: the same seeds (``grad_tensors`` as in ``backward``, checked
    the same way), the same visiting order and each op's own backward rule from the op table, but
    as plain Python over copies of the tape, so nothing is freed and no ``.grad`` changes. Meant
    for small graphs (the rules loop over elements in Python).

    Returns a list of dicts in the order the interpreter visits rows: first every op row reached,
    newest first, each with keys row, op, shape, grad (the gradient the row received, shaped like
    its output) and sends ({input row: the gradient this step added to it}); then the leaf rows,
    whose grad is what the compiled backward would accumulate into their ``.grad``.
    """
    outputs = _as_tuple(tensors)
    if grad_tensors is None:
        grad_tensors = [None] * len(outputs)
    elif isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors]
    seeds = _make_grads(outputs, list(grad_tensors))
    with TAPE.lock:
        roots = _root_rows(outputs)
        rows, shapes, arena, ints, dirty = _snapshot()
    dims = {}

    def dims_of(i):
        sid = rows[i, SHAPE_ID]
        return tuple(int(d) for d in shapes[sid + 1: sid + 1 + shapes[sid]])

    reached = np.flatnonzero(_reached(rows, ints, roots))[::-1]
    nodes = [int(i) for i in reached if rows[i, OP] != LEAF]
    leaves = [int(i) for i in reached if rows[i, OP] == LEAF]
    for i in nodes:
        if rows[i, FLAGS] & F_SAVED:
            if rows[i, FLAGS] & F_FREED:
                raise RuntimeError(FREED_MSG)
            if int(rows[i, SERIAL]) in dirty:
                raise RuntimeError(dirty[int(rows[i, SERIAL])])
    goff = np.full(len(rows), -1, np.int64)
    gsz = np.zeros(len(rows), np.int64)
    total = 0
    for i in nodes + leaves:
        dims[i] = dims_of(i)
        goff[i] = total
        gsz[i] = int(math.prod(dims[i]))
        total += gsz[i]
    g = np.zeros(total, arena.dtype)
    for r, seed in zip(roots, seeds):
        g[goff[r]: goff[r] + gsz[r]] += np.asarray(seed, arena.dtype).reshape(-1)

    def grad_of(i):
        return g[goff[i]: goff[i] + gsz[i]].reshape(dims[i]).copy()

    steps = []
    for i in nodes:
        code = int(rows[i, OP])
        op = registry.OPS[code]
        ins = list(dict.fromkeys(v for v, _ in _inputs(rows, ints, i)))
        before = {v: grad_of(v) for v in ins}
        received = grad_of(i)
        if rows[i, FLAGS] & F_MULTI:       # the rule runs once per input, as in loop.backward
            calls = [(int(goff[v]), -1, k, v, -1) for v, k in _inputs(rows, ints, i)]
        else:
            a, b = int(rows[i, A]), int(rows[i, B])
            calls = [(int(goff[a]) if a >= 0 else -1, int(goff[b]) if b >= 0 else -1,
                      int(rows[i, I1]) if rows[i, FLAGS] & F_INTS else -1, a, b)]
        for ga, gb, k, va, vb in calls if op.rule is not None else ():
            args = (g, int(goff[i]), ga, gb, int(gsz[i]), arena, int(rows[i, SAVED_AT]), rows, i, shapes,
                    ints, k, va, vb)
            if "go" in _pyinspect.signature(op.rule).parameters:
                op.rule(*view_args(*args))
            else:
                op.rule(*args)
        steps.append(dict(row=i, op=op.grad_fn or "Unbroadcast", shape=dims[i], grad=received,
                          sends={v: grad_of(v) - before[v] for v in ins}))
    for i in leaves:
        steps.append(dict(row=i, op="Leaf", shape=dims[i], grad=grad_of(i), sends={}))
    return steps


def draw(*tensors, ax=None):
    """Draw the graph behind tensors with matplotlib, in columns from the leaves (left) to the
    outputs (right): one box per tape row labelled ``row: op`` and its shape, leaves rounded and
    blue, rows holding saved values yellow, arrows from input to consumer (two arrows when an op
    uses an input twice, as in ``y * y``; an arrow that skips columns is routed between the boxes).
    Returns the Axes (a new figure sized to the graph when ax is None).

    Needs matplotlib (``pip install matplotlib``); raises ImportError without it, so callers can
    fall back to ``format_tape`` or ``to_dot``."""
    try:
        import matplotlib.pyplot as plt
        from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    except ImportError as e:
        raise ImportError("jitgrad.autograd.draw needs matplotlib (pip install matplotlib); "
                          "format_tape() and to_dot() show the same graph as text") from e
    rows = tape_rows(*tensors)
    info = {r["row"]: r for r in rows}
    # columns: each row as far right as its consumers allow (so a leaf sits next to its use),
    # the outputs at their longest path from a leaf
    col, users = {}, {r["row"]: [] for r in rows}
    for r in rows:                                   # oldest first: inputs come before consumers
        col[r["row"]] = 1 + max((col[v] for v in r["inputs"]), default=-1)
        for v in r["inputs"]:
            users[v].append(r["row"])
    for r in reversed(rows):
        if users[r["row"]]:
            col[r["row"]] = min(col[u] for u in users[r["row"]]) - 1
    # an edge that skips columns passes through a waypoint in each column between its ends
    edges = []                                       # (input, consumer, waypoints, arrows)
    ins = {v: list(dict.fromkeys(r["inputs"])) for v, r in info.items()}
    outs = {v: list(dict.fromkeys(u)) for v, u in users.items()}
    for r in rows:
        for v in dict.fromkeys(r["inputs"]):
            way = [("via", v, r["row"], c) for c in range(col[v] + 1, col[r["row"]])]
            chain = [v] + way + [r["row"]]
            for p, q in zip(chain, chain[1:]):
                if q in way:
                    col[q] = q[3]
                    ins[q], outs[q] = [p], []
                if p in way:
                    outs[p] = [q]
            if way:
                outs[v] = [way[0] if u == r["row"] else u for u in outs[v]]
                ins[r["row"]] = [way[-1] if u == v else u for u in ins[r["row"]]]
            edges.append((v, r["row"], way, r["inputs"].count(v)))
    layers = {}
    for node in col:
        layers.setdefault(col[node], []).append(node)
    # order within a column: two sweeps placing each node near the mean height of its neighbours
    slot = {n: k - (len(layer) - 1) / 2 for layer in layers.values() for k, n in enumerate(layer)}
    for nbrs, cols in ((ins, sorted(layers)), (outs, sorted(layers, reverse=True))):
        for c in cols:
            layer = layers[c]
            key = {n: float(np.mean([slot[m] for m in nbrs[n]])) if nbrs[n] else slot[n]
                   for n in layer}
            layer.sort(key=lambda n: key[n])
            slot.update({n: k - (len(layer) - 1) / 2 for k, n in enumerate(layer)})
    labels = {v: f"{v}: {r['op']}\n{list(r['shape'])}" for v, r in info.items()}
    chars = max((len(line) for t in labels.values() for line in t.split("\n")), default=8)
    ncol = max(layers, default=0) + 1
    nrow = max((len(v) for v in layers.values()), default=1)
    bw, bh = 0.8, 0.5                                # box size in data units (column pitch 1)
    if ax is None:
        col_in = (0.08 * chars + 0.3) / bw           # inches per column so labels fit at 9 pt
        fig = plt.figure(figsize=(col_in * ncol, 0.9 * nrow + 0.3))
        ax = fig.add_axes((0, 0, 1, 1))
    pos = {n: (col[n], slot[n]) for n in col}
    for v, u, way, count in edges:
        (x0, y0), (x1, y1) = pos[v], pos[u]
        pts = [(x0 + bw / 2, y0)]
        for w in way:
            pts += [(pos[w][0] - bw / 2, pos[w][1]), (pos[w][0] + bw / 2, pos[w][1])]
        if len(pts) > 1:
            ax.plot(*zip(*pts), color="0.3", lw=1, zorder=1)
        for rad in ((0.3, -0.3) if count > 1 else (0.0,)):
            ax.add_patch(FancyArrowPatch(pts[-1], (x1 - bw / 2, y1), arrowstyle="-|>",
                                         mutation_scale=12, color="0.3", lw=1,
                                         connectionstyle=f"arc3,rad={rad}", zorder=1))
    for v, r in info.items():
        x, y = pos[v]
        leaf = r["op"] == "Leaf"
        face = "#dbeafe" if leaf else ("#fde68a" if len(r["saved"]) else "#f3f4f6")
        ax.add_patch(FancyBboxPatch((x - bw / 2, y - bh / 2), bw, bh, fc=face, ec="0.3", zorder=2,
                                    boxstyle="round,pad=0,rounding_size=0.12" if leaf else "square,pad=0"))
        ax.text(x, y, labels[v], ha="center", va="center", fontsize=9, family="monospace", zorder=3)
    ax.set_xlim(-0.5, ncol - 0.5)
    ax.set_ylim(-nrow / 2, nrow / 2)
    ax.set_axis_off()
    return ax

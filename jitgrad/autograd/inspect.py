"""Looking at the tape: the rows a tensor depends on, as records, text, or a graphviz graph."""
import numpy as np

from ..engine import registry
from ..engine.loop import WIDTH, OP, A, B, S, SH, I0, I1, FL, F_SAVED, F_FREED
from ..engine.tape import TAPE
from ..tensor import Tensor


def tape_rows(*tensors):
    """The tape rows the given tensors depend on, oldest first, as dicts with keys
    row, op (grad_fn name, or 'Leaf' / 'Unbroadcast'), code, inputs, shape, saved (the saved
    values, flat), attrs (I0, I1) and flags."""
    with TAPE.lock:
        rows = np.frombuffer(TAPE.rows, np.int64).reshape(-1, WIDTH).copy()
        arena = TAPE.arena[: TAPE.alen].copy()
        shapes = np.frombuffer(TAPE.shapes, np.int64).copy()
    roots = [t._node if t._node >= 0 else t._leafvar for t in tensors if isinstance(t, Tensor)]
    roots = [r for r in roots if r >= 0]
    if not roots:
        return []
    need = np.zeros(max(roots) + 1, bool)
    need[roots] = True
    for i in range(max(roots), -1, -1):
        if need[i]:
            for c in (A, B):
                if rows[i, c] >= 0:
                    need[rows[i, c]] = True
    starts = [(i, rows[i, S]) for i in range(len(rows)) if rows[i, S] >= 0]
    ends = {i: (starts[k + 1][1] if k + 1 < len(starts) else len(arena)) for k, (i, _) in enumerate(starts)}
    out = []
    for i in np.flatnonzero(need):
        r = rows[i]
        op = registry.OPS[r[OP]]
        sid = r[SH]
        flags = [f for f, bit in (("saved", F_SAVED), ("freed", F_FREED)) if r[FL] & bit]
        out.append(dict(row=int(i), code=int(r[OP]),
                        op="Leaf" if op.code == registry.LEAF else (op.grad_fn or "Unbroadcast"),
                        inputs=[int(v) for v in (r[A], r[B]) if v >= 0],
                        shape=tuple(int(d) for d in shapes[sid + 1: sid + 1 + shapes[sid]]),
                        saved=arena[r[S]: ends[i]].copy() if r[S] >= 0 else np.zeros(0, arena.dtype),
                        attrs=(int(r[I0]), int(r[I1])), flags=flags))
    return out


def format_tape(*tensors, max_values=4):
    """The Wengert list behind tensors as text, one row per line."""
    lines = [f"{'row':>4}  {'op':<38}{'inputs':<10}{'shape':<12}{'saved':<28}flags"]
    for r in tape_rows(*tensors):
        vals = r["saved"]
        shown = ", ".join(f"{v:.4g}" for v in vals[:max_values]) + (", ..." if len(vals) > max_values else "")
        lines.append(f"{r['row']:>4}  {r['op'] + ' (' + str(r['code']) + ')':<38}"
                     f"{','.join(map(str, r['inputs'])) or '-':<10}{str(list(r['shape'])):<12}"
                     f"{'[' + shown + ']' if len(vals) else '-':<28}{' '.join(r['flags'])}")
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

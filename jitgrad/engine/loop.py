"""The reverse interpreter, written as plain Python.

codegen.py copies these functions and the op table's backward rules into ``_interpreter.py`` and
decorates them with ``@njit(cache=True)``. Keeping everything the compiled code needs in one
generated file makes Numba's per-file cache key exact.

Rules are not called through a dispatcher: ``backward`` receives ``addrs``, the address of each
op's compiled entry (0: not compiled yet, -1: the op has no rule), and calls through it with
``call_rule``. Each entry is compiled separately and only when a backward first meets its op, so
cold-start compile time grows with the ops a program uses, not with the size of the op table.
Every entry has the offsets signature (see jitgrad/ops/__init__.py); a views-style rule is reached through a
generated shim that builds its views with ``view_args``. The few rules inlined into the loop
(codegen.INLINED) are called through ``call_fast`` instead (their "address" is a small id, below
FAST_MAX).
``call_rule`` and ``call_fast`` are defined by the generated module.

Tape row layout (int64): see the column constants. A row is also a variable: row i's output is
variable i. A row flagged F_INTS keeps integer data (indices, offsets) in the int arena at I1. A
row flagged F_MULTI has any number of inputs, listed in its int data as ``[n, (var, role, param) *
n]``; its rule is called once per input needing a gradient, with k at that input's triple.
"""
import numpy as np

# A row's columns, the one vocabulary for them (autograd.ROW_COLUMNS, docs/design.md): OP indexes
# the op table; A/B are the rows gradients flow to (-1: none); SAVED_AT is the offset of the node's
# saved values in its dtype's arena (-1: none); SHAPE_ID is the output shape's offset in the shape
# table; I0/I1 are op-specific integer attributes; FLAGS holds the F_ bits below; SERIAL is a
# global serial that survives compaction (grad_fn objects and in-place bookkeeping refer to nodes
# by it). Nodes whose saved tensors were modified in place are listed by serial in Tape.dirty.
COLUMNS = ("op", "a", "b", "saved_at", "shape_id", "i0", "i1", "flags", "serial")
OP, A, B, SAVED_AT, SHAPE_ID, I0, I1, FLAGS, SERIAL = range(len(COLUMNS))
WIDTH = len(COLUMNS)
LEAF = 0                      # op code of a leaf variable: no rule, it collects a gradient
F_SAVED = 1                   # the node saved tensors (so a freed graph cannot replay it)
F_FREED = 2                   # backward ran through it without retain_graph
F_INTS = 8                    # I1 is the offset of the node's data in the int arena
F_MULTI = 16                  # inputs are listed in the int data (A and B are -1)
F_F64 = 32                    # a float64 node: its saved values are in the float64 arena, and
                              # a graph reaching it replays in float64
F_PAUSE = 64                  # a Python node: the replay stops before it (a Function's backward,
                              # tensor hooks) and Python resumes it (see replay)
F_APART = 128                 # compiled replay: the node's two saved values are the operands
                              # themselves, the first at SAVED_AT, the second at I1 (see Program)
FAST_MAX = 4096               # address table entries 1..FAST_MAX-1 are not addresses but the ids
                              # of rules the loop calls directly (call_fast); real ones are larger
ERR_FREED = 1
ERR_DIRTY = 2
ERR_RULE = 3                  # some needed op's rule is not compiled yet: missing says which
ERR_WIDE = 4                  # the graph needs a float64 replay (node: WIDE_ONLY or WIDE_MIXED)
WIDE_ONLY = 1                 # ... over the float64 arena alone
WIDE_MIXED = 2                # ... over both arenas (it reaches float32 rows' saved values)
NARROW = -2                   # low_at of a float32 replay (see backward)
ERR_PAUSE = 5                 # the replay stopped at a Python node (node: its position in order)
ERR_NAN = 6                   # anomaly mode: the node at that position produced a nan
ERR_FORWARD = 7               # compiled replay: a forward kernel met input it cannot compute (a
                              # singular matrix); the replay's status word names the instruction
CHECK_NAN = 1                 # replay's mode bits: anomaly mode's nan check after each node,
PROFILE = 2                   # and per op counts and clock ticks (stats[0], stats[1]),
ZERO_USED = 4                 # and each node's slot zeroed once its rule read it (see backward)


def ticks():
    """A clock in the compiled loop (the generated module defines it as the CPU's cycle counter)."""
    return 0


def read_ticks():
    """ticks() from Python (the profiler calibrates it against time.perf_counter_ns)."""
    return ticks()


def dims(shapes, sid):
    return shapes[sid + 1: sid + 1 + shapes[sid]]


def numel(shapes, sid):
    n = 1
    for k in range(shapes[sid]):
        n *= shapes[sid + 1 + k]
    return n


def bcast_accumulate(big_dims, small_dims, into_small, scale, dst, src, weights):
    """Accumulate between a tensor of shape big_dims and one broadcastable to it.

    into_small: dst (small) += sum of src (big) over broadcast axes   (unbroadcast, expand rule)
    otherwise:  dst (big)   += src (small) broadcast * weights        (sum / mean / norm rules)
    small_dims may have fewer dims (leading 1s implied) or size-1 dims. weights is big-shaped,
    or empty for all ones.
    """
    nd = big_dims.shape[0]
    off = nd - small_dims.shape[0]
    if not into_small and src.shape[0] == 1:
        # a full reduction's gradient (sum, mean): the general loop's arithmetic without its four
        # index arrays (each an allocation, ~60 ns; a training step's loss has several)
        c = src[0] * scale
        if weights.size:
            for j in range(dst.shape[0]):
                dst[j] += c * weights[j]
        else:
            for j in range(dst.shape[0]):
                dst[j] += c
        return
    if into_small:        # small is big's trailing dims (a bias): the same order, no index arithmetic
        lead = 0
        while lead < small_dims.shape[0] and small_dims[lead] == 1:
            lead += 1
        p = 1
        trailing = True
        for d in range(lead, small_dims.shape[0]):
            p *= small_dims[d]
            if small_dims[d] != big_dims[off + d]:
                trailing = False
        if trailing and p > 0:
            for o in range(src.shape[0] // p):
                for i in range(p):
                    dst[i] += src[o * p + i] * scale
            return
    sstride = np.zeros(nd, np.int64)
    st = 1
    total = 1
    for d in range(nd - 1, -1, -1):
        total *= big_dims[d]
        if d >= off:
            sd = small_dims[d - off]
            if sd != 1:
                sstride[d] = st
            st *= sd
    if total == 0:
        return
    # merge neighbouring dims whose small strides continue each other (both broadcast, or
    # contiguous): the inner loop then runs over long stretches with a fixed stride (0 or 1),
    # which LLVM vectorises; the order of the additions is unchanged
    dims = np.ones(max(nd, 1), np.int64)
    strides = np.zeros(max(nd, 1), np.int64)
    m = 0
    for d in range(nd):
        if m > 0 and strides[m - 1] == sstride[d] * big_dims[d]:
            dims[m - 1] *= big_dims[d]
            strides[m - 1] = sstride[d]
        else:
            dims[m] = big_dims[d]
            strides[m] = sstride[d]
            m += 1
    m = max(m, 1)
    inner = dims[m - 1]
    step = strides[m - 1]
    idx = np.zeros(m, np.int64)
    s = 0
    j = 0
    for _ in range(total // inner):
        if into_small:
            if step == 0:
                for i in range(inner):
                    dst[s] += src[j + i] * scale
            else:
                for i in range(inner):
                    dst[s + i] += src[j + i] * scale
        elif weights.size:
            if step == 0:
                c = src[s] * scale
                for i in range(inner):
                    dst[j + i] += c * weights[j + i]
            else:
                for i in range(inner):
                    dst[j + i] += src[s + i] * scale * weights[j + i]
        elif step == 0:
            c = src[s] * scale
            for i in range(inner):
                dst[j + i] += c
        else:
            for i in range(inner):
                dst[j + i] += src[s + i] * scale
        j += inner
        d = m - 2
        while d >= 0:               # the next row: an odometer over the outer dims
            idx[d] += 1
            s += strides[d]
            if idx[d] < dims[d]:
                break
            s -= strides[d] * dims[d]
            idx[d] = 0
            d -= 1


def kept_dims(go, da, mask):
    """The dims of a reduction's result with the reduced ones kept as 1 (da: the input's, mask:
    the reduced dims), as bcast_accumulate broadcasts go from them; da itself when go is one
    value, which bcast_accumulate spreads without reading dims (a copy would be an allocation
    per call, and a training step's loss has several full sums)."""
    if go.shape[0] == 1:
        return da
    small = da.copy()
    for d in range(da.shape[0]):
        if (mask >> d) & 1:
            small[d] = 1
    return small


def permute_accumulate(in_dims, perm, dst, src):
    """dst (input layout) += src, where src is the input permuted by perm (out[d] = in[perm[d]])."""
    nd = in_dims.shape[0]
    istride = np.zeros(nd, np.int64)
    st = 1
    for d in range(nd - 1, -1, -1):
        istride[d] = st
        st *= in_dims[d]
    odims = np.zeros(nd, np.int64)
    ostr = np.zeros(nd, np.int64)
    for d in range(nd):
        odims[d] = in_dims[perm[d]]
        ostr[d] = istride[perm[d]]
    idx = np.zeros(nd, np.int64)
    s = 0
    for j in range(st):
        dst[s] += src[j]
        d = nd - 1
        while d >= 0:
            idx[d] += 1
            s += ostr[d]
            if idx[d] < odims[d]:
                break
            s -= ostr[d] * odims[d]
            idx[d] = 0
            d -= 1


def view_args(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    """The arguments of a views-style rule (see jitgrad/ops/__init__.py), from the offsets signature."""
    empty = g[:0]
    noi = ints[:0]
    return (g[o: o + n], g[a: a + numel(shapes, rows[va, SHAPE_ID])] if a >= 0 else empty,
            g[b: b + numel(shapes, rows[vb, SHAPE_ID])] if b >= 0 else empty,
            sv[s:] if s >= 0 else sv[:0], ints[k:] if k >= 0 else noi,
            dims(shapes, rows[i, SHAPE_ID]), dims(shapes, rows[va, SHAPE_ID]) if va >= 0 else noi,
            dims(shapes, rows[vb, SHAPE_ID]) if vb >= 0 else noi, rows[i])


def mark_reachable(rows, ints, roots, top):
    need = np.zeros(top + 1, np.uint8)
    for r in roots:
        need[r] = 1
    for i in range(top, -1, -1):
        if need[i]:
            a = rows[i, A]
            b = rows[i, B]
            if a >= 0:
                need[a] = 1
            if b >= 0:
                need[b] = 1
            if rows[i, FLAGS] & F_MULTI:
                o = rows[i, I1]
                for e in range(ints[o]):
                    need[ints[o + 1 + 3 * e]] = 1
    return need


def is_dirty(dirty, serial):
    # dirty is sorted; a binary search keeps the check O(log n) per saved node
    lo = 0
    hi = dirty.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if dirty[mid] < serial:
            lo = mid + 1
        else:
            hi = mid
    return lo < dirty.shape[0] and dirty[lo] == serial


def backward(rows, shapes, arena, ints, roots, seeds, free_graph, dirty, addrs, need, goff, gsz,
             order, prev, low_at, mode, stats, work=None):
    """Replay the tape in reverse from roots, seeded with seeds (flat, in root order): marked,
    run_backward's work for Python, which keeps marked past the next call (the next call's prev).
    Returns (error, node, grads, marked, nodes, missing), see run_backward."""
    missing = np.zeros(addrs.shape[0], np.uint8)
    err, node, g, count, nleaf = run_backward(rows, shapes, arena, ints, roots, seeds, free_graph,
                                              dirty, addrs, need, goff, gsz, order, prev, low_at,
                                              mode, stats, work, missing)
    marked = np.concatenate((order[:count], order[order.shape[0] - nleaf:]))
    return err, node, g, marked, count, missing


def run_backward(rows, shapes, arena, ints, roots, seeds, free_graph, dirty, addrs, need, goff,
                 gsz, order, prev, low_at, mode, stats, work, missing):
    """Replay the tape in reverse from roots, seeded with seeds (flat, in root order), allocating
    nothing but the gradient buffer when work is None or too small (a compiled replay calls it
    every step: each allocation costs ~50 ns).

    work: all zeros, and large enough, for the gradient buffer (a compiled replay's, reused by
    every call: a fresh megabyte per call costs ~30 us of zeroing through the cache); mode's
    ZERO_USED then zeroes each node's slot again once its rule has read it (while it is in cache),
    so only the leaves' slots are left for the caller to zero.

    Each dtype has its own arena. low_at says what arena holds: NARROW, the float32 arena (a
    float32 replay); -1, the float64 arena; >= 0, all the values the graph can reach, float32
    rows' at SAVED_AT + low_at (a mixed graph, or a tape holding one dtype: then nothing is checked).
    A graph that does not fit returns ERR_WIDE before anything ran.

    need/goff/gsz/order are work buffers at least as long as the tape, reused across calls so a
    backward costs O(its graph), not O(tape): need must be zero except at the rows in prev (the
    previous call's result), which are cleared first. Leaf rows are collected as they are found
    rather than scanned for, so parameters recorded long ago do not lengthen the scan.

    Returns (error, node, grads, nodes, leaves): grads is one flat buffer holding the gradient of
    every row reachable from the roots, row i's at goff[i]: goff[i] + gsz[i]; order[:nodes] lists
    those rows but the leaves, which are order[order.shape[0] - leaves:] (backward's marked: the
    two, the nodes first); need[i] stays set for them until the next call. On ERR_RULE nothing
    ran and missing[op] is 1 for each op whose rule must be compiled first (missing: all zeros,
    as long as addrs, or empty when the caller only needs the error). On ERR_PAUSE / ERR_NAN the
    replay stopped at position node of marked (see replay); Python resumes it with replay().
    """
    rows = unowned(rows)      # (views without reference counts: see codegen's unowned)
    shapes = unowned(shapes)
    need = unowned(need)
    goff = unowned(goff)
    gsz = unowned(gsz)
    order = unowned(order)
    for r in prev:
        need[r] = 0
    # One pass over the rows, in descending order, marks what the roots reach and, while each
    # marked row is in cache, does what needs it before anything runs: the rule check, the
    # freed/modified check, the float64 check and the node's slot in the gradient buffer (the
    # passes these were cost a fresh 10k-node graph ~12 ns per node in cache misses).
    count = 0        # order[:count]: non-leaf rows in descending order; leaves fill from the end
    nleaf = 0
    cap = order.shape[0]
    pending = 0
    top = 0
    for r in roots:
        top = max(top, r)
        if not need[r]:
            need[r] = 1
            if rows[r, OP] == LEAF:
                nleaf += 1
                order[cap - nleaf] = r
            else:
                pending += 1
    nmissing = 0
    bad = 0          # the first node in order that cannot replay: ERR_FREED or ERR_DIRTY,
    bad_at = -1      # and the row
    check_wide = low_at < 0
    wide = False              # a float64 row is reached
    narrow_saves = False      # a float32 row with saved values is reached
    total = 0
    i = top
    while pending > 0:
        if need[i]:
            op = rows[i, OP]
            if op != LEAF:
                pending -= 1
                order[count] = i
                count += 1
                fl = rows[i, FLAGS]
                multi = fl & F_MULTI
                nin = ints[rows[i, I1]] if multi else 2
                for e in range(nin):       # inline, not a helper: a call per input cost ~70 ns/node
                    if multi:
                        v = ints[rows[i, I1] + 1 + 3 * e]
                    else:
                        v = rows[i, A] if e == 0 else rows[i, B]
                    if v >= 0 and not need[v]:
                        need[v] = 1
                        if rows[v, OP] == LEAF:
                            nleaf += 1
                            order[cap - nleaf] = v
                        else:
                            pending += 1
                if addrs[op] == 0:
                    if op < missing.shape[0]:
                        missing[op] = 1
                    nmissing += 1
                if fl & F_SAVED and bad_at < 0:
                    if fl & F_FREED:
                        bad = ERR_FREED
                        bad_at = i
                    elif dirty.size and is_dirty(dirty, rows[i, SERIAL]):
                        bad = ERR_DIRTY
                        bad_at = i
                if check_wide:
                    if fl & F_F64:
                        wide = True
                    elif rows[i, SAVED_AT] >= 0:
                        narrow_saves = True
                n = numel(shapes, rows[i, SHAPE_ID])
                goff[i] = total
                gsz[i] = n
                total += n
        i -= 1
    for k in range(cap - nleaf, cap):       # the leaves' slots after the nodes', in marked order
        i = order[k]
        if check_wide and rows[i, FLAGS] & F_F64:
            wide = True
        n = numel(shapes, rows[i, SHAPE_ID])
        goff[i] = total
        gsz[i] = n
        total += n
    empty = arena[:0]
    if (wide and low_at == NARROW) or (narrow_saves and low_at == -1):
        return ERR_WIDE, WIDE_MIXED if narrow_saves else WIDE_ONLY, empty, count, nleaf
    if nmissing:
        return ERR_RULE, -1, empty, count, nleaf
    if bad:
        return bad, bad_at, empty, count, nleaf
    if work is None or work.size < total:
        g = np.zeros(total, arena.dtype)
    else:
        g = work[:total]
    gv = unowned(g)
    pos = 0
    for r in roots:
        at = goff[r]        # (a plain sum as the index: codegen compiles it unsigned)
        for j in range(gsz[r]):
            gv[at + j] += seeds[pos + j]
        pos += gsz[r]
    err, k = replay(rows, shapes, arena, ints, gv, order, goff, gsz, addrs, 0, -1, count,
                    free_graph, low_at, mode, stats)
    return err, k, g, count, nleaf


def replay(rows, shapes, arena, ints, g, order, goff, gsz, addrs, start, skip, count, free_graph,
           low_at, mode, stats):
    """Run the rules of the nodes order[start:count] (laid out by backward) into g.

    A node flagged F_PAUSE stops the replay (ERR_PAUSE, its position) before anything of it ran,
    unless it is at position skip: Python runs its tensor hooks or its Function's backward, then
    resumes here, at that position (skip: the rule still runs) or after it. mode: CHECK_NAN stops
    with ERR_NAN after a node whose inputs' gradients hold a nan; PROFILE adds one to stats[0, op]
    and the clock ticks the node took to stats[1, op]. Returns (error, position).
    """
    rows = unowned(rows)      # (views without reference counts: see codegen's unowned)
    shapes = unowned(shapes)
    arena = unowned(arena)
    ints = unowned(ints)
    g = unowned(g)
    order = unowned(order)
    goff = unowned(goff)
    gsz = unowned(gsz)
    addrs = unowned(addrs)
    t0 = ticks() if mode & PROFILE else 0
    # One loop over (node, input) steps, not a loop over the inputs in a loop over the nodes: a
    # row runs its rule once, a multi-input row once per input (entry e of its int data), all
    # through one call site (call_fast inlines its rules where it is called: a second site would
    # double their compile time). The nested loop cost a scalar graph ~1.5 ns per node.
    k = start
    e = 0                       # the input of node order[k] to run next (multi-input rows)
    while k < count:
        i = order[k]
        fl = rows[i, FLAGS]
        addr = addrs[rows[i, OP]]
        if e == 0:              # the node's first step: nothing of it has run yet
            if fl & F_PAUSE and k != skip:
                return ERR_PAUSE, k
            if free_graph:
                rows[i, FLAGS] = fl | F_FREED
            if addr < 0:        # an op without a rule: its inputs get no gradient from it
                if mode & ZERO_USED:
                    clear(g, goff[i], gsz[i])
                k += 1
                continue
        s = rows[i, SAVED_AT]
        if low_at > 0 and s >= 0 and not fl & F_F64:
            s += low_at
        if fl & F_MULTI:        # the rule runs once per input: entry e of the int data
            o = rows[i, I1]
            nin = ints[o]
            at = o + 1 + 3 * e
            a = ints[at] if e < nin else -1
            b = -1
        else:
            nin = 1
            at = rows[i, I1] if fl & F_INTS else -1
            a = rows[i, A]
            b = rows[i, B]
        if e < nin:
            ga = goff[a] if a >= 0 else -1
            gb = goff[b] if b >= 0 else -1
            if addr < FAST_MAX:
                call_fast(addr, g, goff[i], ga, gb, gsz[i], arena, s, rows, i, shapes, ints, at,
                          a, b)
            else:
                call_rule(addr, g, goff[i], ga, gb, gsz[i], arena, s, rows, i, shapes, ints, at,
                          a, b)
            e += 1
            if e < nin:
                continue
        e = 0                   # the node is done
        if mode:
            if mode & ZERO_USED:
                clear(g, goff[i], gsz[i])
            if mode & CHECK_NAN and produced_nan(rows, ints, g, goff, gsz, i):
                return ERR_NAN, k
            if mode & PROFILE:
                t1 = ticks()
                stats[0, rows[i, OP]] += 1
                stats[1, rows[i, OP]] += t1 - t0
                t0 = t1
        k += 1
    return 0, count


def clear(g, at, n):
    """g[at:at + n] = 0."""
    for e in range(n):
        g[at + e] = 0


def produced_nan(rows, ints, g, goff, gsz, i):
    """Whether a gradient slot of row i's inputs holds a nan (anomaly mode)."""
    multi = rows[i, FLAGS] & F_MULTI
    nin = ints[rows[i, I1]] if multi else 2
    for e in range(nin):
        v = ints[rows[i, I1] + 1 + 3 * e] if multi else (rows[i, A] if e == 0 else rows[i, B])
        if v >= 0:
            for j in range(goff[v], goff[v] + gsz[v]):
                if np.isnan(g[j]):
                    return True
    return False


def compact(rows, arena32, arena64, ints, keep_roots, len32, len64, ints_len, cap32, cap64):
    """Drop every row no live tensor can reach. Rows flagged F_F64 keep their saved values in
    arena64, the others in arena32; capNN is the least size of the new arena NN.

    Returns (new_rows, new_arena32, new_arena64, new_ints, new_index, used32, used64, ints_used).
    """
    n = rows.shape[0]
    if keep_roots.shape[0]:
        need = mark_reachable(rows, ints, keep_roots, n - 1)
    else:
        need = np.zeros(n, np.uint8)
    # saves are appended in row order, so a node's region ends where the next one's (in the
    # same arena) begins
    ends = np.empty(n, np.int64)
    iends = np.empty(n, np.int64)
    nxt32 = len32
    nxt64 = len64
    inxt = ints_len
    for i in range(n - 1, -1, -1):
        wide = rows[i, FLAGS] & F_F64
        ends[i] = nxt64 if wide else nxt32
        iends[i] = inxt
        if rows[i, SAVED_AT] >= 0:
            if wide:
                nxt64 = rows[i, SAVED_AT]
            else:
                nxt32 = rows[i, SAVED_AT]
        if rows[i, FLAGS] & F_INTS:
            inxt = rows[i, I1]
    new_index = np.full(n, -1, np.int64)
    k = 0
    size32 = 0
    size64 = 0
    isize = 0
    for i in range(n):
        if need[i]:
            new_index[i] = k
            k += 1
            if rows[i, SAVED_AT] >= 0:
                if rows[i, FLAGS] & F_F64:
                    size64 += ends[i] - rows[i, SAVED_AT]
                else:
                    size32 += ends[i] - rows[i, SAVED_AT]
            if rows[i, FLAGS] & F_INTS:
                isize += iends[i] - rows[i, I1]
    out = np.empty((k, rows.shape[1]), np.int64)
    new32 = np.empty(max(2 * size32, cap32), arena32.dtype)
    new64 = np.empty(max(2 * size64, cap64), arena64.dtype)
    new_ints = np.empty(max(2 * isize, 1024), np.int64)
    pos32 = 0
    pos64 = 0
    ipos = 0
    for i in range(n):
        if need[i]:
            j = new_index[i]
            for c in range(rows.shape[1]):
                out[j, c] = rows[i, c]
            if rows[i, A] >= 0:
                out[j, A] = new_index[rows[i, A]]
            if rows[i, B] >= 0:
                out[j, B] = new_index[rows[i, B]]
            if rows[i, SAVED_AT] >= 0:
                m = ends[i] - rows[i, SAVED_AT]
                if rows[i, FLAGS] & F_F64:
                    new64[pos64: pos64 + m] = arena64[rows[i, SAVED_AT]: ends[i]]
                    out[j, SAVED_AT] = pos64
                    pos64 += m
                else:
                    new32[pos32: pos32 + m] = arena32[rows[i, SAVED_AT]: ends[i]]
                    out[j, SAVED_AT] = pos32
                    pos32 += m
            if rows[i, FLAGS] & F_INTS:
                o = rows[i, I1]
                m = iends[i] - o
                new_ints[ipos: ipos + m] = ints[o: iends[i]]
                if rows[i, FLAGS] & F_MULTI:
                    for e in range(ints[o]):
                        new_ints[ipos + 1 + 3 * e] = new_index[ints[o + 1 + 3 * e]]
                out[j, I1] = ipos
                ipos += m
    return out, new32, new64, new_ints, new_index, pos32, pos64, ipos


def reclaim_step(rows, prev, at, pos, arena):
    """reclaim's work on row prev, the last row before at seen with values in arena: prev's
    region ends at at. pos: where the next kept region goes (-1: nothing dropped yet); returns
    its new value."""
    if prev >= 0:
        start = rows[prev, SAVED_AT]
        if rows[prev, FLAGS] & F_FREED and rows[prev, FLAGS] & F_SAVED:
            rows[prev, SAVED_AT] = -1
            if pos < 0:
                pos = start
        elif pos >= 0:
            for e in range(at - start):      # (downwards: the regions may overlap)
                arena[pos + e] = arena[start + e]
            rows[prev, SAVED_AT] = pos
            pos += at - start
    return pos


def reclaim(rows, lo, arena32, len32, arena64, len64):
    """After a backward freed the rows from lo on that it reached, give back the arena space at
    the end that only they used: their saved values are dropped (SAVED_AT -1; nothing reads a
    freed row's values again), and the values of the other rows from lo on (unfreed rows, rows
    whose data is only constants, without F_SAVED: they may be backpropagated again) move down,
    in row order, as compact relies on. Returns the arenas' new lengths."""
    rows = unowned(rows)      # (views without reference counts: reclaim_step, inlined, would
    arena32 = unowned(arena32)    # otherwise count each array in and out per row)
    arena64 = unowned(arena64)
    pos32 = -1       # per arena: where the next kept region goes, once a freed row's were dropped
    pos64 = -1
    prev32 = -1      # the last row seen with values in the arena
    prev64 = -1
    for i in range(lo, rows.shape[0]):        # (one pass over the rows for both arenas)
        at = rows[i, SAVED_AT]
        if at < 0:
            continue
        if rows[i, FLAGS] & F_F64:
            pos64 = reclaim_step(rows, prev64, at, pos64, arena64)
            prev64 = i
        else:
            pos32 = reclaim_step(rows, prev32, at, pos32, arena32)
            prev32 = i
    pos32 = reclaim_step(rows, prev32, len32, pos32, arena32)
    pos64 = reclaim_step(rows, prev64, len64, pos64, arena64)
    return len32 if pos32 < 0 else pos32, len64 if pos64 < 0 else pos64

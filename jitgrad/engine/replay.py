"""The compiled replay of a traced step, written as plain Python (codegen.py copies it into the
generated module next to loop.py's backward, as it does the rules).

A trace (jitgrad/compiler) is a program: one row per op the step ran, in order. ``run_segment``
runs a range of it through each op's forward kernel, which writes the op's output and, when the
op was recorded for backward, the values its VJP kernel reads (at the same offsets the eager
forward saved them), then optionally replays the trace's own tape rows in reverse with loop.py's
``backward``: a whole forward + backward in one compiled call, over flat buffers.

Where a value lives (an operand "slot"): slot >= 0 is an offset in ``v``, the trace's value
buffer; NO_INPUT means none; slot <= -2 is tensor -slot-2 of ``ext``, the data addresses of the
float tensors that live outside the trace (parameters, captured tensors, arguments that require
grad: the trace keeps them alive and a replay first checks they are still the tensors' storage);
``iext`` for integer ones. ``span`` views such an address as an array.
Integer operands (class targets) are ``pints[slot:]`` for slot >= 0 (arguments, copied in by
each call), else ``iext``; bool masks (where, masked_fill) are 0/1 in ``pints`` always. A
forward kernel has one signature (see codegen.forward_signature):

    fwd(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv)

out/x/y: the output and the inputs (empty when absent); prog[j] the instruction (columns P_*);
sv[s:] where the row's saved values go (s = -1: not recorded, save nothing); pints[prog[j, P_K]:]
the op's integer data (record's ints, or a multi-input op's inputs as [n, (slot, role, param,
shape_id) * n]); rows/bints the trace's tape rows and their int data (a kernel whose row keeps
ints, as nll_loss its targets, writes them at bints[rows[r, I1]:]); cv[prog[j, P_C]:] the op's
Python-number constants (record's consts, then a scalar operand), rounded to the values' dtype
as numpy rounds a Python scalar operand.

pints' last element is the replay's status word: a kernel that meets input it cannot compute
(a singular matrix: eager raises) writes j + 1 there and nothing else, run_ops stops after it,
and run_segment returns ERR_FORWARD; Python then raises the eager forward's error (see needs).
"""
import numpy as np

from .blas import gemm

def needs(kernel, spec, inline=False, fails=None):
    """Declare what a forward kernel reads, checked when a call is traced: comma-separated "x",
    "y" (the operands), "y|c" (y or a scalar), "c" (a constant or scalar), "cc" (two scalars),
    "yi" (integer targets), "m" (a bool mask tensor, record's first scalar: [slot, shape id] of
    its 0/1 values in pints are the int data), "same" (x and y of one shape), "plain" (a loss
    without weights: I1's low bits clear), "lower" (I0's low bit clear: eigh's UPLO='L'), "f64"
    (float64 values only), "empty" (an empty result), "multi" (the inputs of a multi-input op),
    "w" (a loss's weight tensors, record's last scalars: [slot, shape id] each at the end of the
    int data). inline: a cheap
    kernel the replay loop calls directly (no call through an address, no reference counting of its
    arguments: ~100 ns per op). fails: for a kernel that can stop the replay (see the status word
    above), fails(x, y, i0, ints) raises the error the eager forward raises for these inputs (x, y
    the operands' arrays or None, ints the op's int data). Returns the kernel (for defop's
    forward=)."""
    kernel.needs = spec
    kernel.inline = inline
    kernel.fails = fails
    return kernel


PROGRAM_COLUMNS = ("op", "out", "x", "y", "n", "out_shape", "x_shape", "y_shape", "row", "saved_at",
                   "i0", "i1", "k", "c", "grads")
(P_OP, P_OUT, P_X, P_Y, P_N, P_OSH, P_XSH, P_YSH, P_ROW, P_S, P_I0, P_I1, P_K, P_C,
 P_GRADS) = range(len(PROGRAM_COLUMNS))
NO_INPUT = -1
# faddrs entries below 0: a program's one-element binary rows, computed inline by run_ops with
# the arithmetic and saves of _fwd_add/_sub/_mul/_div (Program._mark_scalars): a scalar graph's
# row slices no operands and calls no kernel (W4's forward replay: ~12 -> ~4 ns per row)
SCALAR_ADD, SCALAR_SUB, SCALAR_MUL, SCALAR_DIV = -1, -2, -3, -4
# A run made of such rows alone, whose backward reaches nothing else, runs as run_scalars'
# two loops over codes of its own (Program._plan_scalars). A code row's first column: the
# arithmetic (S_ADD...S_DIV, the order of SCALAR_*; S_EXT: copy a one-element tensor from
# outside into sv), then bit flags
S_ADD, S_SUB, S_MUL, S_DIV, S_EXT = 0, 1, 2, 3, 4
S_X_LAST = 8        # forward: x is the previous row's result (kept in a register, not reloaded)
S_Y_LAST = 16
# backward: a chain row (code < S_GENERAL: kind << 2, S_CHAIN_X, a register's number) gets its
# gradient in the carry register, passes one term on in it and sums the other into a leaf kept
# in a register (y's, or x's with S_CHAIN_X): y = y * w + b over and over. A general row
# (S_GENERAL | kind | flags) says where its dx and dy go (D_*, at S_DX and S_DY)
S_CHAIN_X = 2
S_GENERAL = 2048
S_GO_CARRIED = 8    # the row's gradient is the one the row before computed (a register)
S_DX, S_DY = 5, 8       # (3 bits each)
D_NONE, D_CARRY, D_SET, D_ADD, D_REG0, D_REG1 = 0, 1, 2, 3, 4, 5


def operand(v, ext, slot, n):
    """The values at slot (n of them); empty for NO_INPUT."""
    if slot >= 0:
        return v[slot: slot + n]
    if slot == NO_INPUT:
        return v[:0]
    return span(ext[-slot - 2], n, v)


def conv_dims(geo):
    """_Geo's 23 values (transposed, groups, N, C_img, C_col, image, columns, kernel, stride,
    padding, dilation, 3 each) with unit trailing dims moved first: a 1-d or 2-d convolution is
    3-d with its widest dim innermost. Conv's forward and VJP kernels read geometry from this."""
    g = geo.copy()
    for _ in range(2):
        if g[7] == 1 and g[10] == 1 and g[13] == 1 and g[19] == 0:      # i2, l2, k2, p2
            for at in (5, 8, 11, 14, 17, 20):       # each triple shifts: (1, x0, x1), pad (0, ...)
                g[at + 2] = g[at + 1]
                g[at + 1] = g[at]
                g[at] = 0 if at == 17 else 1
    return g


def im2col(cols, image, at, g, scatter):
    """One sample's group (its C_img/G channels from image[at:]) and its im2col columns
    cols[(channel, kernel offset), window]: cols = im2col(image), or with scatter
    image += col2im(cols), summed in kernel-offset order. g from conv_dims. Each window row's
    valid range only (no branch inside); unsigned indices skip Numba's negative-index wraparound."""
    i0, i1, i2 = g[5], g[6], g[7]
    l0, l1, l2 = g[8], g[9], g[10]
    k0, k1, k2 = g[11], g[12], g[13]
    s0, s1, s2 = g[14], g[15], g[16]
    p0, p1, p2 = g[17], g[18], g[19]
    d0, d1, d2 = g[20], g[21], g[22]
    ns = i0 * i1 * i2
    nl = l0 * l1 * l2
    nk = k0 * k1 * k2
    for c in range(g[3] // g[1]):
        for a0 in range(k0):
            for a1 in range(k1):
                for a2 in range(k2):
                    r = (c * nk + (a0 * k1 + a1) * k2 + a2) * nl
                    o2 = a2 * d2 - p2
                    lo2 = 0 if o2 >= 0 else (s2 - 1 - o2) // s2
                    hi2 = (i2 - o2 + s2 - 1) // s2
                    if hi2 > l2:
                        hi2 = l2
                    base = at + c * ns + o2
                    for b0 in range(l0):
                        x0 = b0 * s0 - p0 + a0 * d0
                        if x0 < 0 or x0 >= i0:
                            continue
                        for b1 in range(l1):
                            x1 = b1 * s1 - p1 + a1 * d1
                            if x1 < 0 or x1 >= i1:
                                continue
                            q = base + (x0 * i1 + x1) * i2
                            col = r + (b0 * l1 + b1) * l2
                            if scatter:
                                for b2 in range(lo2, hi2):
                                    image[np.uint64(q + b2 * s2)] += cols[np.uint64(col + b2)]
                            else:
                                for b2 in range(lo2, hi2):
                                    cols[np.uint64(col + b2)] = image[np.uint64(q + b2 * s2)]


def conv_forward(out, img, w, bias, geo):
    """A convolution's or transposed convolution's forward, N-d (1-d, 2-d as 3-d with unit dims),
    geo: _Geo's 23 values. A 1-d or 2-d stride-1 convolution with few output channels per group
    is direct (conv_direct); otherwise per sample and group the im2col columns
    (C_img/G * K, L) times the weight (C_col/G, C_img/G * K) through BLAS, or, transposed,
    W^T @ x scattered back by col2im; then + bias. Conv's forward kernel calls it, and so does
    the eager forward: eager and replay agree bit for bit."""
    g = conv_dims(geo)
    tr, grp, nb, ci, cc = g[0], g[1], g[2], g[3], g[4]
    i0, i1, i2 = g[5], g[6], g[7]
    l1, l2 = g[9], g[10]
    k0, k1, k2 = g[11], g[12], g[13]
    s1, s2, p1, p2, d1, d2 = g[15], g[16], g[18], g[19], g[21], g[22]
    ns = i0 * i1 * i2
    nl = g[8] * l1 * l2
    cig = ci // grp
    ccg = cc // grp
    nrows = cig * k0 * k1 * k2
    if tr == 0 and i0 == 1 and k0 == 1 and s1 == 1 and s2 == 1 and ccg <= 8:
        # direct: few output channels make BLAS's small-M products slow and leave the im2col
        # copy (K times the input) the cost
        conv_direct(out, img, w, bias, nb, ci, cc, grp, i1, i2, l1, l2, k1, k2, p1, p2, d1, d2)
    else:
        if tr:
            for e in range(out.size):
                out[e] = 0
        # one sample at a time: its im2col columns (C_img/G * K, L) stay in cache, and a scratch
        # buffer this small is not a fresh mapping each call (page faults)
        cols = np.zeros(nrows * nl, out.dtype)     # never rebound: a tight gather loop
        for n in range(nb):
            for gr in range(grp):
                wat = gr * ccg * nrows                    # the group's weight
                colat = (n * cc + gr * ccg) * nl          # the group in the column-side tensor
                imgat = (n * ci + gr * cig) * ns          # ... and in the image-side tensor
                if tr:                                    # col2im(W^T (nrows, ccg) @ x (ccg, nl))
                    if nrows and ccg:
                        gemm(True, False, nrows, nl, ccg, 1.0, w, wat, img, colat, 0.0, cols, 0)
                        im2col(cols, out, imgat, g, True)
                else:                                     # W (ccg, nrows) @ im2col(x) (nrows, nl)
                    im2col(cols, img, imgat, g, False)
                    gemm(False, False, ccg, nl, nrows, 1.0, w, wat, cols, 0, 0.0, out, colat)
        if bias.size:
            ch = ci if tr else cc
            per = ns if tr else nl
            for n in range(nb):
                for c in range(ch):
                    for q in range((n * ch + c) * per, (n * ch + c + 1) * per):
                        out[q] = out[q] + bias[c]


def conv_direct(out, img, w, bias, nb, ci, cc, grp, i1, i2, l1, l2, k1, k2, p1, p2, d1, d2):
    """A stride-1 convolution (1-d/2-d, trailing dims), computed directly: the image is copied
    into zero-padded planes of row length r2 and the output computed in that row length (columns
    l2..r2 are discarded), so each kernel tap is one contiguous multiply-add over all output rows.
    conv_forward calls it."""
    cig = ci // grp
    ccg = cc // grp
    nl = l1 * l2
    r1 = max(i1 + p1, l1 + (k1 - 1) * d1)
    r2 = max(i2 + p2, l2 + (k2 - 1) * d2)
    plane = r1 * r2
    span_t = (l1 - 1) * r2 + l2
    xp = np.zeros(cig * plane, out.dtype)
    acc = np.empty(span_t, out.dtype)
    for n in range(nb):
        for gr in range(grp):
            for c in range(cig):
                for y1 in range(i1):
                    src = ((n * ci + gr * cig + c) * i1 + y1) * i2
                    dst = c * plane + (y1 + p1) * r2 + p2
                    for y2 in range(i2):
                        xp[np.uint64(dst + y2)] = img[np.uint64(src + y2)]
            for o in range(gr * ccg, (gr + 1) * ccg):
                for t in range(span_t):
                    acc[np.uint64(t)] = 0
                for c in range(cig):
                    for a1 in range(k1):
                        for a2 in range(k2):
                            wv = w[np.uint64(((o * cig + c) * k1 + a1) * k2 + a2)]
                            at = c * plane + a1 * d1 * r2 + a2 * d2
                            for t in range(span_t):
                                acc[np.uint64(t)] += wv * xp[np.uint64(at + t)]
                ob = (n * cc + o) * nl
                for b1 in range(l1):
                    for b2 in range(l2):
                        out[np.uint64(ob + b1 * l2 + b2)] = acc[np.uint64(b1 * r2 + b2)]
                if bias.size:
                    for e in range(ob, ob + nl):
                        out[e] = out[e] + bias[o]


def by_role(v, ext, pints, at, shapes, role):
    """A multi-input op's input of this role (its int data at pints[at:]: n, then (slot, role,
    param, shape id) per input present), and its shape id; empty and -1 when absent."""
    for e in range(pints[at]):
        t = at + 1 + 4 * e
        if pints[t + 1] == role:
            return operand(v, ext, pints[t], numel(shapes, pints[t + 3])), pints[t + 3]
    return v[:0], -1


def run_scalars(fcode, bcode, sv, ext, g, seeds, gcopy, goff, gsz):
    """A run of one-element + - * / rows and their backward, from the codes Program._plan_scalars
    built: ~2 ns per row, where run_ops and run_backward's per-row slicing, dispatch and
    gradient layout cost ~20 (a scalar graph is all per-row overhead). Indices are unsigned:
    Numba's negative-index check cost the loops a third of their time.

    Forward: fcode rows (kind, out, x, y), indices in sv (values, then the saved values, then
    one slot per tensor from outside, where S_EXT rows copy the one-element ones first). A
    chain keeps its last result in a register (S_X_LAST, S_Y_LAST). The rows' saved values are
    not written: the backward reads the operands where they are, and nothing else reads them
    (the program has no other backward).

    Backward: bcode row 0 holds the g indices of the two leaves summed in registers (-1: none);
    each next row (code, own gradient, x, y, dx at, dy at) runs the rule of one row the root
    reaches, in eager's order (descending rows) with eager's arithmetic (see _add, _sub, _mul,
    _div), so every leaf's gradient is eager's bit for bit. An inner row's first term is set,
    not added to a zeroed slot, or carried in a register to the next row when that row is its
    only reader's producer: only a zero's sign can differ from 0 + term, and a zero's sign never
    reaches a leaf's sum, which starts at 0. g: one slot per reached row (the root's is 0), then
    one per leaf in gcopy's order; goff/gsz are pointed at the leaves' for run_segment's hand-off."""
    fcode = unowned(fcode)
    bcode = unowned(bcode)
    sv = unowned(sv)
    g = unowned(g)
    zero = sv.dtype.type(0)
    last = zero
    for k in range(fcode.shape[0]):
        c = fcode[k, 0]
        kind = c & 7
        if kind == S_EXT:
            sv[np.uint64(fcode[k, 1])] = span(ext[fcode[k, 2]], 1, sv)[0]
            continue
        x = last if c & S_X_LAST else sv[np.uint64(fcode[k, 2])]
        y = last if c & S_Y_LAST else sv[np.uint64(fcode[k, 3])]
        if kind == S_ADD:
            last = x + y
        elif kind == S_SUB:
            last = x - y
        elif kind == S_MUL:
            last = x * y
        else:
            last = x / y
        sv[np.uint64(fcode[k, 1])] = last

    nl = gcopy.shape[0] // 3
    base = g.shape[0] - nl
    for q in range(nl):
        r = gcopy[3 * q]
        goff[r] = base + q
        gsz[r] = 1
        g[base + q] = zero
    g[0] = zero + seeds[0]
    reg0 = zero
    reg1 = zero
    carry = zero
    for k in range(1, bcode.shape[0]):
        c = bcode[k, 0]
        if c < S_GENERAL:
            go = carry
            kind = c >> 2
            x_is_leaf = c & S_CHAIN_X
            if kind == S_ADD:
                d = go
            elif kind == S_SUB:
                d = go if x_is_leaf else -go
                if x_is_leaf:
                    carry = -go
            elif kind == S_MUL:
                d = go * sv[np.uint64(bcode[k, 3 if x_is_leaf else 2])]
                carry = go * sv[np.uint64(bcode[k, 2 if x_is_leaf else 3])]
            else:
                y = sv[np.uint64(bcode[k, 3])]
                xyy = -(go * (sv[np.uint64(bcode[k, 2])] / y / y))
                d = go / y if x_is_leaf else xyy
                carry = xyy if x_is_leaf else go / y
            if c & 1:
                reg1 += d
            else:
                reg0 += d
            continue
        go = carry if c & S_GO_CARRIED else g[np.uint64(bcode[k, 1])]
        kind = c & 7
        if kind == S_ADD:
            dx = go
            dy = go
        elif kind == S_SUB:
            dx = go
            dy = -go
        elif kind == S_MUL:
            dx = go * sv[np.uint64(bcode[k, 3])]
            dy = go * sv[np.uint64(bcode[k, 2])]
        else:
            y = sv[np.uint64(bcode[k, 3])]
            dx = go / y
            dy = -(go * (sv[np.uint64(bcode[k, 2])] / y / y))
        for e in range(2):                  # dx, then dy (S_DY is S_DX + 3)
            d = dx if e == 0 else dy
            to = (c >> (S_DX + 3 * e)) & 7
            if to == D_CARRY:
                carry = d
            elif to == D_SET:
                g[np.uint64(bcode[k, 4 + e])] = d
            elif to == D_ADD:
                g[np.uint64(bcode[k, 4 + e])] += d
            elif to == D_REG0:
                reg0 += d
            elif to == D_REG1:
                reg1 += d
    if bcode[0, 0] >= 0:
        g[bcode[0, 0]] = reg0
    if bcode[0, 1] >= 0:
        g[bcode[0, 1]] = reg1


def run_segment(prog, faddrs, v, ext, iext, sv, shapes, pints, rows, bints, cv, start, stop,
                roots, seeds, addrs, need, goff, gsz, order, gcopy, post, ustart, ustop, work,
                fcode, bcode, sgrad):
    """Run instructions start..stop; then, if roots is not empty, backward from them (seeded
    with seeds, flat), hand the gradients of the rows in gcopy to their .grads and run
    instructions stop..post (a manual update reading them) and ustart..ustop (an optimizer's
    step, appended after the traced instructions). gcopy holds [row, slot, address] triples:
    address 0, a new .grad: the gradient is copied into its slot; a negative one, a new .grad
    in storage the caller reuses: written at -address, then copied into the slot; else it is
    added into the existing .grad at address (as eager's ``grad += g``), then copied into the
    slot, if any (slot -1: instructions read that .grad at its address). Returns (error, node, grads):
    backward's error and node, and its gradient buffer (laid out by goff/gsz; empty when gcopy
    took the gradients: Python need not see it). work: empty, or the gradient buffer every call
    with gcopy reuses (all zeros, and left so unless an error is returned; see loop.backward).
    fcode/bcode: empty, or the run's scalar codes, which replace the forward and backward (see
    run_scalars; sgrad is their gradient buffer)."""
    vv = unowned(v)
    if fcode.shape[0]:
        run_scalars(fcode, bcode, sv, ext, sgrad, seeds, gcopy, goff, gsz)
        err, node, g, nodes, nleaf = 0, -1, sgrad, 0, 0
    else:
        if run_ops(prog, faddrs, v, ext, iext, sv, shapes, pints, rows, bints, cv, start, stop):
            return ERR_FORWARD, -1, v[:0]
        if roots.shape[0] == 0:
            return 0, -1, v[:0]
        # no dirty rows, no previous call's rows to clear, no statistics (mode has no PROFILE),
        # no missing rules to list: empty views, as fresh arrays would be allocations every call
        err, node, g, nodes, nleaf = run_backward(
            rows, shapes, sv, bints, roots, seeds, False, roots[:0], addrs, need, goff, gsz,
            order, roots[:0], 0, ZERO_USED if work.size else 0, rows[:0], work, need[:0])
    leaves = order[order.shape[0] - nleaf:]
    for r in order[:nodes]:       # (the next call's backward expects need clear)
        need[r] = 0
    for r in leaves:
        need[r] = 0
    if err != 0:
        return err, node, v[:0]
    for q in range(gcopy.shape[0] // 3):
        r = gcopy[3 * q]
        at = gcopy[3 * q + 1]
        into = gcopy[3 * q + 2]
        src = goff[r]       # (a plain sum as the index: codegen compiles it unsigned)
        if into == 0:
            for e in range(gsz[r]):
                vv[at + e] = g[src + e]
            continue
        acc = span(into if into > 0 else -into, gsz[r], v)
        if into > 0:
            for e in range(gsz[r]):
                acc[e] += g[src + e]
        else:
            for e in range(gsz[r]):
                acc[e] = g[src + e]
        if at >= 0:
            for e in range(gsz[r]):
                vv[at + e] = acc[e]
    if work.size:                   # (the nodes' slots were zeroed by their rules' replay)
        for r in leaves:
            clear(g, goff[r], gsz[r])
    if run_ops(prog, faddrs, v, ext, iext, sv, shapes, pints, rows, bints, cv, stop, post):
        return ERR_FORWARD, -1, v[:0]
    if run_ops(prog, faddrs, v, ext, iext, sv, shapes, pints, rows, bints, cv, ustart, ustop):
        return ERR_FORWARD, -1, v[:0]
    return err, node, g if gcopy.shape[0] == 0 else v[:0]


# run_block's argument block: an (address, length, width) triple per array, width 0 for a flat
# one, in this order, then the segment's start, stop, post, ustart and ustop
BLOCK_ARRAYS = ("prog", "faddrs", "ext", "iext", "sv", "shapes", "pints", "rows", "bints", "cv",
                "roots", "seeds", "addrs", "goff", "gsz", "order", "gcopy", "work", "fcode", "bcode",
                "sgrad")
B_START = 3 * len(BLOCK_ARRAYS)


def run_block(blk, v, need):
    """run_segment, its arguments but v and need read from blk (see BLOCK_ARRAYS: arrays that
    live as long as the program). Numba unboxes each array argument of a call (~100 ns each):
    three instead of twenty save ~2 us per call. Returns the error only, so it serves the calls
    whose gradients Python does not read (forward only, or gcopy takes them)."""
    b = unowned(blk)
    prog = span(b[0], b[1] * b[2], b).reshape((b[1], b[2]))
    faddrs = span(b[3], b[4], b)
    ext = span(b[6], b[7], b)
    iext = span(b[9], b[10], b)
    sv = span(b[12], b[13], v)
    shapes = span(b[15], b[16], b)
    pints = span(b[18], b[19], b)
    rows = span(b[21], b[22] * b[23], b).reshape((b[22], b[23]))
    bints = span(b[24], b[25], b)
    cv = span(b[27], b[28], v)
    roots = span(b[30], b[31], b)
    seeds = span(b[33], b[34], v)
    addrs = span(b[36], b[37], b)
    goff = span(b[39], b[40], b)
    gsz = span(b[42], b[43], b)
    order = span(b[45], b[46], b)
    gcopy = span(b[48], b[49], b)
    work = span(b[51], b[52], v)
    fcode = span(b[54], b[55] * b[56] // 2, b).view(np.int32).reshape((b[55], b[56]))   # (int32)
    bcode = span(b[57], b[58] * b[59] // 2, b).view(np.int32).reshape((b[58], b[59]))
    sgrad = span(b[60], b[61], v)
    return run_segment(prog, faddrs, v, ext, iext, sv, shapes, pints, rows, bints, cv,
                       b[B_START], b[B_START + 1], roots, seeds, addrs, need, goff, gsz, order,
                       gcopy, b[B_START + 2], b[B_START + 3], b[B_START + 4], work, fcode, bcode,
                       sgrad)[0]


def run_ops(prog, faddrs, v, ext, iext, sv, shapes, pints, rows, bints, cv, start, stop):
    """Run instructions start..stop; True if a kernel stopped them (the status word is set)."""
    prog = unowned(prog)
    faddrs = unowned(faddrs)
    v = unowned(v)
    ext = unowned(ext)
    iext = unowned(iext)
    sv = unowned(sv)
    shapes = unowned(shapes)
    pints = unowned(pints)
    rows = unowned(rows)
    bints = unowned(bints)
    cv = unowned(cv)
    for j in range(start, stop):
        addr = faddrs[prog[j, P_OP]]
        if addr < 0:            # a 0-dim binary row: out in v, x and y in v or outside
            xo = prog[j, P_X]
            yo = prog[j, P_Y]
            a = v[xo] if xo >= 0 else span(ext[-xo - 2], 1, v)[0]
            b = v[yo] if yo >= 0 else span(ext[-yo - 2], 1, v)[0]
            if addr == SCALAR_ADD:
                v[prog[j, P_OUT]] = a + b
            elif addr == SCALAR_SUB:
                v[prog[j, P_OUT]] = a - b
            elif addr == SCALAR_MUL:
                v[prog[j, P_OUT]] = a * b
                s = prog[j, P_S]
                if s >= 0:      # y if x needs a gradient, then x if y does
                    if prog[j, P_GRADS] & 1:
                        sv[s] = b
                        s += 1
                    if prog[j, P_GRADS] & 2:
                        sv[s] = a
            else:
                v[prog[j, P_OUT]] = a / b
                s = prog[j, P_S]
                if s >= 0:      # y, then x if y needs a gradient
                    sv[s] = b
                    if prog[j, P_GRADS] & 2:
                        sv[s + 1] = a
            continue
        out = operand(v, ext, prog[j, P_OUT], prog[j, P_N])
        xs = prog[j, P_XSH]
        x = operand(v, ext, prog[j, P_X], numel(shapes, xs) if xs >= 0 else 0)
        ys = prog[j, P_YSH]
        y = operand(v, ext, prog[j, P_Y], numel(shapes, ys) if ys >= 0 else 0)
        if addr < FAST_MAX:
            call_forward_fast(addr, out, x, y, v, ext, iext, sv, prog[j, P_S], prog, j, shapes,
                              pints, rows, bints, cv)
        else:
            call_forward(addr, out, x, y, v, ext, iext, sv, prog[j, P_S], prog, j, shapes, pints,
                         rows, bints, cv)
            if pints[pints.size - 1] != 0:
                return True
    return False

def trailing(x, shapes, xs, os):
    """Whether x (shape id xs) is, but for leading 1s, the trailing dims of the output (shape id
    os), and not empty: a bias, repeated along the output's leading dims."""
    nd = shapes[os]
    xd = shapes[xs]
    lead = 0                  # x's leading 1s
    while lead < xd and shapes[xs + 1 + lead] == 1:
        lead += 1
    if x.size == 0 or xd - lead > nd:
        return False
    for d in range(lead, xd):
        if shapes[xs + 1 + d] != shapes[os + 1 + nd - xd + d]:
            return False
    return True


def expanded(x, n, shapes, xs, os):
    """x (shape id xs) broadcast to the output (n elements, shape id os), flat. (Kernels test
    x.size == n first: a call that returns x costs reference counts per op.)"""
    if x.size == n:
        return x
    r = np.empty(n, x.dtype)
    if x.size == 1:
        for e in range(n):
            r[e] = x[0]
        return r
    nd = shapes[os]
    xd = shapes[xs]
    if trailing(x, shapes, xs, os):     # a bias: repeat it
        p = x.size
        for o in range(n // p):
            for i in range(p):
                r[o * p + i] = x[i]
        return r
    stride = np.zeros(nd, np.int64)
    st = 1
    for d in range(nd - 1, nd - 1 - xd, -1):
        size = shapes[xs + 1 + d - (nd - xd)]
        if size != 1:
            stride[d] = st
        st *= size
    idx = np.zeros(nd, np.int64)
    p = 0
    for e in range(n):
        r[e] = x[p]
        d = nd - 1
        while d >= 0:
            idx[d] += 1
            p += stride[d]
            if idx[d] < shapes[os + 1 + d]:
                break
            p -= stride[d] * shapes[os + 1 + d]
            idx[d] = 0
            d -= 1
    return r


def block_sum(a, lo, n):
    """numpy's pairwise sum of a block of up to 128 elements, in a's dtype."""
    if n < 8:
        r = a.dtype.type(0)
        for i in range(lo, lo + n):
            r += a[i]
        return r
    # numpy's eight partial sums, as scalars (an array of them would be an allocation per call)
    r0, r1, r2, r3, r4, r5, r6, r7 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3], a[lo + 4], \
        a[lo + 5], a[lo + 6], a[lo + 7]
    m = n - n % 8
    for i in range(lo + 8, lo + m, 8):
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
    r = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(lo + m, lo + n):
        r += a[i]
    return r


def pairwise_sum(a, lo, n):
    """a[lo:lo+n] summed in numpy's order (halves split at a multiple of 8 down to blocks of
    128, see block_sum), so a compiled sum rounds as the eager one. numpy's recursion runs on an
    explicit stack (on the frame's: a training step's loss sums several arrays each call; 64
    levels halve any int64 n): Numba's cached code cannot call itself."""
    if n <= 128:
        return block_sum(a, lo, n)
    los = on_stack(np.int64, 64)
    ns = on_stack(np.int64, 64)
    half = on_stack(np.int64, 64)
    stage = on_stack(np.int64, 64)      # 1: summing the left half, 2: the right half
    left = on_stack(a, 64)
    top = 0
    los[0] = lo
    ns[0] = n
    while True:
        m = ns[top]
        if m > 128:
            h = m // 2
            h -= h % 8
            half[top] = h
            stage[top] = 1
            los[top + 1] = los[top]
            ns[top + 1] = h
            top += 1
            continue
        r = block_sum(a, los[top], m)
        top -= 1
        while top >= 0 and stage[top] == 2:
            r = left[top] + r
            top -= 1
        if top < 0:
            return r
        left[top] = r
        stage[top] = 2
        los[top + 1] = los[top] + half[top]
        ns[top + 1] = ns[top] - half[top]
        top += 1


def full_sum(a):
    """numpy's a.sum() of a contiguous array (of up to 8192 elements: numpy sums longer ones by
    buffer-sized chunks, so the last bits may differ)."""
    return pairwise_sum(a, 0, a.size)


def permuted(out, x, shapes, xs, perm):
    """out = x permuted (out dim d is x's dim perm[d]), both flat in C order."""
    nd = shapes[xs]
    istride = np.zeros(nd, np.int64)
    st = 1
    for d in range(nd - 1, -1, -1):
        istride[d] = st
        st *= shapes[xs + 1 + d]
    odims = np.zeros(nd, np.int64)
    ostr = np.zeros(nd, np.int64)
    for d in range(nd):
        odims[d] = shapes[xs + 1 + perm[d]]
        ostr[d] = istride[perm[d]]
    idx = np.zeros(nd, np.int64)
    p = 0
    for e in range(out.size):
        out[e] = x[p]
        d = nd - 1
        while d >= 0:
            idx[d] += 1
            p += ostr[d]
            if idx[d] < odims[d]:
                break
            p -= ostr[d] * odims[d]
            idx[d] = 0
            d -= 1


def reduced_positions(shapes, xs, mask, n):
    """Where each of x's n elements (shape id xs, C order) lands in the result of reducing the
    dims in mask: its output's flat position."""
    nd = shapes[xs]
    ostride = np.zeros(nd, np.int64)
    st = 1
    for d in range(nd - 1, -1, -1):
        if not (mask >> d) & 1:
            ostride[d] = st
            st *= shapes[xs + 1 + d]
    at = np.empty(n, np.int64)
    idx = np.zeros(nd, np.int64)
    p = 0
    for e in range(n):
        at[e] = p
        d = nd - 1
        while d >= 0:
            idx[d] += 1
            p += ostride[d]
            if idx[d] < shapes[xs + 1 + d]:
                break
            p -= ostride[d] * shapes[xs + 1 + d]
            idx[d] = 0
            d -= 1
    return at


def reduce_dims(out, x, shapes, xs, mask, mean):
    """out = x summed (mean: averaged) over the dims in mask, in numpy's order: its iterator
    merges adjacent reduced dims (and dims of size 1, either way), runs the innermost merged dim
    as the inner loop (pairwise when it is reduced) and the others in C order, adding into out."""
    nd = shapes[xs]
    if not _adjacent(shapes, xs, mask):
        for d in range(nd):
            if shapes[xs + 1 + d] == 1:
                mask |= 1 << d
    kept = 1             # x = (outer, red, inner) when the reduced dims are adjacent
    red = 1
    first = nd
    last = -1
    for d in range(nd):
        size = shapes[xs + 1 + d]
        if (mask >> d) & 1:
            red *= size
            first = min(first, d)
            last = d
        else:
            kept *= size
    count = red
    if last < 0:
        for e in range(x.size):
            out[e] = x[e]
        return
    if _adjacent(shapes, xs, mask):
        inner = 1
        for d in range(last + 1, nd):
            inner *= shapes[xs + 1 + d]
        outer = x.size // (red * inner) if red * inner else 0
        if inner == 1:
            for o in range(outer):
                out[o] = pairwise_sum(x, o * red, red)
        else:
            for o in range(outer):
                for i in range(inner):
                    acc = x[o * red * inner + i]
                    for r in range(1, red):
                        acc += x[(o * red + r) * inner + i]
                    out[o * inner + i] = acc
    else:           # scattered dims: the trailing reduced ones' blocks pairwise, added in C order
        for e in range(out.size):
            out[e] = 0
        at = reduced_positions(shapes, xs, mask, x.size)
        block = 1
        d = nd - 1
        while d >= 0 and (mask >> d) & 1:
            block *= shapes[xs + 1 + d]
            d -= 1
        if d < nd - 1:
            for b in range(x.size // block if block else 0):
                out[at[b * block]] += pairwise_sum(x, b * block, block)
        else:
            for e in range(x.size):
                out[at[e]] += x[e]
    if mean:
        for e in range(out.size):
            out[e] = out[e] / count if count else np.nan     # numpy divides in float64


def _adjacent(shapes, xs, mask):
    """Whether the dims in mask (of shape id xs) are one run of adjacent dims."""
    first = -1
    last = -1
    for d in range(shapes[xs]):
        if (mask >> d) & 1:
            if first < 0:
                first = d
            last = d
    for d in range(first, last + 1):
        if not (mask >> d) & 1:
            return False
    return True


def tanh_value(x):
    """tanh in float64 without a libm call, so a loop of it vectorises (4.3 ns an element against
    libm's 15 and numpy's 13; at most 1.35 ulp from the exact value, numpy's 1.19, glibc's 2.17).
    |x| < 0.625: Cephes's rational x + x z P(z) / Q(z), z = x^2; else 1 - 2 / (exp(2|x|) + 1),
    exp by Cody-Waite reduction 2|x| = n ln2 + r, a degree-13 Taylor polynomial in r and 2^n put
    in the exponent bits; |x| >= 20 gives 1. Both branches are computed and one selected (no
    branch: inf and nan go through clamped, nan returns itself, -0.0 keeps its sign)."""
    x = np.float64(x)
    ax = abs(x)
    a = ax if ax < 0.625 else 0.625
    z = a * a
    p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3
    q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z + 4.84406305325125486048e3
    small = a + a * (z * p / q)
    b = ax if ax < 20.0 else 20.0
    t = 2.0 * (b if b > 0.625 else 0.625)
    y = t * 1.4426950408889634 + 6755399441055744.0      # round(t / ln2) in the low bits
    n = y - 6755399441055744.0
    r = (t - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10
    e = 1.0 / 6227020800.0
    e = e * r + 1.0 / 479001600.0
    e = e * r + 1.0 / 39916800.0
    e = e * r + 1.0 / 3628800.0
    e = e * r + 1.0 / 362880.0
    e = e * r + 1.0 / 40320.0
    e = e * r + 1.0 / 5040.0
    e = e * r + 1.0 / 720.0
    e = e * r + 1.0 / 120.0
    e = e * r + 1.0 / 24.0
    e = e * r + 1.0 / 6.0
    e = e * r + 0.5
    e = e * r + 1.0
    e = (e * r + 1.0) * f64_from_bits((f64_to_bits(y) + 1023) << 52)  # noqa: F821 (codegen's)
    m = small if ax < 0.625 else 1.0 - 2.0 / (e + 1.0)
    m = np.copysign(m if ax < 20.0 else 1.0, x)
    return m if x == x else x


def tanh_into(out, x):
    """out[:] = tanh(x[:]): tanh's forward kernel, and the eager forward's in float64."""
    for e in range(out.size):
        out[e] = tanh_value(x[e])


def save_two(sv, s, first, second, both):
    """A recorded row's saved operands: sv[s:] = first, then second if both (each its own
    size: a reduction saves x, then out)."""
    for e in range(first.size):
        sv[s + e] = first[e]
    if both:
        for e in range(second.size):
            sv[s + first.size + e] = second[e]


def tanh_backward_into(out, g, y):
    """out[:] = g * (1 - y * y), rounded as numpy's three ops: tanh_backward's forward kernel and
    its eager forward (one pass, no temporaries)."""
    one = out.dtype.type(1)  # (an untyped 1 would compute float32 in float64)
    for e in range(out.size):
        out[e] = g[e] * (one - y[e] * y[e])


def sigmoid_backward_into(out, g, y):
    """out[:] = g * (1 - y) * y, as tanh_backward_into for sigmoid_backward."""
    one = out.dtype.type(1)
    for e in range(out.size):
        out[e] = g[e] * (one - y[e]) * y[e]


def nll_terms(a, t, wc, weighted, c, sp, ignore):
    """nll_loss's terms in one pass, for the eager forward and the forward kernel alike: for
    target k (of class index t[k] in a (lead, c, sp) layout) the position it picks, its weight w
    (the class weight wc[t] if weighted, else 1, times 0 where ignored) and its loss -w * a[pos]
    (0 where ignored); and the index of the first target out of range, or -1."""
    m = t.size
    w = np.empty(m, a.dtype)
    losses = np.empty(m, a.dtype)
    pos = np.empty(m, np.int64)
    one = np.ones(1, a.dtype)
    for k in range(m):
        valid = t[k] != ignore
        if valid and (t[k] < 0 or t[k] >= c):
            return w, losses, pos, k
        tc = t[k] if valid else 0
        w[k] = (wc[tc] if weighted else one[0]) * (one[0] if valid else one[0] - one[0])
        pos[k] = (k // sp) * (c * sp) + tc * sp + k % sp
        # an ignored target's loss is 0, as torch's: its log-probability (inf, nan) is not read
        losses[k] = -w[k] * a[pos[k]] if valid else one[0] - one[0]
    return w, losses, pos, -1


def cross_entropy_rows(x, t, ignore, red, logp, coef, ints, out):
    """cross_entropy's eager forward for n > 0 rows of logits x (n, c) and their n class indices
    t, without class weights or smoothing, in one call: logp = log_softmax(x) (softmax_along),
    then what nll_loss computes from it (_fwd_nll_loss's arithmetic): out the loss (red 0: the n
    losses; 1 their mean over the targets not ignored; 2 their sum), coef the coefficient saved
    per target (-w, or -w / total for the mean, 0 where ignored), ints its int data [n,
    positions...]. Returns the index of the first target out of range (then out, coef and ints
    are not written), or -1."""
    n = t.size
    c = x.size // n
    softmax_along(logp, x, c, 1, True)
    w, losses, pos, bad = nll_terms(logp, t, logp[:0], False, c, 1, ignore)
    if bad >= 0:
        return bad
    nll_reduce(w, losses, red, out, coef)
    ints[0] = n
    for k in range(n):
        ints[1 + k] = pos[k]
    return -1


def nll_reduce(w, losses, red, out, coef):
    """nll_loss's result from nll_terms' weights w and losses: out the losses (red 0), their sum
    (2) or their mean over the weights' total (1); coef (empty: not wanted) the coefficient of
    each target's gradient: -w, or -w / total for the mean (0 where ignored)."""
    m = w.size
    total = pairwise_sum(w, 0, m)
    if red == 0:
        for k in range(m):
            out[k] = losses[k]
    elif red == 2:
        out[0] = pairwise_sum(losses, 0, m)
    else:
        out[0] = pairwise_sum(losses, 0, m) / total
    for k in range(coef.size):
        if red != 1:
            coef[k] = -w[k]
        else:
            coef[k] = -w[k] / total if w[k] != 0 else 0


def softmax_along(out, x, n, inner, log):
    """(log_)softmax along a dim of size n whose elements are inner apart, as the eager forward:
    z = x - max, then z - log(sum(exp z)) or exp(z) / sum(exp z) (numpy's pairwise sum when
    inner is 1, slice after slice otherwise)."""
    if out.size == 0:
        return
    e = np.empty(n, out.dtype)
    for o in range(out.size // (n * inner)):
        for i in range(inner):
            base = o * n * inner + i
            m = x[base]
            for k in range(1, n):
                xv = x[base + k * inner]
                if xv > m or xv != xv:
                    m = xv
            for k in range(n):
                e[k] = np.exp(x[base + k * inner] - m)
            if inner == 1:
                total = pairwise_sum(e, 0, n)
            else:
                total = e[0]
                for k in range(1, n):
                    total += e[k]
            for k in range(n):
                if log:
                    out[base + k * inner] = (x[base + k * inner] - m) - np.log(total)
                else:
                    out[base + k * inner] = e[k] / total

"""Building blocks of the differentiable VJP formulas (the ``x=``/``y=``/``each=`` of defop),
shared by the op families. Everything here is written in jitgrad ops, so a formula built from it
is itself differentiable."""


def sum_to(g, shape):
    """g summed over the dims broadcasting added, to shape (the VJP of a broadcast)."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.dim() - len(shape)
    dims = tuple(range(lead)) + tuple(lead + d for d, n in enumerate(shape)
                                      if n == 1 and g.shape[lead + d] != 1)
    return (g.sum(dims, keepdim=True) if dims else g).reshape(shape)


def reduced_dims(mask, ndim):
    """The dims a reduction's I0 bit mask names (see _core._mask)."""
    return tuple(d for d in range(ndim) if (mask >> d) & 1)


def keep_reduced(t, shape, mask):
    """t, a reduction over the dims in mask of a tensor of shape (keepdim or not), with those dims
    kept (size 1), so that it broadcasts against the input."""
    return t.reshape(tuple(1 if (mask >> d) & 1 else n for d, n in enumerate(shape)))


def unreduce(g, shape, mask):
    """g, the result of reducing a tensor of shape over the dims in mask, broadcast back to shape:
    the VJP of a sum."""
    return keep_reduced(g, shape, mask).expand(shape)


def permutation(node, ndim):
    """The permutation of a permuting view (see shape._perm_attrs): out dim d is input dim p[d]."""
    ints = node.ints
    if ints is not None:
        return [int(v) for v in ints[:ndim]]
    return [(node.i0 >> (4 * d)) & 15 for d in range(ndim)]


def inverse(perm):
    inv = [0] * len(perm)
    for d, p in enumerate(perm):
        inv[p] = d
    return inv

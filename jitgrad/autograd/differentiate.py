"""backward() and grad(): the seeds and roots, then the compiled first-order replay
(engine/tape.py) or, with create_graph=True, the backward recorded as ops (graph.py)."""
import warnings

import numpy as np

from ..engine import hook
from ..engine.tape import TAPE
from ..tensor import Tensor, _wrap
from . import graph, hooks


def Variable(data, requires_grad=False, volatile=False):
    """Deprecated in PyTorch: returns a Tensor (sharing data's storage)."""
    t = data if isinstance(data, Tensor) else _wrap(np.asarray(data))
    if requires_grad:
        if t._node >= 0 or t._rg:
            return t
        t = t.detach()
        t.requires_grad_(True)
    return t


_ONE = {}      # dtype -> a one-element array of 1: the implicit seed of a first-order backward


def _make_grads(outputs, grads, flat=False):
    """The seed array of each output (None: no gradient flows from it). flat: for the compiled
    replay, which reads seeds flat and never writes them: an implicit seed may be shared."""
    new = []
    for i, (out, g) in enumerate(zip(outputs, grads)):
        if isinstance(g, Tensor):
            if out._a.shape != g._a.shape:
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of {g.shape} and "
                                   f"output[{i}] has a shape of {out.shape}.")
            new.append(g._a)        # any real dtype, cast to the replay's (as torch)
        elif g is None:
            if out._rg:
                if out._a.size != 1:
                    raise RuntimeError("grad can be implicitly created only for scalar outputs")
                if out._a.dtype.kind != "f":
                    raise RuntimeError(f"grad can be implicitly created only for real scalar outputs "
                                       f"but got {out.dtype}")
                if flat:
                    one = _ONE.get(out._a.dtype)
                    if one is None:
                        one = _ONE[out._a.dtype] = np.ones(1, out._a.dtype)
                    new.append(one)
                else:
                    new.append(np.ones(out._a.shape, out._a.dtype))
            else:
                new.append(None)
        else:
            raise TypeError("gradients can be either Tensors or None, but got " + type(g).__name__)
    return new


def _as_tuple(x):
    if isinstance(x, Tensor):
        return (x,)
    return tuple(x)


def _root_rows(outputs):
    rows = []
    for i, out in enumerate(outputs):
        if not out._rg:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a "
                               "grad_fn")
        rows.append(out._node if out._node >= 0 else TAPE.var(out, out._a.shape))
    return rows


def _prepare(outputs, grad_outputs):
    outputs = _as_tuple(outputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    else:
        grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"got {len(grad_outputs)} tensors and {len(outputs)} gradients")
    return outputs, grad_outputs


def _run(outputs, grad_outputs, retain_graph, create_graph):
    """The compiled first-order replay: the flat gradient buffer (see Tape.backward)."""
    outputs, grad_outputs = _prepare(outputs, grad_outputs)
    seeds = _make_grads(outputs, grad_outputs, flat=True)
    retain = bool(retain_graph) if retain_graph is not None else create_graph
    with TAPE.lock:
        return TAPE.backward(_root_rows(outputs), seeds, retain)


def _run_graph(outputs, grad_outputs, retain_graph, inputs):
    """create_graph=True: the backward recorded as ops, for the tensors inputs (None: every
    leaf). Returns {row: gradient tensor}."""
    outputs, grad_outputs = _prepare(outputs, grad_outputs)
    seeds = []
    for out, g, a in zip(outputs, grad_outputs, _make_grads(outputs, grad_outputs)):
        if a is None:
            seeds.append(None)
        elif isinstance(g, Tensor):        # kept as is: a seed that requires grad is differentiated
            seeds.append(g if g._a.dtype == out._a.dtype else g.to(out.dtype))
        else:
            seeds.append(_wrap(a))
            if hook.tracer is not None:
                hook.tracer.constant(seeds[-1])
    retain = bool(retain_graph) if retain_graph is not None else True
    with TAPE.lock:
        roots = _root_rows(outputs)      # (an output that is an input gets its row here)
        targets = None if inputs is None else {r for r in map(_row_of, inputs) if r >= 0}
        live = [(r, s) for r, s in zip(roots, seeds) if s is not None]
        return graph.run([r for r, _ in live], [s for _, s in live], targets, retain)


def _row_of(t):
    return t._node if t._node >= 0 else t._leafvar


def _grad_of(t, row, g):
    """t's gradient from the last replay (as t's shape and dtype), or None if not reached."""
    v = TAPE.grad_of(g, row)
    if v is None:
        return None
    if v.size != t._a.size:
        raise _resized(t, row)
    return v.reshape(t._a.shape).astype(t._a.dtype, copy=True)


def _resized(t, row):
    """torch's error for a leaf whose storage changed shape (``.data =``) after row was
    recorded: its gradient does not fit it."""
    return RuntimeError(f"Function AccumulateGrad returned an invalid gradient at index 0 - got "
                        f"{list(TAPE.shape_of(row))} but expected shape compatible with "
                        f"{list(t._a.shape)}")


def _leaf_grads(g):
    """[(leaf tensor, its gradient)] for the leaves the last replay reached: views of their slots,
    which the replay laid out last and contiguous in g (a buffer of this replay's own). Copied
    out first, in one copy, if they are under half of g: the .grads then do not keep the
    nodes' gradients alive."""
    rows = TAPE.marked_leaves
    if not rows.size:
        return []
    leaves = TAPE.leaves
    lo = TAPE.goff[rows[0]]
    tail = g[lo:]
    if 2 * tail.size < g.size:
        tail = tail.copy()
    found = []
    at = 0     # the slots follow each other: offsets from the sizes (each numpy call costs a
    for row, n in zip(rows.tolist(), TAPE.gsz[rows].tolist()):    # few us, the caches cold)
        t = leaves.get(row)
        if t is not None and t._rg:
            a = t._a
            if n != a.size:
                raise _resized(t, row)
            v = tail[at: at + n].reshape(a.shape)
            found.append((t, v if v.dtype == a.dtype else v.astype(a.dtype)))
        at += n
    return found


def _check_grad_sizes(found):
    """Each (tensor, gradient array) can go into tensor.grad: checked for all before any is
    written, so an error leaves every .grad untouched."""
    for t, v in found:
        if t._grad is not None and t._grad._a.shape != v.shape:   # t's storage changed shape
            raise RuntimeError(f"The size of tensor a ({t._grad._a.size}) must match the size "
                               f"of tensor b ({v.size}) at non-singleton dimension 0")


def _accumulate(found):
    """Add each (tensor, gradient) into tensor.grad (in place when it has one)."""
    _check_grad_sizes(found)
    hook.grad_epoch += 1
    for t, v in found:
        if t._grad is None:
            t._grad = _wrap(v)
        else:
            t._grad._a += v


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, grad_variables=None,
             inputs=None):
    """Accumulate d(tensors)/d(leaf) * grad_tensors into the .grad of every leaf they depend on."""
    if grad_variables is not None:
        grad_tensors = grad_variables
    if inputs is not None:
        inputs = _as_tuple(inputs)
        if not inputs:
            raise RuntimeError("`inputs` argument to `backward()` cannot be empty.")
    if create_graph:
        if hook.tracer is not None:
            hook.tracer.unsupported("backward(create_graph=True)")
        _backward_graph(tensors, grad_tensors, retain_graph, inputs)
        return
    if hook.tracer is not None:
        hook.tracer.backward(tensors, grad_tensors, inputs, retain_graph)
    with TAPE.lock:
        g = _run(tensors, grad_tensors, retain_graph, create_graph)
        found = []
        if inputs is not None:
            for t in inputs:
                v = _grad_of(t, _row_of(t), g)
                if v is not None:
                    found.append((t, v))
        else:
            found = _leaf_grads(g)
            for row, ref in list(TAPE.retained.items()):
                t = ref()
                if t is not None:
                    v = _grad_of(t, row, g)
                    if v is not None:
                        found.append((t, v))
        if hooks._leaf_hooks:
            found = [(t, hooks.on_leaf(t, v) if t._node < 0 else v) for t, v in found]
        _accumulate(found)
        if hook.tracer is not None:
            hook.tracer.backward_done(found, TAPE.retained)
    if hooks._post_hooks:
        hooks.after_accumulate([t for t, _ in found if t._node < 0])


def _backward_graph(tensors, grad_tensors, retain_graph, inputs):
    """backward(create_graph=True): each .grad becomes (or gains, out of place) a differentiable
    gradient, as torch's."""
    warnings.warn(
        "Using backward() with create_graph=True will create a reference cycle between the "
        "parameter and its gradient which can cause a memory leak. We recommend using "
        "autograd.grad when creating the graph to avoid this. If you have to use this function, "
        "make sure to reset the .grad fields of your parameters to None after use to break the "
        "cycle and avoid the leak.", UserWarning, stacklevel=3)
    with TAPE.lock:
        grads = _run_graph(tensors, grad_tensors, retain_graph, inputs)
        wanted = None if inputs is None else [(t, _row_of(t)) for t in inputs]
        if wanted is None:       # every leaf reached that requires grad, and retain_grad() tensors
            wanted = [(TAPE.leaves[r], r) for r in grads if r in TAPE.leaves and TAPE.leaves[r]._rg]
            wanted += [(ref(), r) for r, ref in TAPE.retained.items() if r in grads and ref()]
        found = [(t, grads[r]) for t, r in wanted if r in grads]
        if hooks._leaf_hooks:
            found = [(t, hooks.on_leaf_tensor(t, v) if t._node < 0 else v) for t, v in found]
        _check_grad_sizes([(t, v._a) for t, v in found])
        taken = {id(s) for s in _as_tuple(grad_tensors)} if grad_tensors is not None else set()
        for t, v in found:
            if v._a.shape != t._a.shape:
                v = v.reshape(t._a.shape)
            if id(v) in taken:       # one tensor is every .grad's own: copies, not aliases
                v = v.clone()
            taken.add(id(v))
            hook.grad_epoch += 1
            t._grad = v if t._grad is None else t._grad + v
    if hooks._post_hooks:
        hooks.after_accumulate([t for t, _ in found if t._node < 0])


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """Return d(outputs)/d(inputs) * grad_outputs without touching any .grad."""
    inputs = _as_tuple(inputs)
    if not inputs:
        raise RuntimeError("`inputs` argument to `grad()` cannot be empty.")
    for t in inputs:
        if not t._rg:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    if allow_unused is None:
        allow_unused = materialize_grads
    if create_graph:       # (a traced step records the walk's ops: compiled replay runs them)
        return _grad_graph(outputs, inputs, grad_outputs, retain_graph, allow_unused,
                           materialize_grads)
    if hook.tracer is not None:
        hook.tracer.unsupported("autograd.grad() without create_graph")
    with TAPE.lock:
        g = _run(outputs, grad_outputs, retain_graph, create_graph)
        found = [_grad_of(t, _row_of(t), g) for t in inputs]
        if hooks._leaf_hooks:
            found = [v if v is None or t._node >= 0 else hooks.on_leaf(t, v)
                     for t, v in zip(inputs, found)]
    return _results(inputs, [None if v is None else _wrap(v) for v in found], allow_unused,
                    materialize_grads)


def _grad_graph(outputs, inputs, grad_outputs, retain_graph, allow_unused, materialize_grads):
    with TAPE.lock:
        grads = _run_graph(outputs, grad_outputs, retain_graph, inputs)
        found = [grads.get(_row_of(t)) for t in inputs]
        if hooks._leaf_hooks:
            found = [v if v is None or t._node >= 0 else hooks.on_leaf_tensor(t, v)
                     for t, v in zip(inputs, found)]
    found = [v if v is None or v._a.shape == t._a.shape else v.reshape(t._a.shape)
             for t, v in zip(inputs, found)]
    return _results(inputs, found, allow_unused, materialize_grads)


def _results(inputs, found, allow_unused, materialize_grads):
    """grad()'s tuple: an input the outputs do not reach raises, or gives None or zeros."""
    result = []
    for i, (t, v) in enumerate(zip(inputs, found)):
        if v is None:
            if not allow_unused:
                raise RuntimeError(f"The differentiated Tensor at index {i} appears to not have "
                                   "been used in the graph. Set allow_unused=True if this is the "
                                   "desired behavior.")
            v = _wrap(np.zeros_like(t._a)) if materialize_grads else None
        result.append(v)
    return tuple(result)

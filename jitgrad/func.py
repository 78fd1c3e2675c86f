"""jitgrad.func: torch.func's function transforms over the tape: grad, grad_and_value, vjp,
jacrev and hessian.

A transform returns a function of tensors that never touches ``.grad`` and works on inputs that do
not require grad: it runs ``func`` on new tensors standing for the differentiated arguments (a
detached leaf that requires grad, or, for an argument that already requires grad, a differentiable
alias of it) and differentiates with autograd.grad. Transforms compose (``grad(grad(f))``,
``jacrev(jacrev(f))``) because an inner transform whose result depends on tensors from outside it
(an enclosing transform's arguments, the caller's leaves, captured by closure or passed in)
differentiates with ``create_graph=True``, so the enclosing transform can differentiate its result
again. torch.func's levels are emulated that way: a transform's result carries history only if it
depends on a leaf requiring grad that is neither its own nor a finished transform's (this walks the
output's graph once per call). With nothing outside to differentiate for, the gradients come from
the compiled first-order backward and the results are detached, as torch.func's are.

Arguments are pytrees: tuples, lists, dicts and namedtuples nest; anything else is a leaf (and a
differentiated leaf must be a Tensor). vmap, jacfwd and forward-mode jvp do not exist here; hessian
is ``jacrev(jacrev(func))`` (torch's is forward-over-reverse; the values are the same).
"""
import functools
import weakref
from collections import OrderedDict

import numpy as np

from .autograd import graph
from .autograd.differentiate import grad as _autograd_grad
from .autograd.grad_mode import enable_grad
from .creation import zeros, zeros_like
from .engine.loop import OP, WIDTH, LEAF
from .engine.tape import TAPE, is_grad_enabled
from .ops import stack
from .tensor import Tensor, _wrap

__all__ = ["grad", "grad_and_value", "vjp", "jacrev", "hessian"]


# ---- pytrees ---------------------------------------------------------------------------------
_LEAF = "*"


def _children(tree):
    """(node type, context, children) of a container, or None for a leaf."""
    t = type(tree)
    if t is tuple or t is list:
        return t, None, list(tree)
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):       # namedtuple
        return t, None, list(tree)
    if t is dict or t is OrderedDict:
        return t, list(tree), list(tree.values())
    return None


def tree_flatten(tree):
    """(leaves, spec): the leaves in order and a spec that tree_unflatten rebuilds tree from."""
    leaves = []

    def walk(node):
        c = _children(node)
        if c is None:
            leaves.append(node)
            return _LEAF
        kind, context, children = c
        return kind, None if context is None else tuple(context), tuple(walk(x) for x in children)

    return leaves, walk(tree)


def tree_unflatten(leaves, spec):
    it = iter(leaves)

    def build(s):
        if s == _LEAF:
            return next(it)
        kind, context, children = s
        values = [build(c) for c in children]
        if context is not None:
            return kind(zip(context, values))
        if kind is tuple or kind is list:
            return kind(values)
        return kind(*values)        # namedtuple

    return build(spec)


def tree_map(fn, tree):
    leaves, spec = tree_flatten(tree)
    return tree_unflatten([fn(x) for x in leaves], spec)


def _pprint(spec):
    """A spec as torch's treespec_pprint writes it: ``(*, {'a': *})``."""
    if spec == _LEAF:
        return "*"
    kind, context, children = spec
    parts = [_pprint(c) for c in children]
    if context is not None:
        return "{" + ", ".join(f"{k!r}: {p}" for k, p in zip(context, parts)) + "}"
    if kind is list:
        return "[" + ", ".join(parts) + "]"
    if kind is tuple:
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    return f"{kind.__name__}(" + ", ".join(parts) + ")"


# ---- argnums ---------------------------------------------------------------------------------
def _wrap_argnum(argnum, num_args):
    if not isinstance(argnum, int):
        raise RuntimeError(f"argnum must be int, got: {type(argnum)}")
    if 0 <= argnum < num_args:
        return argnum
    if -num_args <= argnum < 0:
        return argnum + num_args
    raise RuntimeError(f"Got argnum={argnum}, but only {num_args} positional inputs")


def _split_aux(output, has_aux, api):
    """(output, aux) of f's result: with has_aux, f must return that pair."""
    if not has_aux:
        return output, None
    if not (isinstance(output, tuple) and len(output) == 2):
        raise RuntimeError(f"{api}: output of function f should be a tuple: "
                           "(output, aux) if has_aux is True")
    return output


def _argnums(argnums, num_args):
    """argnums validated and made non-negative (an int or a tuple, as given)."""
    if isinstance(argnums, int):
        return _wrap_argnum(argnums, num_args)
    if not isinstance(argnums, tuple):
        raise RuntimeError(f"argnums must be int or Tuple[int, ...], got: {type(argnums)}")
    wrapped = tuple(_wrap_argnum(a, num_args) for a in argnums)
    if not wrapped:
        raise RuntimeError("argnums must be non-empty")
    if len(set(wrapped)) != len(wrapped):
        raise RuntimeError(f"argnums elements must be unique, got {wrapped}")
    return wrapped


def _slice(args, argnums):
    return args[argnums] if isinstance(argnums, int) else tuple(args[i] for i in argnums)


def _replace(args, new, argnums):
    if isinstance(argnums, int):
        return tuple(new if i == argnums else a for i, a in enumerate(args))
    return tuple(new[argnums.index(i)] if i in argnums else a for i, a in enumerate(args))


# ---- levels ----------------------------------------------------------------------------------
# leaves made by finished transforms, by id: constants to every other transform
_retired = {}


class _Level:
    """One transform call: the leaves it made for its arguments."""

    def __init__(self):
        self.leaves = {}
        # made before the transform enables grad mode: under no_grad, nothing outside it records
        self.outer_grad = is_grad_enabled()

    def differentiable(self, x):
        """What func sees for a differentiated argument x: an alias of x if x requires grad (so
        the gradient flows on to x), else a new leaf sharing x's storage."""
        if not isinstance(x, Tensor):
            raise ValueError(f"Thing passed to transform API must be Tensor, got {type(x)}")
        if x.requires_grad:
            return x.view_as(x)
        t = x.detach().requires_grad_()
        self.leaves[id(t)] = t
        return t

    def depends_on_others(self, tensors):
        """Whether any of tensors depends on a leaf requiring grad that this level did not make
        and no finished level made: the results must then be differentiable (create_graph)."""
        if not self.outer_grad:
            return False

        def foreign(t):
            return t._rg and id(t) not in self.leaves and id(t) not in _retired

        roots = []
        for t in tensors:
            if t._node >= 0:
                roots.append(t._node)
            elif foreign(t):
                return True
        if not roots:
            return False
        with TAPE.lock:
            rows = TAPE.rows
            for r in graph._reachable(TAPE, roots, None):
                if rows[r * WIDTH + OP] == LEAF:
                    t = TAPE.leaves.get(r)
                    if t is not None and foreign(t):
                        return True
        return False

    def retire(self):
        for k, t in self.leaves.items():
            _retired[k] = weakref.ref(t, lambda _, k=k: _retired.pop(k, None))
        self.leaves = {}


def _grads(outputs, inputs, cotangents=None, create_graph=False, retain_graph=None):
    """autograd.grad over the outputs that require grad; zeros for unused inputs."""
    if cotangents is None:
        cotangents = (None,) * len(outputs)
    kept = [(o, c) for o, c in zip(outputs, cotangents) if o.requires_grad]
    if not kept:
        return tuple(zeros_like(x) for x in inputs)
    got = _autograd_grad([o for o, _ in kept], inputs, [c for _, c in kept], retain_graph=retain_graph,
               create_graph=create_graph, allow_unused=True)
    return tuple(zeros_like(x) if g is None else g for g, x in zip(got, inputs))


def _detach_aux(aux):
    def detach(x):
        if not isinstance(x, Tensor):
            raise RuntimeError(f"Expected tensors, got unsupported type {type(x)}")
        return x.detach()
    return tree_map(detach, aux)


# ---- transforms ------------------------------------------------------------------------------
def grad_and_value(func, argnums=0, has_aux=False):
    """A function returning (gradient of func w.r.t. the arguments at argnums, func's value);
    with has_aux, func returns (scalar, aux) and the function returns (gradient, (value, aux))."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        api = "grad_and_value(f)(*args)"
        level = _Level()
        try:
            with enable_grad():
                nums = _argnums(argnums, len(args))
                diff = tree_map(level.differentiable, _slice(args, nums))
                output, aux = _split_aux(func(*_replace(args, diff, nums), **kwargs), has_aux,
                                         api)
                if not isinstance(output, Tensor):
                    raise RuntimeError(f"{api}: Expected f(*args) to return a Tensor, got "
                                       f"{type(output)}")
                if output.dim() != 0:
                    raise RuntimeError(f"{api}: Expected f(*args) to return a scalar Tensor, got "
                                       f"tensor with {output.dim()} dims. Maybe you wanted to use "
                                       "the vjp or jacrev APIs instead?")
                flat_diff, spec = tree_flatten(diff)
                aux_leaves = tree_flatten(aux)[0] if has_aux else []
                nested = level.depends_on_others(
                    [output] + [t for t in aux_leaves if isinstance(t, Tensor)])
                grads = tree_unflatten(_grads((output,), flat_diff, create_graph=nested), spec)
        finally:
            level.retire()
        if not nested:
            output = output.detach()
            if has_aux:
                aux = _detach_aux(aux)
        return (grads, (output, aux)) if has_aux else (grads, output)

    return wrapper


def grad(func, argnums=0, has_aux=False):
    """A function returning the gradient of the scalar func w.r.t. its arguments at argnums
    (an int: that argument's structure; a tuple: a tuple of them); with has_aux, func returns
    (scalar, aux) and the function returns (gradient, aux)."""
    inner = grad_and_value(func, argnums, has_aux)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        g, value = inner(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapper


def _vjp(func, primals, argnums, has_aux):
    """Run func on differentiable primals (all, or those at argnums). Returns func's output as the
    caller sees it, the flat outputs with their graph and their spec, the flat differentiated
    primals and their spec, whether the results must be differentiable (nested) and aux."""
    api = "vjp(f, *primals)"
    level = _Level()
    try:
        with enable_grad():
            if argnums is None:
                diff = tree_map(level.differentiable, primals)
                args = diff
            else:
                nums = _argnums(argnums, len(primals))
                diff = tree_map(level.differentiable, _slice(primals, nums))
                args = _replace(primals, diff, nums)
            out, aux = _split_aux(func(*args), has_aux, api)
            flat_out, out_spec = tree_flatten(out)
            if (len(flat_out) == 1 and flat_out[0] is None) or not flat_out:
                raise RuntimeError(f"{api}: Expected f to be a function that has non-empty "
                                   f"output (got output = {flat_out})")
            for o in flat_out:
                if not isinstance(o, Tensor):
                    raise RuntimeError(f"{api}: expected f(*primals) to return only tensors, got "
                                       f"unsupported type {type(o)}")
            for o in flat_out:
                if not o.is_floating_point():
                    raise RuntimeError("vjp(f, ...): All outputs of f must be floating-point or "
                                       f"complex Tensors, got Tensor with dtype {o.dtype}")
            aux_leaves = tree_flatten(aux)[0] if has_aux else []
            nested = level.depends_on_others(
                flat_out + [t for t in aux_leaves if isinstance(t, Tensor)])
    finally:
        level.retire()
    flat_diff, diff_spec = tree_flatten(diff)
    result = out if nested else tree_map(Tensor.detach, out)
    if has_aux and not nested:
        aux = _detach_aux(aux)
    return result, flat_out, out_spec, flat_diff, diff_spec, nested, aux


def vjp(func, *primals, has_aux=False):
    """(func(*primals), vjp_fn[, aux]): vjp_fn(cotangents) gives the vector-Jacobian products
    with respect to every primal, as a tuple shaped like primals. cotangents must have the
    structure of func's output."""
    out, flat_out, out_spec, flat_diff, diff_spec, nested, aux = _vjp(func, primals, None, has_aux)

    def vjp_fn(cotangents, retain_graph=True, create_graph=None):
        if create_graph is None:
            create_graph = is_grad_enabled()
        flat_c, c_spec = tree_flatten(cotangents)
        if c_spec != out_spec:
            raise RuntimeError("Expected pytree structure of cotangents to be the same as pytree "
                               "structure of outputs to the function. cotangents: "
                               f"{_pprint(c_spec)}, primal output: {_pprint(out_spec)}")
        # a cotangent requiring grad is another transform's (or the caller's) variable
        create = create_graph and (nested or any(c.requires_grad for c in flat_c))
        return tree_unflatten(_grads(flat_out, flat_diff, flat_c, create_graph=create,
                                     retain_graph=retain_graph), diff_spec)

    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def jacrev(func, argnums=0, *, has_aux=False, chunk_size=None, _preallocate_and_copy=False):
    """A function returning the Jacobian of func w.r.t. the arguments at argnums, by reverse mode:
    for each output leaf, the primals' structure of blocks sized ``output.shape + arg.shape``
    (an int argnums unwraps the one-element tuple). One backward per output element (there is no
    vmap): chunk_size is validated and changes nothing else."""
    if not (chunk_size is None or chunk_size > 0):
        raise ValueError("jacrev: `chunk_size` should be greater than 0.")

    @functools.wraps(func)
    def wrapper(*args):
        _, flat_out, out_spec, flat_diff, _, nested, aux = _vjp(func, args, argnums, has_aux)
        create = nested and is_grad_enabled()
        flat_primals, primals_spec = tree_flatten(_slice_tuple(args, argnums))
        per_output = []
        for out in flat_out:
            rows = [[] for _ in flat_diff]
            for k in range(out.nelement()):
                seed = np.zeros(out._a.size, out._a.dtype)
                seed[k] = 1
                # the one-hot cotangent of this element (zero for the other outputs: left out)
                cot = _wrap(seed.reshape(out._a.shape))
                for row, g in zip(rows, _grads((out,), flat_diff, (cot,), create, True)):
                    row.append(g)
            blocks = []
            for row, p in zip(rows, flat_primals):
                shape = tuple(out.shape) + tuple(p.shape)
                blocks.append(stack(row, 0).view(*shape) if row else zeros(shape, dtype=p.dtype))
            per_output.append(tree_unflatten(blocks, primals_spec))
        if isinstance(argnums, int):
            per_output = [b[0] for b in per_output]
        jac = tree_unflatten(per_output, out_spec)
        return (jac, aux) if has_aux else jac

    return wrapper


def _slice_tuple(args, argnums):
    nums = _argnums(argnums, len(args))
    return (args[nums],) if isinstance(nums, int) else tuple(args[i] for i in nums)




def hessian(func, argnums=0):
    """A function returning the Hessian of func w.r.t. the arguments at argnums:
    jacrev(jacrev(func, argnums), argnums)."""
    return jacrev(jacrev(func, argnums), argnums)

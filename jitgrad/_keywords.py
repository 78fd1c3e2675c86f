"""The keyword names PyTorch accepts, for jitgrad's public functions and Tensor methods.

jitgrad's ops name their parameters for their formulas (``x``, ``y``); a script calls them by
torch's names (``torch.matmul(input=a, other=b)``, ``x.sum(axis=1, keepdims=True)``). ``accept``
wraps a function so that both work: torch's name of each positional parameter (derived: ``x`` is
``input``, ``y`` is ``other``; or listed in ``_TORCH_NAMES``), the numpy spellings torch's
argument parser takes for every native function (``_NUMPY_NAMES``), and a var-positional
parameter by its name (``zeros(size=(2, 3))``, ``x.permute(dims=(1, 0))``). Calls whose keywords
are all the function's own go straight through.
"""
import functools
import inspect
import types

# torch's python_arg_parser accepts these for every native (C++) function and method
_NUMPY_NAMES = {"axis": "dim", "keepdims": "keepdim", "x": "input", "a": "input", "x1": "input",
                "x2": "other"}

# torch's names of a function's positional parameters where they are not derived from jitgrad's:
# one entry per parameter, alternatives separated by "|"
_TORCH_NAMES = {
    "mm": "input mat2", "bmm": "input mat2", "dot": "input tensor", "mv": "input vec",
    "outer": "input vec2", "pow": "input exponent",
    "max": "input dim|other keepdim", "min": "input dim|other keepdim",
    "split": "tensor|input split_size_or_sections|split_size|split_sizes dim",
    "view": "input size", "expand": "input size", "repeat": "input repeats",
    "reshape": "input shape", "permute": "input dims", "flip": "input dims",
    # torch.linalg's functions under their legacy top-level names
    "inverse": "input", "det": "input", "slogdet": "input", "logdet": "input",
    "matrix_exp": "input",
    "swapdims": "input dim0 dim1",
    "tensor_split": "input indices_or_sections|indices|sections|tensor_indices_or_sections dim",
    "hsplit": "input indices_or_sections|indices|sections",
    "vsplit": "input indices_or_sections|indices|sections",
    "dsplit": "input indices_or_sections|indices|sections",
}
_DERIVED = {"x": "input", "y": "other"}

# torch's functions written in Python: their parameters only, no numpy spellings
_PYTHON_LEVEL = {"split", "norm", "einsum", "unique", "cdist", "stft", "chain_matmul", "atleast_1d", "tensordot",
                 "atleast_2d", "atleast_3d",
                 "meshgrid", "unflatten", "histogram", "bucketize", "searchsorted", "type_as",
                 "new_tensor", "new_zeros", "new_ones", "new_empty", "new_full"}


def accept(name, fn):
    """fn, called also by torch's keyword names (fn itself when it takes all of them, or is
    such a wrapper already)."""
    if hasattr(fn, "torch_keywords"):
        return fn
    found = _parameters(fn)
    if found is None:
        return fn
    positional, varpos, own, varkw = found
    named = positional + ([varpos] if varpos else [])
    torch_names = _TORCH_NAMES.get(name, "").split()
    rename = {}
    for i, param in enumerate(named):
        spelled = torch_names[i].split("|") if i < len(torch_names) else [_DERIVED.get(param, param)]
        rename.update((t, param) for t in spelled if t != param)
    if name not in _PYTHON_LEVEL:
        for alias, canonical in _NUMPY_NAMES.items():
            target = rename.get(canonical, canonical if canonical in own else None)
            if target is not None and alias not in own:
                rename.setdefault(alias, target)
    if not rename and varpos is None:
        return fn
    translate = functools.partial(_translate, name, rename, positional, varpos)
    keywords = own - {varpos, varkw}

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if kwargs and not kwargs.keys() <= keywords:
            args, kwargs = translate(args, kwargs)
        return fn(*args, **kwargs)
    call.torch_keywords = rename
    return call


def _parameters(fn):
    """(positional parameter names, the var-positional one or None, all names, the var-keyword
    one or None) of fn, or None if it has no signature. A plain function's are read from its code
    object: inspect.signature costs ~40 us, and import binds ~550 functions and methods."""
    code = getattr(fn, "__code__", None)
    if (type(fn) is not types.FunctionType or code is None or hasattr(fn, "__wrapped__")
            or hasattr(fn, "__signature__")):
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            return None
        return ([p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)],
                next((p.name for p in params if p.kind is p.VAR_POSITIONAL), None),
                {p.name for p in params},
                next((p.name for p in params if p.kind is p.VAR_KEYWORD), None))
    names = code.co_varnames
    n = code.co_argcount
    end = n + code.co_kwonlyargcount
    varpos = varkw = None
    if code.co_flags & inspect.CO_VARARGS:
        varpos = names[end]
        end += 1
    if code.co_flags & inspect.CO_VARKEYWORDS:
        varkw = names[end]
        end += 1
    return list(names[:n]), varpos, set(names[:end]), varkw


def _translate(name, rename, positional, varpos, args, kwargs):
    own = {}
    for key, value in kwargs.items():
        param = rename.get(key, key)
        if param in own:
            raise TypeError(f"{name}() got multiple values for argument '{param}'")
        own[param] = value
    if varpos is not None and varpos in own:
        # a var-positional parameter given by keyword (x.permute(dims=...)): everything before it
        # becomes positional
        before = []
        for param in positional[len(args):]:
            if param not in own:
                raise TypeError(f"{name}() missing required argument '{param}'")
            before.append(own.pop(param))
        value = own.pop(varpos)
        args = args + tuple(before) + (value,)
    return args, own

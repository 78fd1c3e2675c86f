"""jitgrad.save / jitgrad.load: state dicts in a NumPy ``.npz`` file, with no pickle.

The file holds one array per tensor (named by its path in the saved object, e.g. ``0.weight`` or
``state/0/exp_avg``, so ``numpy.load`` shows them) and a ``__jitgrad__`` entry: JSON describing the
structure around them (dicts, lists, tuples, numbers, strings, None, dtypes). Loading runs no code
from the file: ``np.load(..., allow_pickle=False)``.
"""
import io
import json
import os
from collections import OrderedDict

import numpy as np

from . import dtypes
from .tensor import Tensor, _wrap

__all__ = ["save", "load"]

_META = "__jitgrad__"
_FORMAT = 1


def _encode(obj, path, arrays):
    from .nn.parameter import Parameter
    if isinstance(obj, Tensor):
        name = _unique("/".join(path) or "tensor", arrays)
        arrays[name] = obj._a
        return {"t": "tensor", "k": name, "rg": bool(obj._rg), "param": isinstance(obj, Parameter)}
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"jitgrad.save cannot store object arrays (at {'/'.join(path) or 'top'})")
        name = _unique("/".join(path) or "array", arrays)
        arrays[name] = obj
        return {"t": "ndarray", "k": name}
    if obj is None or isinstance(obj, (bool, str)):
        return {"t": "value", "v": obj}
    if isinstance(obj, (int, np.integer)):
        return {"t": "int", "v": int(obj)}
    if isinstance(obj, (float, np.floating)):
        return {"t": "float", "v": float(obj)}
    if isinstance(obj, dtypes.dtype):
        return {"t": "dtype", "v": obj.name}
    if isinstance(obj, dict):
        items = [[_encode(k, path + ["<key>"], arrays), _encode(v, path + [str(k)], arrays)]
                 for k, v in obj.items()]
        return {"t": "odict" if isinstance(obj, OrderedDict) else "dict", "items": items}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, path + [str(i)], arrays) for i, v in enumerate(obj)]
        return {"t": "list" if isinstance(obj, list) else "tuple", "items": items}
    what = type(obj).__name__
    hint = " (save module.state_dict() or optimizer.state_dict() instead)" \
        if hasattr(obj, "state_dict") else ""
    raise TypeError(f"jitgrad.save stores tensors, arrays, numbers, strings, None and dicts, lists "
                    f"and tuples of them; got {what} at {'/'.join(path) or 'top level'}{hint}")


def _unique(name, arrays):
    if name == _META:
        name += "_"
    base, n = name, 1
    while name in arrays:
        name = f"{base}~{n}"
        n += 1
    return name


def _decode(spec, arrays):
    from .nn.parameter import Parameter
    t = spec["t"]
    if t == "tensor":
        a = arrays[spec["k"]]
        if spec.get("param"):
            return Parameter(_wrap(a), requires_grad=spec.get("rg", True))
        out = _wrap(a)
        if spec.get("rg"):
            out.requires_grad_(True)
        return out
    if t == "ndarray":
        return arrays[spec["k"]]
    if t == "value":
        return spec["v"]
    if t == "int":
        return int(spec["v"])
    if t == "float":
        return float(spec["v"])
    if t == "dtype":
        return getattr(dtypes, spec["v"])
    if t in ("dict", "odict"):
        d = OrderedDict() if t == "odict" else {}
        for k, v in spec["items"]:
            d[_decode(k, arrays)] = _decode(v, arrays)
        return d
    if t in ("list", "tuple"):
        items = [_decode(v, arrays) for v in spec["items"]]
        return items if t == "list" else tuple(items)
    raise ValueError(f"unknown entry type {t!r} in a jitgrad file")


def save(obj, f):
    """Save a state dict (or any nesting of dicts, lists, tuples, tensors, arrays, numbers,
    strings) to f, a path or a binary file object. A path is used as given (no suffix added)."""
    arrays = {}
    spec = {"format": _FORMAT, "root": _encode(obj, [], arrays)}
    arrays[_META] = np.frombuffer(json.dumps(spec).encode("utf-8"), np.uint8)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            np.savez(fh, **arrays)
    else:
        np.savez(f, **arrays)


def load(f, map_location=None, weights_only=True, mmap=None):
    """Load what ``save`` wrote. Arrays come back as tensors of their saved dtype."""
    if isinstance(f, (bytes, bytearray)):
        f = io.BytesIO(f)
    try:
        npz = np.load(f, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise RuntimeError(f"{f!r} is not a file written by jitgrad.save: {e}") from None
    with npz:
        if not hasattr(npz, "files") or _META not in npz.files:
            raise RuntimeError(f"{f!r} is not a file written by jitgrad.save (it has no '{_META}' "
                               "entry)")
        spec = json.loads(npz[_META].tobytes().decode("utf-8"))
        if spec.get("format", 0) > _FORMAT:
            raise RuntimeError(f"{f!r} was written by a newer jitgrad (format {spec['format']})")
        arrays = {k: npz[k] for k in npz.files if k != _META}
    return _decode(spec["root"], arrays)

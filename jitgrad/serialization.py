"""jitgrad.save / jitgrad.load: state dicts in a NumPy ``.npz`` file, with no pickle.

The file holds one array per tensor (named by its path in the saved object, e.g. ``0.weight`` or
``state/0/exp_avg``, so ``numpy.load`` shows them) and a ``__jitgrad__`` entry: JSON describing the
structure around them (dicts, lists, tuples, numbers, strings, None, dtypes). Storage is shared as
PyTorch shares it: the same tensor saved twice loads as one tensor, tensors over the same array
load sharing one array, and tensors viewing different parts of one array (``w`` and ``w[1:]``) are
saved as one ``__storage__/<n>`` entry of bytes (the span they cover) plus each view's byte
offset, shape, strides and dtype. Loading runs no code from the file (``allow_pickle=False``);
dtypes come from an allow-list and every entry is checked before use.
"""
import io
import json
import os
import uuid
from collections import OrderedDict

import numpy as np

from . import _storage, dtypes
from .tensor import Tensor, _wrap
from .nn.parameter import Parameter

__all__ = ["save", "load"]

_META = "__jitgrad__"
_FORMAT = 2             # 2: shared storage ("ref", "storage" and view entries); 1 still loads
_DTYPES = {d.name: d for d in dtypes._ALL}


# ---- save --------------------------------------------------------------------------------------
class _Encoder:
    def __init__(self):
        self.arrays = {}
        self.tensors = {}       # id(tensor) -> its number in the file (a second sighting is a ref)
        self.keep = []          # the tensors seen, so ids stay unique while encoding
        self.by_root = {}       # id(root array) -> (root, [(tensor spec, its array)])

    def encode(self, obj, path):
        where = "/".join(path) or "top level"
        if isinstance(obj, Tensor):
            n = self.tensors.get(id(obj))
            if n is not None:
                return {"t": "ref", "n": n}
            n = self.tensors[id(obj)] = len(self.keep)
            self.keep.append(obj)
            spec = {"t": "tensor", "n": n, "name": "/".join(path) or "tensor", "rg": bool(obj._rg),
                    "param": isinstance(obj, Parameter)}
            root = _storage.root_of(obj._a)
            self.by_root.setdefault(id(root), (root, []))[1].append((spec, obj._a))
            return spec
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                raise TypeError(f"jitgrad.save cannot store object arrays (at {where})")
            name = self.unique("/".join(path) or "array")
            self.arrays[name] = obj
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
            items = [[self.encode(k, path + ["<key>"]), self.encode(v, path + [str(k)])]
                     for k, v in obj.items()]
            return {"t": "odict" if isinstance(obj, OrderedDict) else "dict", "items": items}
        if isinstance(obj, (list, tuple)):
            items = [self.encode(v, path + [str(i)]) for i, v in enumerate(obj)]
            return {"t": "list" if isinstance(obj, list) else "tuple", "items": items}
        hint = " (save module.state_dict() or optimizer.state_dict() instead)" \
            if hasattr(obj, "state_dict") else ""
        raise TypeError(f"jitgrad.save stores tensors, arrays, numbers, strings, None and dicts, "
                        f"lists and tuples of them; got {type(obj).__name__} at {where}{hint}")

    def place_tensors(self):
        """Give every tensor spec its array: one entry per distinct array, and one storage entry
        for arrays that view different parts of one contiguous root."""
        for root, members in self.by_root.values():
            distinct = {id(a): a for _, a in members}
            if len(distinct) > 1 and (root.flags.c_contiguous or root.flags.f_contiguous):
                self.place_views(root, members)
                continue
            names = {}
            for spec, a in members:
                if id(a) not in names:
                    names[id(a)] = self.unique(spec["name"])
                    self.arrays[names[id(a)]] = a
                spec["k"] = names[id(a)]
                del spec["name"]

    def place_views(self, root, members):
        extents = [_extent(_storage.byte_offset(a, root), a.shape, a.strides, a.itemsize)
                   for _, a in members]
        lo = min(e[0] for e in extents)
        hi = max(e[1] for e in extents)
        key = self.unique(f"__storage__/{sum(k.startswith('__storage__/') for k in self.arrays)}")
        self.arrays[key] = _storage.view_of(root, 0, (root.nbytes,), (1,), np.uint8)[lo:hi]
        for spec, a in members:
            del spec["name"]
            spec.update(s=key, off=_storage.byte_offset(a, root) - lo, shape=list(a.shape),
                        strides=list(a.strides), dtype=dtypes.from_numpy_dtype(a.dtype).name)

    def unique(self, name):
        if name == _META:
            name += "_"
        base, n = name, 1
        while name in self.arrays:
            name = f"{base}~{n}"
            n += 1
        return name


def _extent(offset, shape, strides, itemsize):
    """[first byte, past the last byte] an array (offset, shape, strides) touches."""
    if 0 in shape:
        return offset, offset
    lo = offset + sum(min(0, (n - 1) * s) for n, s in zip(shape, strides))
    hi = offset + sum(max(0, (n - 1) * s) for n, s in zip(shape, strides)) + itemsize
    return lo, hi


def save(obj, f):
    """Save a state dict (or any nesting of dicts, lists, tuples, tensors, arrays, numbers,
    strings) to f, a path or a binary file object. A path is used as given (no suffix added).

    Saving to a path writes a temporary file next to it and renames it over the path, so a
    process killed mid-save leaves the previous file intact. Shared storage is preserved."""
    enc = _Encoder()
    spec = {"format": _FORMAT, "root": enc.encode(obj, [])}
    enc.place_tensors()
    arrays = enc.arrays
    arrays[_META] = np.frombuffer(json.dumps(spec).encode("utf-8"), np.uint8)
    if not isinstance(f, (str, os.PathLike)):
        _write(f, arrays)
        return
    target = os.path.realpath(f)                    # write through a symlink, as open() would
    tmp = f"{target}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, "xb") as fh:
            _write(fh, arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def _write(fh, arrays):
    np.savez(fh, **arrays)


# ---- load --------------------------------------------------------------------------------------
class _Malformed(Exception):
    """What is wrong with a file; load reports it as a RuntimeError."""


def _need(cond, what):
    if not cond:
        raise _Malformed(what)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


class _Decoder:
    def __init__(self, arrays, fmt):
        self.arrays = arrays
        self.fmt = fmt
        self.tensors = {}       # number in the file -> loaded tensor

    def entry(self, key, where):
        _need(isinstance(key, str) and key in self.arrays, f"{where} names a missing entry {key!r}")
        return self.arrays[key]

    def decode(self, spec, where="root"):
        _need(isinstance(spec, dict) and isinstance(spec.get("t"), str),
              f"{where} is not an entry (a JSON object with a string 't')")
        t = spec["t"]
        if t == "tensor":
            return self.tensor(spec, where)
        if t == "ref":
            _need(self.fmt >= 2 and spec.get("n") in self.tensors,
                  f"{where} refers to tensor {spec.get('n')!r}, which comes nowhere before it")
            return self.tensors[spec["n"]]
        if t == "ndarray":
            return self.entry(spec.get("k"), where)
        if t == "value":
            v = spec.get("v")
            _need(v is None or isinstance(v, (bool, str)), f"{where} holds {type(v).__name__}, "
                  "not None, a bool or a string")
            return v
        if t == "int":
            _need(_is_int(spec.get("v")), f"{where} is not an integer")
            return spec["v"]
        if t == "float":
            v = spec.get("v")
            _need(isinstance(v, (int, float)) and not isinstance(v, bool),
                  f"{where} is not a number")
            return float(v)
        if t == "dtype":
            v = spec.get("v")
            _need(isinstance(v, str) and v in _DTYPES, f"{where} names an unknown dtype {v!r}")
            return _DTYPES[v]
        if t in ("dict", "odict", "list", "tuple"):
            items = spec.get("items")
            _need(isinstance(items, list), f"{where} has no list of items")
            if t in ("list", "tuple"):
                out = [self.decode(v, f"{where}/{i}") for i, v in enumerate(items)]
                return out if t == "list" else tuple(out)
            d = OrderedDict() if t == "odict" else {}
            for i, pair in enumerate(items):
                _need(isinstance(pair, list) and len(pair) == 2, f"{where} item {i} is not a "
                      "[key, value] pair")
                key = self.decode(pair[0], f"{where}/<key {i}>")
                _need(isinstance(key, (str, int, float, bool, tuple, type(None), dtypes.dtype)),
                      f"{where} has a key of type {type(key).__name__}")
                try:
                    d[key] = self.decode(pair[1], f"{where}/{key}")
                except TypeError:                        # a tuple key holding an unhashable
                    raise _Malformed(f"{where} has an unhashable key") from None
            return d
        raise _Malformed(f"{where} has unknown entry type {t!r}")

    def tensor(self, spec, where):
        rg, param = spec.get("rg", False), spec.get("param", False)
        _need(isinstance(rg, bool) and isinstance(param, bool), f"{where} has non-boolean flags")
        if "s" in spec:
            a = self.view(spec, where)
        else:
            a = self.entry(spec.get("k"), where)     # tensors naming one entry share its array
            _need(a.dtype in dtypes._FROM_NP, f"{where} has dtype {a.dtype}, which is not a tensor "
                  "dtype")
        _need(not rg or a.dtype.kind == "f", f"{where} requires grad but has dtype {a.dtype}")
        out = Parameter(_wrap(a), requires_grad=rg) if param else _wrap(a, rg)
        if self.fmt >= 2:
            n = spec.get("n")
            _need(_is_int(n) and n not in self.tensors, f"{where} has a missing or repeated number")
            self.tensors[n] = out
        return out

    def view(self, spec, where):
        _need(self.fmt >= 2, f"{where} is a view, which format {self.fmt} files do not have")
        storage = self.entry(spec["s"], where)
        _need(storage.dtype == np.uint8 and storage.ndim == 1, f"{where}: its storage is not bytes")
        shape, strides, off = spec.get("shape"), spec.get("strides"), spec.get("off")
        _need(isinstance(shape, list) and all(_is_int(n) and n >= 0 for n in shape),
              f"{where} has a bad shape {shape!r}")
        _need(isinstance(strides, list) and len(strides) == len(shape)
              and all(_is_int(s) for s in strides), f"{where} has bad strides {strides!r}")
        _need(_is_int(off) and off >= 0, f"{where} has a bad offset {off!r}")
        name = spec.get("dtype")
        _need(isinstance(name, str) and name in _DTYPES, f"{where} names an unknown dtype {name!r}")
        np_dtype = _DTYPES[name].np
        lo, hi = _extent(off, shape, strides, np_dtype.itemsize)
        _need(0 <= lo <= hi <= storage.size, f"{where} reaches outside its storage")
        try:
            return _storage.view_of(storage, off, shape, strides, np_dtype)
        except ValueError as e:                  # e.g. a shape too big to address
            raise _Malformed(f"{where} is not a valid view of its storage ({e})") from None


def load(f, map_location=None, weights_only=True, mmap=None):
    """Load what ``save`` wrote; arrays come back as tensors of their saved dtype, sharing storage
    as they did when saved. f is a path, a binary file object or bytes.

    A missing file raises FileNotFoundError (other OS errors propagate too); a file that is not a
    complete, well-formed jitgrad file raises RuntimeError saying what is wrong, as torch.load
    raises RuntimeError for a damaged archive. Nothing in the file is executed."""
    if isinstance(f, (bytes, bytearray)):
        f = io.BytesIO(f)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            return _load(fh, repr(os.fspath(f)))
    name = getattr(f, "name", None)
    return _load(f, repr(name) if isinstance(name, str) else "the file object")


def _load(fh, name):
    try:
        spec, arrays = _read(fh)
        _need(isinstance(spec, dict), "its header is not a JSON object")
        fmt = spec.get("format", 0)
        _need(_is_int(fmt), f"its format {fmt!r} is not an integer")
        if fmt > _FORMAT:
            raise RuntimeError(f"{name} was written by a newer jitgrad (format {fmt})")
        _need("root" in spec, "its header has no 'root'")
        return _Decoder(arrays, fmt).decode(spec["root"])
    except _Malformed as e:
        why = str(e)
    except RecursionError:
        why = "it nests too deeply"
    raise RuntimeError(f"{name} is not a file written by jitgrad.save, or is damaged: {why}")


def _read(fh):
    """The JSON header and every array of an npz file, or _Malformed."""
    # whatever numpy or zipfile raise on damaged bytes (ValueError, EOFError, BadZipFile,
    # zlib.error, NotImplementedError for unknown compression, ...) means a damaged file
    try:
        npz = np.load(fh, allow_pickle=False)
    except MemoryError:
        raise
    except Exception as e:
        raise _Malformed(f"it is not an npz archive ({type(e).__name__}: {e})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise _Malformed("it is a single .npy array, not an npz archive")
    with npz:
        if _META not in npz.files:
            raise _Malformed(f"it has no '{_META}' entry")
        try:
            arrays = {k: npz[k] for k in npz.files}
        except MemoryError:
            raise
        except Exception as e:
            raise _Malformed(f"an entry cannot be read ({type(e).__name__}: {e})") from None
    meta = arrays.pop(_META)
    _need(meta.dtype == np.uint8 and meta.ndim == 1, f"its '{_META}' entry is not bytes")
    try:
        return json.loads(meta.tobytes().decode("utf-8")), arrays
    except (UnicodeDecodeError, ValueError) as e:
        raise _Malformed(f"its header is not JSON ({e})") from None

"""The Optimizer base class and the flat buffers its compiled step works on.

At construction every parameter of a group is copied into one contiguous buffer per dtype and its
storage (``p._a``) becomes a view of its slice, so ``step()`` gathers the gradients into a second
flat buffer and makes one compiled call for the whole group. Optimizer state (momentum, moments)
lives in flat buffers too; ``optimizer.state[p]`` holds tensor views of the parameter's slices,
so it reads and writes like PyTorch's per-parameter state.
"""
import warnings
from collections import defaultdict
from copy import deepcopy
from itertools import chain

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..engine.tape import TAPE
from ..nn.modules.module import zero_grads
from ..tensor import Tensor, _wrap

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


class _Flat:
    """One dtype's parameters of one group, packed into contiguous buffers."""

    def __init__(self, params):
        self.params = params
        self.dtype = params[0]._a.dtype
        self.sizes = [p._a.size for p in params]
        self.shapes = [p._a.shape for p in params]
        self.off = np.zeros(len(params) + 1, np.int64)
        np.cumsum(self.sizes, out=self.off[1:])
        n = int(self.off[-1])
        self.data = np.empty(n, self.dtype)
        self.grad = np.zeros(n, self.dtype)
        self.views, self.gviews = [], []
        for i, p in enumerate(params):
            sl = slice(self.off[i], self.off[i + 1])
            self.data[sl] = p._a.reshape(-1)
            view = self.data[sl].reshape(self.shapes[i])
            p._a = view
            self.views.append(view)
            self.gviews.append(self.grad[sl].reshape(self.shapes[i]))
        self.active = np.zeros(len(params), np.uint8)
        self.known = np.zeros(len(params), np.bool_)    # state[p] entries made
        self.all_known = False
        self.steps = np.zeros(len(params), np.float32)  # PyTorch keeps 'step' as a float32 tensor
        self.has_buf = np.zeros(len(params), np.uint8)  # SGD: momentum buffer initialised
        self.bufs = {}
        self.empty = np.zeros(0, self.dtype)

    def buf(self, name):
        b = self.bufs.get(name)
        if b is None:
            b = self.bufs[name] = np.zeros(self.data.size, self.dtype)
        return b

    def view(self, name, i):
        """Parameter i's slice of state buffer name, as a tensor (a live view)."""
        return _wrap(self.buf(name)[self.off[i]: self.off[i + 1]].reshape(self.shapes[i]))

    def step_view(self, i):
        return _wrap(self.steps[i: i + 1].reshape(()))

    def _readopt(self, i):
        """p._a was replaced (p.data = ..., module.to(...)): copy it into its slice again."""
        p = self.params[i]
        if p._a.shape != self.shapes[i] or p._a.dtype != self.dtype:
            raise RuntimeError(f"a parameter of this optimizer changed from shape "
                               f"{list(self.shapes[i])} and dtype {self.dtype} to shape "
                               f"{list(p._a.shape)} and dtype {p._a.dtype} after the optimizer was "
                               "created; create the optimizer after converting the model")
        self.views[i][...] = p._a
        p._a = self.views[i]

    def gather(self):
        """Copy every .grad into the flat gradient buffer; mark who has one. Returns the count."""
        act = self.active
        views, gviews = self.views, self.gviews
        n = 0
        for i, p in enumerate(self.params):
            if p._a is not views[i]:
                self._readopt(i)
            g = p._grad
            if g is None:
                act[i] = 0
            else:
                act[i] = 1
                np.copyto(gviews[i], g._a, casting="same_kind")
                n += 1
        return n

    def bump_versions(self):
        """The parameters changed in place: backward through graphs that saved them must fail."""
        act = self.active
        with TAPE.lock:
            for i, p in enumerate(self.params):
                if act[i]:
                    TAPE.note_modified(p)


class Optimizer:
    """Base class: parameter groups, zero_grad, state dicts. Subclasses define ``_update(flat,
    group)`` (one compiled call) and ``_state_names(group)`` (the per-parameter state keys)."""

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        self._flats = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors "
                            f"or dicts, but got jitgrad.{params.dtype.tensor_type}")
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def __getstate__(self):
        raise TypeError("jitgrad optimizers are not picklable; save optimizer.state_dict() with "
                        "jitgrad.save instead")

    def __repr__(self):
        s = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            s += f"\nParameter Group {i}\n"
            for key in sorted(group):
                if key != "params":
                    s += f"    {key}: {group[key]}\n"
        return s + ")"

    # ---- groups --------------------------------------------------------------------------------
    def add_param_group(self, param_group):
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but "
                            "the ordering of tensors in sets will change between runs. Please use a "
                            "list instead.")
        else:
            params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(params):
                raise ValueError("all optimizer params should be with/without names. Some param "
                                 "names are missing")
            param_group["param_names"] = names
        param_group["params"] = params
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                + type(p).__name__)
            if not (p.is_leaf or p.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
            if not p.is_floating_point():
                raise ValueError("jitgrad optimizers update floating-point tensors only")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization "
                                 f"parameter {name}")
            param_group.setdefault(name, default)
        ids = [id(p) for p in params]
        if len(ids) != len(set(ids)):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, "
                          "this will cause an error; see github.com/pytorch/pytorch/issues/40967 for "
                          "more information", stacklevel=3)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if not seen.isdisjoint(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)
        unique = list({id(p): p for p in params}.values())
        by_dtype = {}
        for p in unique:
            by_dtype.setdefault(p._a.dtype, []).append(p)
        self._flats.append([_Flat(ps) for ps in by_dtype.values()])

    # ---- gradients and steps -------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            zero_grads(group["params"], set_to_none)

    def step(self, closure=None):
        """One update of every parameter that has a .grad: one compiled call per group."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group, flats in zip(self.param_groups, self._flats):
            for flat in flats:
                if flat.gather():
                    self._update(flat, group)
                    flat.bump_versions()
                    if not flat.all_known:
                        self._make_state(flat, group)
        return loss

    def _update(self, flat, group):
        raise NotImplementedError

    def _state_names(self, group):
        """State keys per parameter (besides 'step' when ``_has_step``)."""
        return ()

    _has_step = True

    def _make_state(self, flat, group, only=None):
        """Create state[p] (live views) for parameters that have stepped for the first time."""
        names = self._state_names(group)
        todo = np.flatnonzero(flat.active.astype(np.bool_) & ~flat.known) if only is None else only
        for i in todo:
            p = flat.params[i]
            st = self.state[p]
            if self._has_step:
                st["step"] = flat.step_view(i)
            for name in names:
                st[name] = flat.view(name, i)
            flat.known[i] = True
        flat.all_known = bool(flat.known.all())

    def _locate(self):
        """id(param) -> (flat, index in flat)."""
        where = {}
        for flats in self._flats:
            for flat in flats:
                for i, p in enumerate(flat.params):
                    where[id(p)] = (flat, i)
        return where

    # ---- state dicts -------------------------------------------------------------------------
    def state_dict(self):
        """{'state': {index: {...}}, 'param_groups': [...]} with PyTorch's layout and keys."""
        mapping = {}
        start = 0
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            for i, p in enumerate(g["params"], start):
                mapping.setdefault(id(p), i)
            packed["params"] = [mapping[id(p)] for p in g["params"]]
            start += len(packed["params"])
            groups.append(packed)
        state = {mapping[id(k)]: dict(v) for k, v in self.state.items() if id(k) in mapping and v}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the "
                             "size of optimizer's group")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))
        where = self._locate()
        group_of = {id(p): g for g in groups for p in g["params"]}
        for g, s in zip(groups, saved_groups):
            new = {k: v for k, v in s.items() if k != "params"}
            g.update(new)
        for k, values in state_dict["state"].items():
            if k not in id_map:
                continue
            p = id_map[k]
            flat, i = where[id(p)]
            names = set(self._state_names(group_of[id(p)]))
            for name, value in values.items():
                if name == "step":
                    flat.steps[i] = float(value)
                    continue
                if not isinstance(value, Tensor):
                    self.state[p][name] = value
                    continue
                if tuple(value.shape) != flat.shapes[i]:
                    raise ValueError(f"loaded optimizer state '{name}' of parameter {k} has shape "
                                     f"{list(value.shape)}, but the parameter has shape "
                                     f"{list(flat.shapes[i])}")
                names.add(name)
                flat.buf(name)[flat.off[i]: flat.off[i + 1]] = value._a.reshape(-1)
                if name == "momentum_buffer":
                    flat.has_buf[i] = 1
            st = self.state[p]
            if self._has_step and "step" in values:
                st["step"] = flat.step_view(i)
            for name in names:
                if name in values:
                    st[name] = flat.view(name, i)
            flat.known[i] = True
        for flats in self._flats:
            for flat in flats:
                flat.all_known = bool(flat.known.all())

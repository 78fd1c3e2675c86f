"""The Optimizer base class and the buffers its compiled step works on.

Parameters keep their own storage, as in PyTorch: ``step()`` hands the compiled update the address
of every parameter and gradient of a group (one call per group and dtype) and the update writes
each parameter in place, so its base, ``.data``, ``detach()`` and numpy views taken at any time
see it. A parameter whose storage is replaced (``p.data = ...``, ``module.to(...)``) is noticed at
the next step. Optimizer state (momentum, moments) lives in flat buffers per group and dtype;
``optimizer.state[p]`` holds tensor views of the parameter's slices, so it reads and writes like
PyTorch's per-parameter state.
"""
import warnings
from collections import defaultdict
from copy import deepcopy
from itertools import chain

import numpy as np

from . import _kernels
from ..engine import hook
from ..autograd.grad_mode import enable_grad
from ..nn.modules.module import zero_grads
from ..ops import _check_no_overlap
from ..tensor import Tensor, _wrap

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


def _mismatch(a, b):
    """PyTorch's error for an in-place op between shapes a (updated) and b."""
    for k in range(1, max(len(a), len(b)) + 1):
        x = a[-k] if k <= len(a) else 1
        y = b[-k] if k <= len(b) else 1
        if x != y and x != 1 and y != 1:
            return RuntimeError(f"The size of tensor a ({x}) must match the size of tensor b ({y}) "
                                f"at non-singleton dimension {max(len(a), len(b)) - k}")
    return RuntimeError(f"output with shape {list(a)} doesn't match the broadcast shape "
                        f"{list(np.broadcast_shapes(a, b))}")


class _Relayout(Exception):
    """A parameter changed shape or dtype and has no state to carry: lay its group out again."""


class _Flat:
    """One dtype's parameters of one group: their addresses and their state buffers.

    ``arrays[i]`` is the storage parameter i had when ``paddr[i]`` was taken; a step compares it
    with ``p._a`` by identity to notice replaced storage. A parameter whose storage is not
    contiguous is updated in ``staged[i]``, a contiguous copy written back after the step."""

    def __init__(self, params):
        n = len(params)
        self.params = params
        self.dtype = params[0]._a.dtype
        self.like = np.zeros(0, self.dtype)
        self.shapes = [p._a.shape for p in params]
        self.off = np.zeros(n + 1, np.int64)
        np.cumsum([p._a.size for p in params], out=self.off[1:])
        self.arrays = [None] * n
        self.paddr = np.zeros(n, np.int64)
        self.gaddr = np.zeros(n, np.int64)
        self.staged = {}
        for i, p in enumerate(params):
            self.bind(i, p._a)
        self.active = np.zeros(n, np.uint8)
        self.known = np.zeros(n, np.bool_)              # state[p] entries made
        self.all_known = False
        self.new_state = False                          # (see gather)
        self.steps = np.zeros(n, np.float32)            # PyTorch keeps 'step' as a float32 tensor
        self.has_buf = np.zeros(n, np.uint8)            # SGD: momentum buffer initialised
        self.bufs = {}

    def bind(self, i, a):
        """Update parameter i in a (its current storage) from now on."""
        self.arrays[i] = a
        if a.flags.c_contiguous and a.flags.writeable:
            self.staged.pop(i, None)
            self.paddr[i] = _kernels.address(a)
        else:
            stage = self.staged[i] = np.empty(a.shape, self.dtype)
            self.paddr[i] = _kernels.address(stage)

    def buf(self, name):
        b = self.bufs.get(name)
        if b is None:
            b = self.bufs[name] = np.zeros(int(self.off[-1]), self.dtype)
        return b

    def view(self, name, i):
        """Parameter i's slice of state buffer name, as a tensor (a live view)."""
        return _wrap(self.buf(name)[self.off[i]: self.off[i + 1]].reshape(self.shapes[i]))

    def step_view(self, i):
        return _wrap(self.steps[i: i + 1].reshape(()))

    def _rebind(self, i, a):
        """Parameter i's storage was replaced since the last step."""
        if a.shape == self.shapes[i] and a.dtype == self.dtype:
            self.bind(i, a)
            return
        if not (self.known[i] and self.bufs):
            raise _Relayout
        if a.dtype != self.dtype:
            raise RuntimeError(f"a parameter changed dtype from {self.dtype} to {a.dtype} after "
                               "its optimizer state was created")
        raise _mismatch(self.shapes[i], a.shape)

    def gather(self):
        """Take the address of every .grad and mark who has one (PyTorch skips the others).
        Returns the gradient arrays, which must stay alive until the compiled call returns."""
        act, arrays, gaddr = self.active, self.arrays, self.gaddr
        grads = []
        # (whether a parameter steps for the first time: only then is state to be made; frozen
        # parameters, never stepping, would otherwise have it looked for at every step)
        known = None if self.all_known else self.known
        self.new_state = False
        for i, p in enumerate(self.params):
            g = p._grad
            if g is None:
                act[i] = 0
                continue
            a = p._a
            if a is not arrays[i]:
                self._rebind(i, a)
            ga = g._a
            if ga.shape != a.shape or ga.dtype != a.dtype or not ga.flags.c_contiguous:
                if ga.shape != a.shape:
                    raise _mismatch(a.shape, ga.shape)
                ga = np.ascontiguousarray(ga, a.dtype)
            gaddr[i] = _kernels.address(ga)
            grads.append(ga)
            act[i] = 1
            if known is not None and not known[i]:
                self.new_state = True
        for i, stage in self.staged.items():
            if act[i]:
                _check_no_overlap(arrays[i])           # an expanded parameter, as torch
                stage[...] = arrays[i]
        return grads

    def finish(self):
        """Write staged parameters back; bump the versions of the updated ones, so backward
        through graphs that saved them fails as in PyTorch."""
        act = self.active
        for i, stage in self.staged.items():
            if act[i]:
                self.arrays[i][...] = stage
        for i, p in enumerate(self.params):
            if act[i]:
                p._write(None)          # (the kernel wrote the values: the version moves)

    def fill(self, i, values, names):
        """Parameter i's state from values ({name: tensor or number}); returns the entries it does
        not keep in its buffers, or raises ValueError naming a tensor of the wrong shape."""
        rest = {}
        for name, value in values.items():
            if name == "step":
                self.steps[i] = float(value)
            elif name in names and isinstance(value, (Tensor, np.ndarray)):
                a = value._a if isinstance(value, Tensor) else value
                if a.shape != self.shapes[i]:
                    raise ValueError(name, a.shape)
                self.buf(name)[self.off[i]: self.off[i + 1]] = a.reshape(-1)
                if name == "momentum_buffer":
                    self.has_buf[i] = 1
            else:
                rest[name] = value
        self.known[i] = True
        return rest


def _flats_of(params):
    """A group's parameters (each once) split by dtype."""
    by_dtype = {}
    for p in {id(p): p for p in params}.values():
        by_dtype.setdefault(p._a.dtype, []).append(p)
    return [_Flat(ps) for ps in by_dtype.values()]


class Optimizer:
    """Base class: parameter groups, zero_grad, state dicts. Subclasses define ``_update(flat,
    group)`` (one compiled call) and ``_state_names(group)`` (the per-parameter state keys).
    Optimizers pickle and deepcopy as PyTorch's do (defaults, state and param_groups)."""

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
        # PyTorch's three fields: the buffers are laid out again from them (copying the state)
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)
        old, self.state = self.state, defaultdict(dict)
        self._flats = [None] * len(self.param_groups)
        by_id = {id(p): values for p, values in old.items()}
        for gi, group in enumerate(self.param_groups):
            self._install(gi, *self._layout(group, by_id))

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
        flats = _flats_of(params)
        self.param_groups.append(param_group)
        self._flats.append(flats)

    def _layout(self, group, state, loading=False):
        """New buffers for group's parameters as they are now, holding state ({id(param): {name:
        value}}). Returns (flats, {id(param): entries kept outside the buffers}); changes nothing."""
        names = self._state_names(group)
        flats = _flats_of(group["params"])
        kept = {}
        for flat in flats:
            for i, p in enumerate(flat.params):
                values = state.get(id(p))
                if not values:
                    continue
                try:
                    kept[id(p)] = flat.fill(i, values, names)
                except ValueError as e:
                    name, shape = e.args
                    if not loading:     # a parameter with state changed shape: PyTorch's error
                        raise _mismatch(shape, flat.shapes[i]) from None
                    index = next(k for k, q in enumerate(chain.from_iterable(
                        g["params"] for g in self.param_groups)) if q is p)
                    raise ValueError(f"loaded optimizer state '{name}' of parameter {index} has "
                                     f"shape {list(shape)}, but the parameter has shape "
                                     f"{list(flat.shapes[i])}") from None
        return flats, kept

    def _install(self, gi, flats, kept):
        self._flats[gi] = flats
        group = self.param_groups[gi]
        for flat in flats:
            for p in flat.params:
                if id(p) in kept:
                    self.state[p] = kept[id(p)]
            self._make_state(flat, group, only=np.flatnonzero(flat.known))

    # ---- gradients and steps -------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        tracer = hook.tracer
        if tracer is not None and not (set_to_none and tracer.zero_grad(
                [p for group in self.param_groups for p in group["params"]], optimizer=self)):
            with tracer.host(self.zero_grad, set_to_none):     # replayed as is
                return self._zero_grad(set_to_none)
        return self._zero_grad(set_to_none)

    def _zero_grad(self, set_to_none):
        for group in self.param_groups:
            zero_grads(group["params"], set_to_none)

    def step(self, closure=None):
        """One update of every parameter that has a .grad: one compiled call per group and dtype."""
        if hook.tracer is not None:      # replayed as is by a compiled step
            if closure is not None:
                hook.tracer.unsupported("optimizer.step(closure)")
            else:
                with hook.tracer.optimizer_step(self, _ReplayStep.taken(self)):
                    return self._step(None)
        return self._step(closure)

    def _step(self, closure):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for gi, group in enumerate(self.param_groups):
            try:
                work = [(flat, flat.gather()) for flat in self._flats[gi]]
            except _Relayout:
                state = {id(p): self.state[p] for p in group["params"] if p in self.state}
                self._install(gi, *self._layout(group, state))
                work = [(flat, flat.gather()) for flat in self._flats[gi]]
            for flat, grads in work:
                if grads:
                    self._update(flat, group)
                    flat.finish()
                    if flat.new_state:
                        self._make_state(flat, group)
        return loss

    def _update(self, flat, group):
        raise NotImplementedError

    # A subclass whose update is one compiled kernel over (paddr, gaddr, *state, off, active, hp,
    # like) names its replay instruction (optim/_kernels.py) and defines _hyper(group), the
    # hyperparameters hp, and _state_arrays(flat, group): then a compiled step can run it.
    _replay_kernel = None

    def _state_names(self, group):
        """State keys per parameter (besides 'step' when ``_has_step``)."""
        return ()

    _has_step = True

    def _make_state(self, flat, group, only=None):
        """Create state[p] (live views) for parameters that have stepped for the first time."""
        names = [name for name in self._state_names(group) if name in flat.bufs]
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
        """Replace the hyperparameters and the whole state (as PyTorch: parameters missing from
        state_dict start afresh), copying the tensors into this optimizer's buffers."""
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the "
                             "size of optimizer's group")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))
        state = {id(id_map[k]): values for k, values in state_dict["state"].items() if k in id_map}
        merged = [{**g, **{k: v for k, v in s.items() if k != "params"}}
                  for g, s in zip(groups, saved_groups)]
        layouts = [self._layout(m, state, loading=True) for m in merged]
        for g, m in zip(groups, merged):
            g.update(m)
        self.state = defaultdict(dict)
        for gi, layout in enumerate(layouts):
            self._install(gi, *layout)


def _defined_by(cls, name):
    return next(c for c in cls.__mro__ if name in c.__dict__)


class _ReplayStep:
    """``optimizer.step()`` run by a compiled replay inside the call that computed its
    gradients (jitgrad.compile, see compiler/program.py): each group's update is an instruction
    of that call, reading the gradients where the replay leaves them, with the hyperparameters
    read from the groups at every call. Taken just before the traced step runs (which gradients
    the parameters have then); ``plan`` turns it into instructions, and each replay asks
    ``ready()`` first: anything the instructions would not do as ``step()`` does (a group laid
    out again, a changed state layout, replaced storage, a gradient where the trace had none)
    makes the replay call ``step()`` instead."""

    @staticmethod
    def taken(opt):
        """A _ReplayStep of opt as it is now, or None if its step is not (only) the kernel's."""
        cls = type(opt)
        wrapper = vars(opt).get("step")     # an LR scheduler's only notes that step() ran
        if cls._replay_kernel is None or cls.step is not Optimizer.step or \
                cls._step is not Optimizer._step or \
                _defined_by(cls, "_update") is not _defined_by(cls, "_replay_kernel") or \
                "_step" in vars(opt) or "_update" in vars(opt) or \
                (wrapper is not None and not getattr(wrapper, "_wrapped_by_lr_sched", False)):
            return None
        return _ReplayStep(opt)

    def __init__(self, opt):
        self.opt = opt
        self.flats = list(opt._flats)
        self.names = [opt._state_names(g) for g in opt.param_groups]
        self.grads = [[None if p._grad is None else p._grad._a for p in flat.params]
                      for flats in opt._flats for flat in flats]

    def plan(self, slot_of, v):
        """The step's instructions, [(kernel, int data)], when each gradient it reads is in v
        (slot_of(param, gradient array): its offset there, else None), else None."""
        opt, grads, self.grads = self.opt, self.grads, None
        if opt._flats != self.flats:        # the traced step laid a group out again
            return None
        flats = [(gi, flat) for gi, fs in enumerate(self.flats) for flat in fs]
        self.hps, self.fused, self.updated, self.idle, self.params, out = [], [], [], [], [], []
        for (gi, flat), gs in zip(flats, grads):
            group = opt.param_groups[gi]
            if opt._state_names(group) != self.names[gi]:
                return None
            if all(g is None for g in gs):          # step() skips it; so must a replay
                self.idle += flat.params
                continue
            if flat.dtype != v.dtype or flat.staged:
                return None
            gaddr = np.zeros(len(gs), np.int64)
            active = np.zeros(len(gs), np.uint8)
            for i, (p, g) in enumerate(zip(flat.params, gs)):
                if g is None:
                    self.idle.append(p)
                    continue
                slot = slot_of(p, g)
                if slot is None or p._a is not flat.arrays[i]:
                    return None
                gaddr[i] = _kernels.address(v) + slot * v.itemsize
                active[i] = 1
                self.updated.append((p, flat, i))
                self.params.append(p)
            hyper = opt._hyper(group)
            hp = np.array(hyper, np.float64)
            self.hps.append([gi, hp, _plain(hyper)])
            self.fused.append([gi, flat, active, gaddr, False])    # (settled: see finish)
            args = (flat.paddr, gaddr, flat.off, active, hp) + opt._state_arrays(flat, group)
            out.append((opt._replay_kernel, [x for a in args for x in (_kernels.address(a), a.size)]))
        self.bumps = [(p, 1) for p in self.params]      # (what Program._stepped moves)
        return out or None

    def ready(self):
        """Before a replay's call: whether the instructions do what step() would now (and
        this call's hyperparameters written for them)."""
        opt = self.opt
        if opt._flats != self.flats:
            return False
        groups = opt.param_groups
        for entry in self.hps:      # [group index, the kernel's hyperparameters, as a tuple]
            g = groups[entry[0]]
            if opt._state_names(g) != self.names[entry[0]]:
                return False
            hyper = opt._hyper(g)
            if hyper != entry[2]:   # (a scheduler's new lr: comparing costs less than writing)
                entry[1][:] = hyper
                entry[2] = _plain(hyper)
        for p, flat, i in self.updated:
            if p._a is not flat.arrays[i] or flat.staged:
                return False
        for p in self.idle:
            if p._grad is not None:
                return False
        return True

    def finish(self):
        """After the call: what step() does in Python but bumping the versions of the
        parameters it updated (``params``: the caller does it, see Program._run)."""
        for entry in self.fused:
            gi, flat, active, _, settled = entry
            # (once the state of each parameter it updates is made, it stays: a group with frozen
            # parameters, which have none, need not look again every call)
            if not (flat.all_known or settled):
                flat.active[:] = active
                self.opt._make_state(flat, self.opt.param_groups[gi])
                entry[4] = bool(flat.known[active.astype(np.bool_)].all())


def _plain(hyper):
    """hyper if it holds Python numbers only, else None: a tensor in it (an lr tensor) may change
    in place, which comparing the tuples would not see."""
    return hyper if all(type(x) in (float, int, bool) for x in hyper) else None

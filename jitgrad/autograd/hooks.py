"""Tensor hooks: ``Tensor.register_hook`` and ``register_post_accumulate_grad_hook``.

A hook on a non-leaf lives with its row (``Tape.hooks``, by serial) and flags the row F_PAUSE, so
the compiled replay stops there and Python runs the hooks on the row's finished gradient before
its rule reads it (see function.on_pause). A leaf's hooks run in Python after the replay, before
its gradient is accumulated; its post-accumulate hooks after. A graph without hooks pays nothing.
"""
import os
import sys
import weakref
from collections import OrderedDict

from ..engine import hook as _hook
from ..engine.loop import FLAGS, F_PAUSE, SERIAL, WIDTH
from ..engine.tape import TAPE
from ..tensor import Tensor, _wrap

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))    # jitgrad/
_leaf_hooks = {}     # id(leaf tensor) -> OrderedDict of its hooks (removed with the tensor)
_post_hooks = {}     # id(leaf tensor) -> OrderedDict of its post-accumulate-grad hooks


class RemovableHandle:
    """Returned by register_hook & co.: ``remove()`` unregisters the hook (as
    torch.utils.hooks.RemovableHandle); also a context manager that removes it on exit."""
    next_id = 0

    def __init__(self, hooks_dict, *, extra_dict=None):
        self.hooks_dict_ref = weakref.ref(hooks_dict)
        self.id = RemovableHandle.next_id
        RemovableHandle.next_id += 1
        extra = extra_dict if isinstance(extra_dict, (list, tuple)) else \
            ([] if extra_dict is None else [extra_dict])
        self.extra_dict_ref = tuple(weakref.ref(d) for d in extra)

    def remove(self):
        _hook.module_changes += 1
        for ref in (self.hooks_dict_ref,) + self.extra_dict_ref:
            hooks = ref()
            if hooks is not None:
                hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class _Hooks(OrderedDict):
    """An ordered dict of hooks (weakly referable, for the handles)."""


def _table_for(table, t):
    hooks = table.get(id(t))
    if hooks is None:
        hooks = table[id(t)] = _Hooks()
        weakref.finalize(t, table.pop, id(t), None)
    return hooks


def register_hook(self, hook):
    """hook(grad) -> None or a gradient replacing grad; runs each time a gradient for this tensor
    is computed, hooks in registration order. Returns a handle whose remove() unregisters it."""
    if not self._rg:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    _hook.module_changes += 1       # (a compiled step checks its leaves' hooks again)
    with TAPE.lock:
        if self._node < 0:
            hooks = _table_for(_leaf_hooks, self)
        else:
            base = self._node * WIDTH
            serial = TAPE.rows[base + SERIAL]
            hooks = TAPE.hooks.get(serial)
            if hooks is None:
                hooks = TAPE.hooks[serial] = _Hooks()
            TAPE.rows[base + FLAGS] |= F_PAUSE
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
    return handle


def register_post_accumulate_grad_hook(self, hook):
    """hook(tensor) runs after a backward accumulated this leaf's gradient into .grad."""
    if self._node >= 0:
        raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
    if not self._rg:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    _hook.module_changes += 1
    hooks = _table_for(_post_hooks, self)
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    return handle


def run(hooks, grad):
    """Pass grad (a tensor) through hooks, checking each replacement as torch does."""
    for fn in list(hooks.values()):
        new = fn(grad)
        if new is None:
            continue
        name = getattr(fn, "__name__", repr(fn))
        if not isinstance(new, Tensor):
            raise TypeError(f"expected Variable, but hook returned '{type(new).__name__}'")
        if new.shape != grad.shape:
            raise RuntimeError(f"hook '{name}' has changed the size of value")
        if new.dtype is not grad.dtype:
            raise RuntimeError(f"hook '{name}' has changed the type of value (was {grad.type()} "
                               f"got {new.type()})")
        grad = new
    return grad


def on_leaf(t, v):
    """A leaf's gradient (an array) after its hooks, if it has any."""
    hooks = _leaf_hooks.get(id(t))
    if not hooks:
        return v
    return run(hooks, _wrap(v))._a


def on_leaf_tensor(t, v):
    """As on_leaf, for a gradient tensor (create_graph: the hooks see a differentiable one)."""
    hooks = _leaf_hooks.get(id(t))
    return run(hooks, v) if hooks else v


def after_accumulate(tensors):
    for t in tensors:
        hooks = _post_hooks.get(id(t))
        if hooks:
            for fn in list(hooks.values()):
                fn(t)


def user_stacklevel():
    """The warnings stacklevel of the caller's innermost frame outside jitgrad."""
    f, level = sys._getframe(1), 1
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(_PACKAGE + os.sep):
        f, level = f.f_back, level + 1
    return level

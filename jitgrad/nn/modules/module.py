"""jitgrad.nn.Module: PyTorch's module base class (registration, traversal, state dicts, repr)."""
import itertools
import warnings
from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from ... import _device, dtypes
from ...autograd.function import Function
from ...autograd.grad_mode import no_grad
from ...engine import hook as _hook
from ...autograd.hooks import RemovableHandle, user_stacklevel
from ...engine.tape import is_grad_enabled
from ...tensor import Tensor
from ..parameter import Parameter

__all__ = ["Module", "register_module_forward_pre_hook", "register_module_forward_hook",
           "register_module_full_backward_pre_hook", "register_module_full_backward_hook"]

# hooks every module runs (before its own), as torch.nn.modules.module's globals
_global_forward_pre_hooks = OrderedDict()
_global_forward_hooks = OrderedDict()
_global_forward_hooks_with_kwargs = OrderedDict()
_global_forward_hooks_always_called = OrderedDict()
_global_backward_pre_hooks = OrderedDict()
_global_backward_hooks = OrderedDict()
_HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
               "_backward_pre_hooks")


def register_module_forward_pre_hook(hook):
    """hook(module, args) runs before every module's forward."""
    _hook.module_changes += 1
    handle = RemovableHandle(_global_forward_pre_hooks)
    _global_forward_pre_hooks[handle.id] = hook
    return handle


def register_module_forward_hook(hook, *, with_kwargs=False, always_call=False):
    """hook(module, args, output) (with_kwargs: hook(module, args, kwargs, output)) runs after
    every module's forward."""
    _hook.module_changes += 1
    handle = RemovableHandle(_global_forward_hooks, extra_dict=[
        _global_forward_hooks_with_kwargs, _global_forward_hooks_always_called])
    _global_forward_hooks[handle.id] = hook
    if with_kwargs:
        _global_forward_hooks_with_kwargs[handle.id] = True
    if always_call:
        _global_forward_hooks_always_called[handle.id] = True
    return handle


def register_module_full_backward_pre_hook(hook):
    """hook(module, grad_output) runs when every module's output gradients are ready."""
    _hook.module_changes += 1
    handle = RemovableHandle(_global_backward_pre_hooks)
    _global_backward_pre_hooks[handle.id] = hook
    return handle


def register_module_full_backward_hook(hook):
    """hook(module, grad_input, grad_output) runs when every module's input gradients are ready."""
    _hook.module_changes += 1
    handle = RemovableHandle(_global_backward_hooks)
    _global_backward_hooks[handle.id] = hook
    return handle


def _any_global_hooks():
    return bool(_global_forward_pre_hooks or _global_forward_hooks or _global_backward_pre_hooks
                or _global_backward_hooks)


class BackwardHookFunction(Function):
    """The identity, applied to a hooked module's tensor inputs and outputs: its backward is
    where the full backward hooks see (and may replace) the gradients."""

    @staticmethod
    def forward(ctx, hook, side, *tensors):
        ctx.hook, ctx.side = hook, side
        return tensors[0] if len(tensors) == 1 else tensors

    @staticmethod
    def backward(ctx, *grads):
        grads = ctx.hook.on_outputs(grads) if ctx.side == "out" else ctx.hook.on_inputs(grads)
        return (None, None) + tuple(grads)


class _BackwardHook:
    """One call's full backward hooks: pre-hooks when the output gradients arrive, hooks when the
    input gradients are computed (or with None for them, if no input requires grad)."""

    def __init__(self, module, hooks, pre_hooks):
        self.module, self.hooks, self.pre_hooks = module, hooks, pre_hooks
        self.grad_outputs = None
        self.n_inputs = 0
        self.inputs_hooked = False

    def _apply(self, values, side):
        """values with its tensors that require grad passed through BackwardHookFunction."""
        single = isinstance(values, Tensor)
        items = [values] if single else list(values) if isinstance(values, tuple) else None
        if items is None:
            return values
        where = [i for i, v in enumerate(items) if isinstance(v, Tensor) and v.requires_grad]
        if not where or not is_grad_enabled():
            return values
        new = BackwardHookFunction.apply(self, side, *[items[i] for i in where])
        new = (new,) if isinstance(new, Tensor) else new
        for i, t in zip(where, new):
            items[i] = t
        return items[0] if single else tuple(items)

    def setup_inputs(self, args):
        self.n_inputs = sum(isinstance(a, Tensor) for a in args)
        self.input_mask = [isinstance(a, Tensor) and a.requires_grad for a in args
                           if isinstance(a, Tensor)]
        new = self._apply(args, "in")
        self.inputs_hooked = new is not args
        return new

    def setup_outputs(self, result):
        return self._apply(result, "out")

    def on_outputs(self, grads):
        for hook in self.pre_hooks:
            out = hook(self.module, grads)
            if out is not None:
                grads = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        self.grad_outputs = grads
        if not self.inputs_hooked:
            warnings.warn("Full backward hook is firing when gradients are computed with respect to "
                          "module outputs since no inputs require gradients. See "
                          "https://docs.pytorch.org/docs/main/generated/torch.nn.Module.html#torch.nn."
                          "Module.register_full_backward_hook for more details.", UserWarning,
                          stacklevel=user_stacklevel())
            for hook in self.hooks:
                hook(self.module, (None,) * self.n_inputs, grads)
        return grads

    def on_inputs(self, grads):
        it = iter(grads)
        grad_input = tuple(next(it) if m else None for m in self.input_mask)
        for hook in self.hooks:
            out = hook(self.module, grad_input, self.grad_outputs)
            if out is not None:
                out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
                if len(out) != len(grad_input):
                    raise RuntimeError(f"Backward hook returned an invalid number of grad_input, "
                                       f"got {len(out)}, but expected {len(grad_input)}")
                grad_input = out
        return tuple(g for g, m in zip(grad_input, self.input_mask) if m)


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def _typename(obj):
    if isinstance(obj, Tensor):
        return "jitgrad." + obj.dtype.tensor_type
    t = type(obj)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _addindent(s_, num_spaces):
    s = s_.split("\n")
    if len(s) == 1:
        return s_
    first = s.pop(0)
    s = [(num_spaces * " ") + line if line.strip() else "" for line in s]
    return first + "\n" + "\n".join(s)


class Module:
    """Base class for all neural network modules, as torch.nn.Module.

    Assigning a Parameter or a Module as an attribute registers it; ``parameters()``,
    ``state_dict()``, ``train()``/``eval()`` and ``zero_grad()`` then reach it recursively.
    """
    training: bool
    _version = 1

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments")
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = {}
        for name in _HOOK_DICTS:
            d[name] = OrderedDict()

    # ---- calling -------------------------------------------------------------------------------
    def forward(self, *input):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" '
                                  'function')

    def __call__(self, *args, **kwargs):
        if _hook.tracer is not None:        # a compiled step replays only in the same mode
            _hook.tracer.module(self)
        d = self.__dict__
        if not (d.get("_forward_hooks") or d.get("_forward_pre_hooks") or d.get("_backward_hooks")
                or d.get("_backward_pre_hooks") or _any_global_hooks()):
            return self.forward(*args, **kwargs)
        return self._call_with_hooks(args, kwargs)

    def _hooks(self, name):
        return self.__dict__.get(name) or {}

    def _call_with_hooks(self, args, kwargs):
        if _hook.tracer is not None:        # (a replay would not call them)
            _hook.tracer.unsupported("a module hook")
        pre_kw = self._hooks("_forward_pre_hooks_with_kwargs")
        for hook_id, hook in (*_global_forward_pre_hooks.items(),
                              *self._hooks("_forward_pre_hooks").items()):
            if hook_id in pre_kw:
                out = hook(self, args, kwargs)
                if out is not None:
                    if not (isinstance(out, tuple) and len(out) == 2):
                        raise RuntimeError("forward pre-hook must return None or a tuple of "
                                           f"(new_args, new_kwargs), but got {out}.")
                    args, kwargs = out
            else:
                out = hook(self, args)
                if out is not None:
                    args = out if isinstance(out, tuple) else (out,)
        backward_hooks = [*_global_backward_hooks.values(), *self._hooks("_backward_hooks").values()]
        backward_pre = [*_global_backward_pre_hooks.values(),
                        *self._hooks("_backward_pre_hooks").values()]
        bw = _BackwardHook(self, backward_hooks, backward_pre) if backward_hooks or backward_pre \
            else None
        if bw is not None and backward_hooks:
            args = bw.setup_inputs(args)
        with_kw = {**_global_forward_hooks_with_kwargs, **self._hooks("_forward_hooks_with_kwargs")}
        always = {**_global_forward_hooks_always_called,
                  **self._hooks("_forward_hooks_always_called")}
        forward_hooks = (*_global_forward_hooks.items(), *self._hooks("_forward_hooks").items())
        try:
            result = self.forward(*args, **kwargs)
        except Exception:
            for hook_id, hook in forward_hooks:      # always_call hooks run even then
                if hook_id in always:
                    try:
                        if hook_id in with_kw:
                            hook(self, args, kwargs, None)
                        else:
                            hook(self, args, None)
                    except Exception:
                        pass
            raise
        for hook_id, hook in forward_hooks:
            out = hook(self, args, kwargs, result) if hook_id in with_kw else hook(self, args, result)
            if out is not None:
                result = out
        if bw is not None:
            result = bw.setup_outputs(result)
        return result

    def _hook_dict(self, name):
        d = self.__dict__.get(name)
        if d is None:
            d = self.__dict__[name] = OrderedDict()
        return d

    def _add_hook(self, name, hook, prepend, flags=()):
        _hook.module_changes += 1
        hooks = self._hook_dict(name)
        handle = RemovableHandle(hooks, extra_dict=[self._hook_dict(f) for f, on in flags])
        hooks[handle.id] = hook
        for f, on in flags:
            if on:
                self._hook_dict(f)[handle.id] = True
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        return handle

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False, always_call=False):
        """hook(module, args, output) (with_kwargs: hook(module, args, kwargs, output)) -> None or
        a replacement output. prepend: run before the hooks already registered."""
        return self._add_hook("_forward_hooks", hook, prepend,
                              (("_forward_hooks_with_kwargs", with_kwargs),
                               ("_forward_hooks_always_called", always_call)))

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """hook(module, args) -> None or replacement args (with_kwargs: hook(module, args, kwargs)
        -> None or (args, kwargs))."""
        return self._add_hook("_forward_pre_hooks", hook, prepend,
                              (("_forward_pre_hooks_with_kwargs", with_kwargs),))

    def register_full_backward_hook(self, hook, prepend=False):
        """hook(module, grad_input, grad_output) -> None or a replacement grad_input: runs when the
        gradients with respect to the module's tensor inputs are computed."""
        return self._add_hook("_backward_hooks", hook, prepend)

    def register_full_backward_pre_hook(self, hook, prepend=False):
        """hook(module, grad_output) -> None or a replacement grad_output: runs when the gradients
        with respect to the module's outputs are ready."""
        return self._add_hook("_backward_pre_hooks", hook, prepend)

    # ---- registration ----------------------------------------------------------------------
    def register_parameter(self, name, param):
        _hook.module_changes += 1
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"parameter name should be a string. Got {_typename(name)}")
        if "." in name:
            raise KeyError('parameter name can\'t contain "."')
        if name == "":
            raise KeyError('parameter name can\'t be empty string ""')
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is None:
            self._parameters[name] = None
        elif not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{_typename(param)}' object to parameter '{name}' "
                            "(jitgrad.nn.Parameter or None required)")
        elif param._node >= 0:
            raise ValueError(f"Cannot assign non-leaf Tensor to parameter '{name}'. Model parameters "
                             f"must be created explicitly. To express '{name}' as a function of another "
                             "Tensor, compute the value in the forward() method.")
        else:
            self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        _hook.module_changes += 1
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"buffer name should be a string. Got {_typename(name)}")
        if "." in name:
            raise KeyError('buffer name can\'t contain "."')
        if name == "":
            raise KeyError('buffer name can\'t be empty string ""')
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{_typename(tensor)}' object to buffer '{name}' "
                            "(jitgrad Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name, module):
        _hook.module_changes += 1
        if not isinstance(module, Module) and module is not None:
            raise TypeError(f"{_typename(module)} is not a Module subclass")
        if not isinstance(name, str):
            raise TypeError(f"module name should be a string. Got {_typename(name)}")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        if "." in name:
            raise KeyError(f'module name can\'t contain ".", got: {name}')
        if name == "":
            raise KeyError('module name can\'t be empty string ""')
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name, value):
        _hook.module_changes += 1
        def remove_from(*dicts_or_sets):
            for d in dicts_or_sets:
                if name in d:
                    if isinstance(d, dict):
                        del d[name]
                    else:
                        d.discard(name)

        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            remove_from(self.__dict__, self._buffers, self._modules, self._non_persistent_buffers_set)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{_typename(value)}' as parameter '{name}' "
                                "(jitgrad.nn.Parameter or None expected)")
            self.register_parameter(name, value)
        else:
            modules = self.__dict__.get("_modules")
            if isinstance(value, Module):
                if modules is None:
                    raise AttributeError("cannot assign module before Module.__init__() call")
                remove_from(self.__dict__, self._parameters, self._buffers,
                            self._non_persistent_buffers_set)
                modules[name] = value
            elif modules is not None and name in modules:
                if value is not None:
                    raise TypeError(f"cannot assign '{_typename(value)}' as child module '{name}' "
                                    "(jitgrad.nn.Module or None expected)")
                modules[name] = value
            else:
                buffers = self.__dict__.get("_buffers")
                if buffers is not None and name in buffers:
                    if value is not None and not isinstance(value, Tensor):
                        raise TypeError(f"cannot assign '{_typename(value)}' as buffer '{name}' "
                                        "(jitgrad Tensor or None expected)")
                    buffers[name] = value
                else:
                    object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            s = d.get(store)
            if s is not None and name in s:
                return s[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        _hook.module_changes += 1
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        keys = (dir(type(self)) + list(self.__dict__) + list(self._parameters) + list(self._modules)
                + list(self._buffers))
        return sorted(k for k in keys if not k[0].isdigit())

    # ---- traversal -------------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        if memo is None:
            memo = set()
        if self not in memo:
            if remove_duplicate:
                memo.add(self)
            yield prefix, self
            for name, module in self._modules.items():
                if module is None:
                    continue
                yield from module.named_modules(memo, prefix + ("." if prefix else "") + name,
                                                remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        memo = set()
        for name, module in self._modules.items():
            if module is not None and module not in memo:
                memo.add(module)
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, get_members, prefix="", recurse=True, remove_duplicate=True):
        memo = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse \
            else [(prefix, self)]
        for module_prefix, module in modules:
            for k, v in get_members(module):
                if v is None or id(v) in memo:
                    continue
                if remove_duplicate:
                    memo.add(id(v))
                yield module_prefix + ("." if module_prefix else "") + k, v

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members(lambda m: m._parameters.items(), prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members(lambda m: m._buffers.items(), prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target):
        if target == "":
            return self
        mod = self
        for item in target.split("."):
            if not hasattr(mod, item):
                raise AttributeError(f"{mod._get_name()} has no attribute `{item}`")
            mod = getattr(mod, item)
            if not isinstance(mod, Module):
                raise AttributeError(f"`{item}` is not an nn.Module")
        return mod

    def get_parameter(self, target):
        module_path, _, name = target.rpartition(".")
        mod = self.get_submodule(module_path)
        if name not in mod._parameters:
            raise AttributeError(f"{mod._get_name()} has no parameter `{name}`")
        return mod._parameters[name]

    def apply(self, fn):
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients -----------------------------------------------------------------
    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        tracer = _hook.tracer
        if tracer is not None and not (set_to_none and tracer.zero_grad(list(self.parameters()),
                                                                        module=self)):
            with tracer.host(self.zero_grad, set_to_none):      # replayed as is
                return zero_grads(self.parameters(), set_to_none)
        zero_grads(self.parameters(), set_to_none)

    # ---- dtype conversion ---------------------------------------------------------------------
    def _apply_dtype(self, np_dtype):
        for t in itertools.chain(self.parameters(), self.buffers()):
            if t._a.dtype.kind == "f" and t._a.dtype != np_dtype:
                t._a = t._a.astype(np_dtype)
                t._ver = None
                t._leafvar = -1     # (its leaf row has the old dtype: a float64 one would
                                    # widen every float32 backward reaching it)
                if t._grad is not None:
                    _hook.grad_epoch += 1
                    t._grad._a = t._grad._a.astype(np_dtype)
        return self

    def to(self, *args, **kwargs):
        """Convert floating-point parameters and buffers to a dtype (devices other than cpu: no)."""
        dtype = kwargs.get("dtype")
        for a in itertools.chain(args, [kwargs.get("device")]):
            if isinstance(a, dtypes.dtype):
                dtype = a
            elif isinstance(a, Tensor):
                dtype = a.dtype
            elif a is not None and not isinstance(a, bool):   # a device (non_blocking: a bool)
                _device.as_device(a)
        if dtype is None:
            return self
        if not dtype.is_floating_point:
            raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired "
                            f"dtype={dtype}")
        return self._apply_dtype(dtype.np)

    def double(self):
        return self._apply_dtype(np.dtype(np.float64))

    def float(self):
        return self._apply_dtype(np.dtype(np.float32))

    def cpu(self):
        return self

    def cuda(self, device=None):
        """As in PyTorch's CPU build: a module holding tensors cannot move to CUDA."""
        if next(itertools.chain(self.parameters(), self.buffers()), None) is not None:
            raise AssertionError("Torch not compiled with CUDA enabled")
        return self

    def type(self, dst_type):
        return self.to(dst_type)

    # ---- state dicts --------------------------------------------------------------------------
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = param if keep_vars else param.detach()
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = buf if keep_vars else buf.detach()

    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
        """An OrderedDict of every parameter and persistent buffer, keyed by dotted path.

        Values are detached tensors sharing storage with the parameters, as in PyTorch."""
        if args:
            destination = args[0] if len(args) > 0 else destination
            prefix = args[1] if len(args) > 1 else prefix
            keep_vars = args[2] if len(args) > 2 else keep_vars
        if destination is None:
            destination = OrderedDict()
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=destination, prefix=prefix + name + ".",
                                  keep_vars=keep_vars)
        return destination

    def _load_from_state_dict(self, state_dict, prefix, strict, missing_keys, unexpected_keys,
                              error_msgs, assign):
        persistent = {k: v for k, v in self._buffers.items()
                      if k not in self._non_persistent_buffers_set}
        local_state = {k: v for k, v in itertools.chain(self._parameters.items(), persistent.items())
                       if v is not None}
        for name, param in local_state.items():
            key = prefix + name
            if key not in state_dict:
                if strict:
                    missing_keys.append(key)
                continue
            value = state_dict[key]
            if not isinstance(value, Tensor):
                error_msgs.append(f'While copying the parameter named "{key}", expected jitgrad.Tensor '
                                  f"or Tensor-like object from checkpoint but received {type(value)}")
                continue
            if param.ndim == 0 and value.ndim == 1 and value.shape[0] == 1:
                value = value.reshape(())
            if value.shape != param.shape:
                error_msgs.append(f"size mismatch for {key}: copying a param with shape {value.shape} "
                                  f"from checkpoint, the shape in current model is {param.shape}.")
                continue
            try:
                if assign:
                    if isinstance(param, Parameter) and not isinstance(value, Parameter):
                        value = Parameter(value, requires_grad=param.requires_grad)
                    setattr(self, name, value)
                else:
                    with no_grad():
                        _copy_values(param, value)
            except Exception as ex:  # noqa: BLE001  (reported like PyTorch, with the key)
                error_msgs.append(f'While copying the parameter named "{key}", whose dimensions in the '
                                  f"model are {param.size()} and whose dimensions in the checkpoint "
                                  f"are {value.size()}, an exception occurred : {ex.args}.")
        if strict:
            for key in state_dict:
                if key.startswith(prefix):
                    input_name = key[len(prefix):].split(".", 1)
                    if len(input_name) > 1:
                        if input_name[0] not in self._modules:
                            unexpected_keys.append(key)
                    elif input_name[0] not in local_state:
                        unexpected_keys.append(key)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy parameters and buffers from state_dict, checking keys and shapes as PyTorch does."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        missing_keys, unexpected_keys, error_msgs = [], [], []
        state_dict = OrderedDict(state_dict)

        def load(module, local_state_dict, prefix=""):
            module._load_from_state_dict(local_state_dict, prefix, True, missing_keys,
                                         unexpected_keys, error_msgs, assign)
            for name, child in module._modules.items():
                if child is not None:
                    child_prefix = prefix + name + "."
                    load(child, {k: v for k, v in local_state_dict.items()
                                 if k.startswith(child_prefix)}, child_prefix)

        load(self, state_dict)
        if strict:
            if unexpected_keys:
                error_msgs.insert(0, "Unexpected key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in unexpected_keys)))
            if missing_keys:
                error_msgs.insert(0, "Missing key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in missing_keys)))
        if error_msgs:
            raise RuntimeError("Error(s) in loading state_dict for {}:\n\t{}".format(
                type(self).__name__, "\n\t".join(error_msgs)))
        return _IncompatibleKeys(missing_keys, unexpected_keys)

    # ---- printing -------------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        extra_repr = self.extra_repr()
        extra_lines = extra_repr.split("\n") if extra_repr else []
        child_lines = [f"({key}): " + _addindent(repr(module), 2)
                       for key, module in self._modules.items()]
        lines = extra_lines + child_lines
        main_str = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main_str += extra_lines[0]
            else:
                main_str += "\n  " + "\n  ".join(lines) + "\n"
        return main_str + ")"


def _copy_values(dst, src):
    """dst.copy_(src) for a parameter or buffer: in place, so views (optimizer buffers) stay."""
    dst._write(src._a)


def zero_grads(params, set_to_none=True):
    """Reset .grad of every tensor in params, as Module.zero_grad and Optimizer.zero_grad do."""
    _hook.grad_epoch += 1
    for p in params:
        g = p._grad
        if g is not None:
            if set_to_none:
                p._grad = None
            else:
                g.detach_()
                g._a[...] = 0

"""jitgrad.device, and the default device: PyTorch's CPU-only build, where every device string
parses but only the CPU holds tensors. Asking for another device raises the error that build
raises (CUDA: "Torch not compiled with CUDA enabled", MPS: "PyTorch is not linked with support
for mps devices", ...), so a script's "pick a device" preamble runs on the CPU."""
import builtins
import re

import numpy as np

_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve", "fpga",
          "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia", "privateuseone")
_STRING = re.compile(r"([a-zA-Z_]+)(?::(0|[1-9][0-9]*))?")
# how the CPU build refuses each device (creating a tensor on it / moving a tensor to it)
_COMPILED = {"cuda": "Torch not compiled with CUDA enabled",
             "xpu": "Torch not compiled with XPU enabled",
             "mtia": "Torch not compiled with MTIA enabled. Ensure you have `import "
                     "mtia.host_runtime.torch_mtia.dynamic_library` in your python src file and "
                     "include `//mtia/host_runtime/torch_mtia:torch_mtia` as your target "
                     "dependency!"}
_DISPATCH_KEYS = {"ipu": "IPU", "hip": "HIP", "ve": "VE", "fpga": "FPGA", "maia": "MAIA",
                  "xla": "XLA", "lazy": "Lazy", "vulkan": "Vulkan", "mps": "MPS"}
_CAFFE2 = ("mkldnn", "opengl", "opencl", "ideep")


def _type_name(v):
    t = type(v)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__name__}"


def _is_int(v):
    return isinstance(v, (builtins.int, np.integer)) and \
        not isinstance(v, (builtins.bool, np.bool_))


class device:
    """A device as torch.device: ``device("cpu")``, ``device("cpu", 0)``, ``device("cpu:0")``,
    ``device(other)``; ``.type`` and ``.index`` (None when not given). Equal only to devices."""
    __slots__ = ("type", "index", "_previous")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device(): argument 'type' must be str, not jitgrad.device")
            self.type, self.index = type.type, type.index
            return
        if _is_int(type) and index is None:
            if type < 0:
                raise RuntimeError("Device index must not be negative")
            raise RuntimeError("Cannot access accelerator device when none is available.")
        if not isinstance(type, str):
            raise TypeError(f"device() received an invalid combination of arguments - got "
                            f"({_type_name(type)}), but expected one of:\n"
                            f" * (jitgrad.device device)\n * (str type, int index = -1)\n")
        if index is not None and not _is_int(index):
            raise TypeError(f"device(): argument 'index' (position 2) must be int, not "
                            f"{_type_name(index)}")
        if not type:
            raise RuntimeError("Device string must not be empty")
        head = re.match(r"[a-zA-Z_]*", type).group()
        if head not in _TYPES:
            raise RuntimeError(f"Expected one of {', '.join(_TYPES)} device type at start of "
                               f"device string: {type}")
        m = _STRING.fullmatch(type)
        if not m:
            raise RuntimeError(f"Invalid device string: '{type}'")
        if m.group(2) is not None:
            if index is not None:
                raise RuntimeError("type (string) must not include an index because index was "
                                   f"passed explicitly: {type}")
            index = builtins.int(m.group(2))
        if index is not None and index < 0:
            raise RuntimeError("Device index must not be negative")
        self.type = head
        self.index = None if index is None else builtins.int(index)

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):
        # as torch.device: a device never equals a string (x.device == "cpu" is False there too)
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __reduce__(self):
        return (device, (self.type, self.index))

    def __enter__(self):
        # `with jitgrad.device("cpu"):` makes it the default device inside the block
        self._previous = get_default_device()
        set_default_device(self)
        return self

    def __exit__(self, *exc):
        set_default_device(self._previous)
        return False


CPU = device("cpu")
_default = CPU


def _refuse(kind, factory):
    """The CPU build's error for a tensor on device type `kind` (`factory`: a creation function
    allocating there; else a tensor being converted or copied there)."""
    if kind in _COMPILED:
        return AssertionError(_COMPILED[kind])
    if kind in ("hpu", "privateuseone"):
        return ModuleNotFoundError(f"No module named 'jitgrad.{kind}'")
    if kind == "meta":
        return NotImplementedError("jitgrad runs on the cpu only, not on the 'meta' device")
    if factory or kind == "lazy":
        if kind in _CAFFE2:
            return RuntimeError(f"This is a grandfathered Caffe2 device type {kind}, it shouldn't "
                                "ever convert to a DispatchKey.")
        return NotImplementedError(
            f"Could not run 'aten::empty.memory_format' with arguments from the "
            f"'{_DISPATCH_KEYS[kind]}' backend. This could be because the operator doesn't exist "
            "for this backend, or was omitted during the selective/custom build process (if using "
            "custom build).")
    return RuntimeError(f"PyTorch is not linked with support for {kind} devices")


def as_device(d, factory=False):
    """The device a `device=` argument names (None: the default device). Raises PyTorch's
    CPU-build errors for a device that does not exist here; returns CPU."""
    if d is None:
        return _default
    if d is not CPU:
        if not isinstance(d, device):
            if not (isinstance(d, str) or _is_int(d)):
                raise TypeError(f"argument 'device' must be jitgrad.device, not {_type_name(d)}")
            d = device(d)
        if d.type != "cpu":
            raise _refuse(d.type, factory)
    return CPU


def set_default_device(d):
    """The device creation functions use when given none. Only the CPU exists: another device
    raises its error here rather than at the next creation."""
    global _default
    _default = CPU if d is None else as_device(d)


def get_default_device():
    return _default

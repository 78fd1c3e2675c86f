"""PyTorch-named dtypes over numpy dtypes."""
import builtins

import numpy as np


class dtype:
    __slots__ = ("name", "np", "is_floating_point", "itemsize", "tensor_type")

    def __init__(self, name, np_dtype, tensor_type):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.is_floating_point = self.np.kind == "f"
        self.itemsize = self.np.itemsize
        self.tensor_type = tensor_type

    def __repr__(self):
        return "jitgrad." + self.name

    def __reduce__(self):
        return (_by_name, (self.name,))


float32 = float = dtype("float32", np.float32, "FloatTensor")
float64 = double = dtype("float64", np.float64, "DoubleTensor")
float16 = half = dtype("float16", np.float16, "HalfTensor")
int64 = long = dtype("int64", np.int64, "LongTensor")
int32 = int = dtype("int32", np.int32, "IntTensor")
int16 = short = dtype("int16", np.int16, "ShortTensor")
int8 = dtype("int8", np.int8, "CharTensor")
uint8 = dtype("uint8", np.uint8, "ByteTensor")
bool = dtype("bool", np.bool_, "BoolTensor")

_ALL = (float32, float64, float16, int64, int32, int16, int8, uint8, bool)
_FROM_NP = {d.np: d for d in _ALL}


default_float = float32      # read at call time by creation functions and type promotion


def get_default_dtype():
    return default_float


def set_default_dtype(d):
    """The dtype of float data given no dtype (creation functions, tensor([1.5]), Tensor(...));
    a floating point dtype, as PyTorch requires."""
    global default_float
    if not isinstance(d, dtype):
        raise TypeError("invalid dtype object: only floating-point types are supported as the "
                        "default type")
    if not d.is_floating_point:
        raise TypeError("only floating-point types are supported as the default type")
    default_float = d


def _by_name(name):
    return globals()[name]


def from_numpy_dtype(np_dtype):
    try:
        return _FROM_NP[np.dtype(np_dtype)]
    except KeyError:
        raise TypeError(f"can't convert np.ndarray of type {np.dtype(np_dtype)}. The only supported "
                        "types are: float64, float32, float16, int64, int32, int16, int8, uint8, and bool.")


def to_numpy_dtype(d):
    """Accept a jitgrad dtype, a numpy dtype, or a Python type, as PyTorch does."""
    if isinstance(d, dtype):
        return d.np
    if d is builtins.float:
        return float64.np
    if d is builtins.int:
        return int64.np
    if d is builtins.bool:
        return bool.np
    return from_numpy_dtype(d).np


# PyTorch's C++ type names, as its error messages print them ("expected ... but got: float != double")
_C_NAMES = {float32: "float", float64: "double", float16: "c10::Half", int64: "long int",
            int32: "int", int16: "short int", int8: "signed char", uint8: "unsigned char",
            bool: "bool"}


def c_name(np_dtype):
    return _C_NAMES[from_numpy_dtype(np_dtype)]


def scalar_name(np_dtype):
    """PyTorch's ScalarType name: Float, Double, Long, ..."""
    return from_numpy_dtype(np_dtype).tensor_type[:-6]

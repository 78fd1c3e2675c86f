"""A tensor's storage as PyTorch sees it: the numpy array that holds its memory and its byte offset
in it. deepcopy, pickle and jitgrad.save record tensors this way so that views of one array (tied
weights, ``w[1:]`` next to ``w``) come back sharing memory, as PyTorch keeps shared storages."""
import numpy as np


def root_of(a):
    """The outermost array whose memory a views (a itself if it owns its memory). Only contiguous
    arrays can be rebuilt around, so the walk stops below a non-contiguous base."""
    while isinstance(a.base, np.ndarray) and (a.base.flags.c_contiguous
                                               or a.base.flags.f_contiguous):
        a = a.base
    return a


def byte_offset(a, root):
    """Where a's first element is in root's memory, in bytes."""
    return a.__array_interface__["data"][0] - root.__array_interface__["data"][0]


def view_of(root, offset, shape, strides, dtype):
    """The array (shape, strides, dtype) at offset bytes into root's memory, sharing it. Raises
    ValueError if it would reach outside root."""
    return np.ndarray(tuple(shape), dtype, buffer=root, offset=offset, strides=tuple(strides))


def deepcopy_array(a, memo):
    """A copy of a; arrays viewing one root (copied once per deepcopy via memo) keep sharing."""
    from copy import deepcopy
    root = root_of(a)
    if root is a:
        return deepcopy(a, memo)
    new_root = deepcopy(root, memo)
    if new_root.strides != root.strides:       # copied in another memory order: cannot re-view
        return a.copy()
    return view_of(new_root, byte_offset(a, root), a.shape, a.strides, a.dtype)

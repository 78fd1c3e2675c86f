"""parameters_to_vector and vector_to_parameters, as torch.nn.utils."""
from ... import ops
from ...tensor import Tensor
from ..modules.module import _typename

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters):
    """All parameters flattened and concatenated into one vector (recorded: differentiable)."""
    return ops.cat([p.view(-1) for p in parameters])


def vector_to_parameters(vec, parameters):
    """Point each parameter's storage at its slice of vec (PyTorch: ``param.data = ...``), so the
    parameters then share storage with vec."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected jitgrad.Tensor, but got: {_typename(vec)}")
    pointer = 0
    for param in parameters:
        num_param = param.numel()
        param.data = vec[pointer:pointer + num_param].view_as(param).data
        pointer += num_param

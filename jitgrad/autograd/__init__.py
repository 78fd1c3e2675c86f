"""jitgrad.autograd: backward, grad, Variable, grad modes, gradcheck and gradgradcheck, as
torch.autograd; create_graph=True records the backward pass as ops (graph.py)."""
from ..tensor import Tensor
from .differentiate import Variable, backward, grad
from .grad_mode import no_grad, enable_grad, set_grad_enabled, inference_mode
from .gradcheck import gradcheck, gradgradcheck, GradcheckError
from . import functional
from .inspect import (tape_rows, format_tape, to_dot, draw, trace_backward, tape_stats,
                      ROW_COLUMNS)
from ..engine.tape import is_grad_enabled
from . import anomaly, function, hooks, profiler
from .function import Function, FunctionCtx, NestedIOFunction, once_differentiable
from .anomaly import detect_anomaly, set_detect_anomaly

__all__ = ["backward", "grad", "Variable", "no_grad", "enable_grad", "set_grad_enabled",
           "inference_mode", "gradcheck", "gradgradcheck", "GradcheckError", "is_grad_enabled",
           "tape_rows", "format_tape", "to_dot", "draw", "trace_backward", "tape_stats",
           "ROW_COLUMNS", "Function", "FunctionCtx", "NestedIOFunction", "once_differentiable",
           "detect_anomaly", "set_detect_anomaly", "profiler"]


def _tensor_backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate the gradient of this tensor w.r.t. the leaves into their .grad (see backward)."""
    backward(self, None if gradient is None else [gradient], retain_graph, create_graph,
             inputs=inputs)


Tensor.backward = _tensor_backward     # attached here, so tensor.py needs no autograd import

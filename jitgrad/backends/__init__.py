"""jitgrad.backends: the flags scripts read and set (cudnn.deterministic, cudnn.benchmark,
cuda.matmul.allow_tf32, ...) and the availability checks, as PyTorch's CPU-only build answers
them. Setting a flag changes nothing here."""
from . import cuda, cudnn, mkldnn, mps, openmp  # noqa: F401

"""jitgrad.nn's modules: the Module base class, layers, activations, normalization, dropout,
containers and losses."""
from .module import Module
from .container import Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict
from .layers import Identity, Linear, Flatten, Unflatten, Embedding, LayerNorm
from .activation import (Threshold, ReLU, Hardtanh, ReLU6, Sigmoid, Hardsigmoid, Tanh, SiLU, Mish,
                         Hardswish, ELU, CELU, SELU, GLU, GELU, Hardshrink, LeakyReLU, LogSigmoid,
                         Softplus, Softshrink, PReLU, Softsign, Tanhshrink, Softmin, Softmax,
                         Softmax2d, LogSoftmax)
from .batchnorm import BatchNorm1d, BatchNorm2d, BatchNorm3d
from .dropout import Dropout, Dropout1d, Dropout2d, Dropout3d, AlphaDropout, FeatureAlphaDropout
from .loss import MSELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss
from .distance import PairwiseDistance, CosineSimilarity
from .activation import MultiheadAttention
from .transformer import TransformerEncoderLayer, TransformerEncoder
from . import activation, batchnorm, container, distance, dropout, layers, loss, module, transformer

__all__ = (["Module"] + container.__all__ + layers.__all__ + activation.__all__
           + batchnorm.__all__ + dropout.__all__ + loss.__all__ + distance.__all__ + transformer.__all__)

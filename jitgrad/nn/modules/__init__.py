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
from .loss import (MSELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss, L1Loss, BCELoss, SmoothL1Loss,
                   HuberLoss)
from .distance import PairwiseDistance, CosineSimilarity
from .activation import MultiheadAttention
from .transformer import TransformerEncoderLayer, TransformerEncoder
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .pooling import (MaxPool1d, MaxPool2d, MaxPool3d, AvgPool1d, AvgPool2d, AvgPool3d, AdaptiveAvgPool1d,
                      AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool1d, AdaptiveMaxPool2d,
                      AdaptiveMaxPool3d, MaxUnpool1d, MaxUnpool2d, MaxUnpool3d, LPPool1d, LPPool2d, Upsample,
                      UpsamplingNearest2d, UpsamplingBilinear2d, PixelShuffle, PixelUnshuffle, Fold, Unfold)
from .normalization import GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d
from . import activation, batchnorm, container, distance, dropout, layers, loss, module, transformer
from . import conv, normalization, pooling

__all__ = (["Module"] + container.__all__ + layers.__all__ + activation.__all__
           + batchnorm.__all__ + dropout.__all__ + loss.__all__ + distance.__all__ + transformer.__all__
           + conv.__all__ + pooling.__all__ + normalization.__all__)

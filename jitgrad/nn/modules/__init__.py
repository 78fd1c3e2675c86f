"""jitgrad.nn's modules: the Module base class, layers, containers and losses."""
from .module import Module
from .container import Sequential, ModuleList
from .layers import (Identity, Linear, ReLU, Tanh, Sigmoid, GELU, LeakyReLU, Softmax, Dropout,
                     Embedding, LayerNorm)
from .loss import MSELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss

__all__ = ["Module", "Sequential", "ModuleList", "Identity", "Linear", "ReLU", "Tanh", "Sigmoid",
           "GELU", "LeakyReLU", "Softmax", "Dropout", "Embedding", "LayerNorm", "MSELoss",
           "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss"]

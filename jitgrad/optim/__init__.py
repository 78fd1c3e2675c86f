"""jitgrad.optim: optimizers whose step() updates every parameter of a group in one compiled call,
numerically matching torch.optim, and learning-rate schedulers."""
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam, AdamW
from .rmsprop import RMSprop
from .adaptive import Adagrad, Adamax, NAdam, RAdam, Adadelta, ASGD, Rprop
from .lbfgs import LBFGS
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam",
           "Adadelta", "ASGD", "LBFGS", "lr_scheduler", "Rprop"]

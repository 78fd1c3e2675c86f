"""torch.backends.mps on a build without MPS."""


def is_available():
    return False


def is_built():
    return False

"""torch.backends.openmp: numpy and Numba run the CPU kernels here."""


def is_available():
    return False

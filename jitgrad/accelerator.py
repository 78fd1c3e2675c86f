"""jitgrad.accelerator: none exists here, as in PyTorch's CPU-only build."""


def is_available():
    return False


def current_accelerator(check_available=False):
    return None


def device_count():
    return 0


def _none_available(*args, **kwargs):
    raise RuntimeError("Cannot access accelerator device when none is available.")


current_device_index = current_device_idx = set_device_index = set_device_idx = synchronize = \
    _none_available

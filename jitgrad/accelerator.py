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

# memory queries and stream control need a device too
empty_cache = memory_allocated = max_memory_allocated = memory_reserved = max_memory_reserved = \
    memory_stats = reset_peak_memory_stats = reset_accumulated_memory_stats = current_stream = \
    set_stream = get_memory_info = _none_available

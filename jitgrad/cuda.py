"""jitgrad.cuda as PyTorch's CPU-only build has it: no device, seeding is a no-op, and what needs a
GPU raises "Torch not compiled with CUDA enabled"."""


def _no_cuda(*args, **kwargs):
    raise AssertionError("Torch not compiled with CUDA enabled")


def is_available():
    return False


def device_count():
    return 0


def is_initialized():
    return False


def _nothing(*args, **kwargs):
    return None


# seeding and cache control do nothing without CUDA (PyTorch's calls are lazy and never fail)
manual_seed = manual_seed_all = seed = seed_all = empty_cache = _nothing
current_device = synchronize = get_device_name = get_device_properties = get_device_capability = \
    initial_seed = init = set_device = _no_cuda


def is_bf16_supported(including_emulation=True):
    return False


def memory_allocated(device=None):
    return 0


max_memory_allocated = memory_reserved = max_memory_reserved = memory_allocated


# the per-device RNG states: there are no devices
get_rng_state = current_stream = ipc_collect = mem_get_info = _no_cuda


def get_rng_state_all():
    return []


def set_rng_state_all(new_states):
    return None


def get_arch_list():
    return []

"""torch.backends.cudnn on a CPU build: not available; its flags are settable."""
enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available():
    return False


def version():
    return None

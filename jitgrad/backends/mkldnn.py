"""torch.backends.mkldnn: no oneDNN here."""
enabled = False


def is_available():
    return False

"""``torch.utils.data`` names, from jitgrad.data."""
from ..data import DataLoader, TensorDataset  # noqa: F401

__all__ = ["DataLoader", "TensorDataset"]

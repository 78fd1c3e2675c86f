"""``torch.utils.data`` names, from jitgrad.data."""
from ..data import DataLoader, TensorDataset, Subset, random_split  # noqa: F401

__all__ = ["DataLoader", "TensorDataset", "Subset", "random_split"]

"""jitgrad.data: toy datasets made on the spot (no download, no scikit-learn) and a minibatch loader.

``make_moons`` and ``make_blobs`` follow scikit-learn's algorithms draw for draw, so a seed gives
the same points as ``sklearn.datasets``. ``make_digits`` renders 8x8 handwritten-looking digits
(0..16 grey levels, like scikit-learn's ``load_digits``) from a built-in font with random
rotation, scale, shear, shift, stroke weight and noise.
"""
import bisect
import itertools
import math
import warnings

import numpy as np

from .random import _numpy_rng
from .tensor import Tensor, _wrap

__all__ = ["make_moons", "make_blobs", "make_digits", "Dataset", "IterableDataset", "ChainDataset", "ConcatDataset", "TensorDataset",
           "DataLoader", "Subset", "random_split"]


def _check_random_state(seed):
    """scikit-learn's convention: None -> numpy's global RandomState, int -> RandomState(int)."""
    if seed is None:
        return np.random.mtrand._rand
    if isinstance(seed, (int, np.integer)):
        return np.random.RandomState(int(seed))
    if isinstance(seed, (np.random.RandomState, np.random.Generator)):
        return seed
    raise ValueError(f"{seed!r} cannot be used to seed a numpy.random.RandomState instance")


def _shuffle(rng, *arrays):
    idx = np.arange(arrays[0].shape[0])
    rng.shuffle(idx)
    return tuple(a[idx] for a in arrays)


def make_moons(n_samples=100, *, shuffle=True, noise=None, random_state=None):
    """Two interleaving half circles. Returns X (n, 2) float64 and y (n,) int64 in {0, 1}."""
    if isinstance(n_samples, (int, np.integer)):
        n_out = n_samples // 2
        n_in = n_samples - n_out
    else:
        n_out, n_in = n_samples
    rng = _check_random_state(random_state)
    outer_x = np.cos(np.linspace(0, np.pi, n_out))
    outer_y = np.sin(np.linspace(0, np.pi, n_out))
    inner_x = 1 - np.cos(np.linspace(0, np.pi, n_in))
    inner_y = 1 - np.sin(np.linspace(0, np.pi, n_in)) - 0.5
    X = np.vstack([np.append(outer_x, inner_x), np.append(outer_y, inner_y)]).T
    y = np.hstack([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    if shuffle:
        X, y = _shuffle(rng, X, y)
    if noise is not None:
        X += rng.normal(scale=noise, size=X.shape)
    return X, y


def make_blobs(n_samples=100, n_features=2, *, centers=None, cluster_std=1.0,
               center_box=(-10.0, 10.0), shuffle=True, random_state=None, return_centers=False):
    """Isotropic Gaussian blobs. Returns X (n, n_features) float64 and y (n,) int64."""
    rng = _check_random_state(random_state)
    if isinstance(n_samples, (int, np.integer)):
        if centers is None:
            centers = 3
        if isinstance(centers, (int, np.integer)):
            n_centers = int(centers)
            centers = rng.uniform(center_box[0], center_box[1], size=(n_centers, n_features))
        else:
            centers = np.asarray(centers, np.float64)
            n_features = centers.shape[1]
            n_centers = centers.shape[0]
        per_center = [int(n_samples // n_centers)] * n_centers
        for i in range(n_samples % n_centers):
            per_center[i] += 1
    else:
        per_center = [int(n) for n in n_samples]
        if centers is None:
            centers = rng.uniform(center_box[0], center_box[1], size=(len(per_center), n_features))
        centers = np.asarray(centers, np.float64)
        if len(centers) != len(per_center):
            raise ValueError("Length of `n_samples` not consistent with number of centers. Got "
                             f"n_samples = {n_samples} and centers = {centers}")
        n_features = centers.shape[1]
    stds = np.full(len(centers), cluster_std) if np.ndim(cluster_std) == 0 else \
        np.asarray(cluster_std, np.float64)
    ends = np.cumsum(per_center)
    X = np.empty((int(ends[-1]) if len(ends) else 0, n_features), np.float64)
    y = np.empty(X.shape[0], np.int64)
    for i, (n, std) in enumerate(zip(per_center, stds)):
        start = ends[i - 1] if i > 0 else 0
        X[start: ends[i]] = rng.normal(loc=centers[i], scale=std, size=(n, n_features))
        y[start: ends[i]] = i
    if shuffle:
        X, y = _shuffle(rng, X, y)
    return (X, y, centers) if return_centers else (X, y)


# 5x7 glyphs of the digits 0-9, one string per row
_FONT = (
    (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
)
_GLYPHS = np.array([[[c == "#" for c in row] for row in g] for g in _FONT], np.float64)


def make_digits(n_samples=1797, *, size=8, noise=1.0, random_state=None):
    """Handwritten-looking digits: X (n, size*size) float64 grey levels 0..16, y (n,) int64 0..9.

    Each sample is a glyph of the built-in font under a random rotation (+-12 degrees), scale,
    shear and shift, drawn with a random stroke weight at 3x resolution, then averaged down to
    size x size, quantised to 17 levels, with Gaussian pixel noise of std ``noise`` levels."""
    rng = np.random.default_rng(random_state) if not isinstance(random_state, np.random.Generator) \
        else random_state
    y = np.arange(n_samples, dtype=np.int64) % 10
    rng.shuffle(y)
    hi = 3 * size
    # hi-res pixel centres in [-1, 1]^2 (x right, y down); float32 is plenty here
    c = ((np.arange(hi) + 0.5) / hi * 2 - 1).astype(np.float32)
    gx, gy = np.meshgrid(c, c)
    pts = np.stack([gx.ravel(), gy.ravel()])                       # (2, hi*hi)
    f4 = np.float32
    ang = (rng.uniform(-12, 12, n_samples) * math.pi / 180).astype(f4)
    scale = rng.uniform(0.85, 1.1, n_samples).astype(f4)
    shear = rng.uniform(-0.25, 0.25, n_samples).astype(f4)
    shift = rng.uniform(-0.12, 0.12, (n_samples, 2)).astype(f4)
    weight = rng.uniform(0.35, 0.6, n_samples).astype(f4)          # stroke half-width, glyph cells
    cos, sin = np.cos(ang), np.sin(ang)
    # inverse map: image point -> glyph cell coordinates (glyph spans 5x7 cells, centred)
    px = pts[0][None, :] - shift[:, :1]
    py = pts[1][None, :] - shift[:, 1:]
    ux = (cos[:, None] * px + sin[:, None] * py) / scale[:, None]
    uy = (-sin[:, None] * px + cos[:, None] * py) / scale[:, None]
    ux = ux - shear[:, None] * uy
    col = (ux / f4(0.78) + 1) * f4(2.5) - f4(0.5)                   # glyph 5 wide, 7 tall
    row = (uy / f4(0.92) + 1) * f4(3.5) - f4(0.5)
    # a point can only be within reach (< 1 cell) of its nearest cell or the next one towards it
    R = np.rint(row).astype(np.int64)
    K = np.rint(col).astype(np.int64)
    R2 = R + np.where(row > R, 1, -1)
    K2 = K + np.where(col > K, 1, -1)
    base = (y * 35)[:, None]
    reach = (f4(0.05) + weight)[:, None]
    flat = _GLYPHS.reshape(-1)
    ink = np.zeros(col.shape, np.bool_)
    for r in (R, R2):
        ok_r = (r >= 0) & (r < 7) & (np.abs(row - r) <= reach)
        for k in (K, K2):
            ok = ok_r & (k >= 0) & (k < 5) & (np.abs(col - k) <= reach)
            ink |= ok & (flat[np.where(ok, base + r * 5 + k, 0)] > 0)
    img = ink.reshape(n_samples, size, 3, size, 3).mean(axis=(2, 4), dtype=np.float64) * 16
    img = img + rng.normal(0, noise, img.shape)
    X = np.clip(np.rint(img), 0, 16).reshape(n_samples, size * size) + 0.0
    return X, y


# ---- minibatches ------------------------------------------------------------------------------
def _as_array(x):
    return x._a if isinstance(x, Tensor) else np.asarray(x)


class Dataset:
    """A map-style dataset: ``__getitem__`` (and usually ``__len__``), as
    torch.utils.data.Dataset; ``a + b`` concatenates."""

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset given by ``__iter__`` (a stream), as torch.utils.data.IterableDataset."""

    def __iter__(self):
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __add__(self, other):
        return ChainDataset([self, other])


class ChainDataset(IterableDataset):
    """Several streams one after the other."""

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            yield from d

    def __len__(self):
        return sum(len(d) for d in self.datasets)


class ConcatDataset(Dataset):
    """Several datasets one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise AssertionError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise AssertionError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = []
        total = 0
        for d in self.datasets:
            total += len(d)
            self.cumulative_sizes.append(total)

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][idx - start]


class TensorDataset(Dataset):
    """Samples are the rows of several arrays or tensors with the same first dimension."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        self.tensors = tensors
        self._arrays = tuple(_as_array(t) for t in tensors)
        n = self._arrays[0].shape[0]
        if any(a.shape[0] != n for a in self._arrays):
            raise ValueError("Size mismatch between tensors")

    def __getitem__(self, index):
        return tuple(_wrap(np.asarray(a[index])) for a in self._arrays)

    def __len__(self):
        return self._arrays[0].shape[0]


class DataLoader:
    """Iterate over minibatches of a dataset, as torch.utils.data.DataLoader (single process).

    dataset: a TensorDataset, a tuple of arrays/tensors (rows are samples), one array/tensor, or
    any object with __len__ and __getitem__ returning tuples. Batches are tuples of tensors (or
    one tensor for a single array). shuffle draws a new order each epoch from ``generator`` (a
    jitgrad.Generator, or a numpy Generator), else from one seeded by ``seed``, else from jitgrad's
    default generator, which ``jitgrad.manual_seed`` seeds.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 generator=None):
        self.single = isinstance(dataset, (Tensor, np.ndarray))
        if self.single:
            dataset = TensorDataset(dataset)
        elif isinstance(dataset, (tuple, list)):
            dataset = TensorDataset(*dataset)
        if batch_size is None or int(batch_size) <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.generator = generator
        if isinstance(generator, np.random.Generator):
            self._rng = generator
        elif generator is not None:
            self._rng = _numpy_rng(generator, "DataLoader")
        else:
            self._rng = np.random.default_rng(seed) if seed is not None else None

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self):
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        rng = self._rng if self._rng is not None else _numpy_rng(None, "DataLoader")
        return rng.permutation(n)

    def __iter__(self):
        order = self._order()
        n, bs = len(order), self.batch_size
        arrays = getattr(self.dataset, "_arrays", None)
        for start in range(0, n, bs):
            idx = order[start: start + bs]
            if self.drop_last and len(idx) < bs:
                return
            if arrays is not None:
                batch = tuple(_wrap(a[idx]) for a in arrays)
            else:
                batch = _collate([self.dataset[int(i)] for i in idx])
            yield batch[0] if self.single else batch


def _collate(samples):
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return tuple(_collate_field([s[k] for s in samples]) for k in range(len(first)))
    return _collate_field(samples)


def _collate_field(values):
    arrays = [_as_array(v) for v in values]
    out = np.stack(arrays)
    if out.dtype.kind == "f" and not any(isinstance(v, (Tensor, np.ndarray)) for v in values):
        out = out.astype(np.float64)   # PyTorch collates Python floats as float64
    return _wrap(out)


class Subset(Dataset):
    """The samples of dataset at indices, in that order (torch.utils.data.Subset)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=None):
    """Split dataset into Subsets of the given lengths (or fractions summing to 1), in a random
    order drawn from generator (default: jitgrad's default generator), as torch's random_split."""
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        subset_lengths = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            subset_lengths.append(math.floor(len(dataset) * frac))
        remainder = len(dataset) - sum(subset_lengths)
        for i in range(remainder):          # spread the rest round-robin, as torch
            subset_lengths[i % len(subset_lengths)] += 1
        lengths = subset_lengths
        for i, length in enumerate(lengths):
            if length == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty "
                              "dataset.", stacklevel=2)
    if sum(lengths) != len(dataset):
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    indices = _numpy_rng(generator, "random_split").permutation(sum(lengths)).tolist()
    return [Subset(dataset, indices[offset - length: offset])
            for offset, length in zip(itertools.accumulate(lengths), lengths)]

"""jitgrad.data: seeded toy datasets (scikit-learn's algorithms, no scikit-learn) and DataLoader."""
import numpy as np
import pytest

import jitgrad
from jitgrad.data import DataLoader, TensorDataset, make_blobs, make_digits, make_moons


def test_make_moons_shapes_labels_and_seeding():
    X, y = make_moons(101, noise=0.1, random_state=3)
    assert X.shape == (101, 2) and X.dtype == np.float64 and y.dtype == np.int64
    assert (y == 0).sum() == 50 and (y == 1).sum() == 51
    X2, y2 = make_moons(101, noise=0.1, random_state=3)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert not np.array_equal(X, make_moons(101, noise=0.1, random_state=4)[0])
    # without noise, the points lie on the two unit half circles
    X, y = make_moons(40, shuffle=False)
    assert np.allclose(np.hypot(X[y == 0, 0], X[y == 0, 1]), 1)
    assert np.allclose(np.hypot(X[y == 1, 0] - 1, X[y == 1, 1] - 0.5), 1)


def test_make_blobs_shapes_labels_and_seeding():
    X, y, centers = make_blobs(200, n_features=3, centers=4, cluster_std=0.5, random_state=0,
                               return_centers=True)
    assert X.shape == (200, 3) and centers.shape == (4, 3)
    assert np.bincount(y).tolist() == [50, 50, 50, 50]
    for k in range(4):   # each point is nearest to its own center
        assert np.linalg.norm(X[y == k].mean(0) - centers[k]) < 0.5
    assert np.array_equal(X, make_blobs(200, n_features=3, centers=4, cluster_std=0.5,
                                        random_state=0)[0])
    X, y = make_blobs([3, 5], centers=[[0, 0], [5, 5]], random_state=1)
    assert np.bincount(y).tolist() == [3, 5]


def test_same_points_as_scikit_learn():
    datasets = pytest.importorskip("sklearn.datasets")
    for args in [dict(n_samples=100, noise=0.1, random_state=1), dict(n_samples=33, random_state=2)]:
        for a, b in zip(make_moons(**args), datasets.make_moons(**args)):
            np.testing.assert_array_equal(a, b)
    args = dict(n_samples=50, centers=3, n_features=2, random_state=5)
    for a, b in zip(make_blobs(**args), datasets.make_blobs(**args)):
        np.testing.assert_array_equal(a, b)


def test_make_digits_looks_like_sklearn_digits_and_is_learnable():
    X, y = make_digits(600, random_state=0)
    assert X.shape == (600, 64) and X.dtype == np.float64 and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16 and np.array_equal(X, np.round(X))
    assert np.bincount(y).tolist() == [60] * 10
    assert np.array_equal(X, make_digits(600, random_state=0)[0])
    # the classes are distinct but not trivial: nearest class mean on held-out samples
    Xt, yt = make_digits(300, random_state=1)
    means = np.stack([X[y == k].mean(0) for k in range(10)])
    pred = np.argmin(((Xt[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    acc = (pred == yt).mean()
    assert 0.6 < acc < 0.999
    assert make_digits(20, size=12, random_state=0)[0].shape == (20, 144)


def test_dataloader_batches_cover_the_data():
    X = np.arange(10 * 3, dtype=np.float64).reshape(10, 3)
    y = np.arange(10)
    dl = DataLoader((X, y), batch_size=4)
    batches = list(dl)
    assert len(dl) == 3 and [b[0].shape[0] for b in batches] == [4, 4, 2]
    assert isinstance(batches[0][0], jitgrad.Tensor) and batches[0][1].dtype is jitgrad.int64
    assert np.array_equal(np.concatenate([b[1].numpy() for b in batches]), y)
    dl = DataLoader(TensorDataset(jitgrad.tensor(X), jitgrad.tensor(y)), batch_size=4, drop_last=True)
    assert len(dl) == 2 and [b[0].shape[0] for b in dl] == [4, 4]
    single = list(DataLoader(jitgrad.tensor(X), batch_size=5))
    assert len(single) == 2 and single[0].shape == (5, 3)
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        DataLoader((X, y), batch_size=0)


def test_dataloader_shuffle_is_seeded_and_new_each_epoch():
    X = np.arange(50)
    dl = DataLoader((X,), batch_size=8, shuffle=True, seed=7)
    e1 = np.concatenate([b[0].numpy() for b in dl])
    e2 = np.concatenate([b[0].numpy() for b in dl])
    assert sorted(e1) == list(range(50)) and not np.array_equal(e1, e2)
    again = DataLoader((X,), batch_size=8, shuffle=True, seed=7)
    assert np.array_equal(np.concatenate([b[0].numpy() for b in again]), e1)
    # without a seed, jitgrad.manual_seed decides, as torch.manual_seed does for torch's loader
    orders = []
    for _ in range(2):
        jitgrad.manual_seed(3)
        orders.append(np.concatenate([b[0].numpy() for b in DataLoader((X,), 8, shuffle=True)]))
    assert np.array_equal(*orders)


def test_dataloader_collates_a_map_style_dataset():
    class Squares:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, i * i], np.float32), i

    xb, yb = next(iter(DataLoader(Squares(), batch_size=3)))
    assert xb.shape == (3, 2) and xb.dtype is jitgrad.float32 and yb.tolist() == [0, 1, 2]


def test_torch_style_imports_work():
    import jitgrad as torch
    from jitgrad.utils.data import DataLoader as DL, TensorDataset as TD
    # torch.utils.data's DataLoader has torch's semantics (a dataset is a sequence of samples);
    # jitgrad.data's takes tuples of arrays as columns
    assert torch.utils.data.DataLoader is DL and TD is TensorDataset
    assert torch.optim.lr_scheduler.StepLR is not None and torch.data.make_moons is make_moons

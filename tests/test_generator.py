"""jitgrad.Generator and the default generator: seeding, independence, state save/restore, and
generator= honoured by every random function (torch's streams are not reproduced, only its
guarantees and its argument checks)."""
import pickle
import warnings

import numpy as np
import pytest

import jitgrad
from jitgrad.utils.data import DataLoader, Subset, TensorDataset, random_split


def _draws(g):
    """One value from every random function that takes generator=, as numpy arrays."""
    x = jitgrad.ones(4)
    w = jitgrad.tensor([[0.1, 0.0, 0.5, 0.4], [1.0, 2.0, 3.0, 0.5]])
    return [jitgrad.rand(3, generator=g), jitgrad.randn(2, 3, generator=g),
            jitgrad.randint(0, 10, (5,), generator=g), jitgrad.randint(7, (2,), generator=g),
            jitgrad.randperm(8, generator=g), jitgrad.normal(0.0, 2.0, (3,), generator=g),
            jitgrad.normal(jitgrad.zeros(3), jitgrad.ones(3), generator=g),
            jitgrad.normal(jitgrad.zeros(3), 2.0, generator=g),
            jitgrad.bernoulli(jitgrad.full((6,), 0.5), generator=g),
            jitgrad.multinomial(w, 3, generator=g),
            jitgrad.multinomial(w, 5, replacement=True, generator=g),
            x.clone().uniform_(-1, 1, generator=g), x.clone().normal_(2, 3, generator=g),
            x.clone().exponential_(generator=g), x.clone().bernoulli_(0.3, generator=g)]


def _same(a, b):
    return all(np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a, b))


def test_a_seed_gives_one_stream_and_seeds_differ():
    g = jitgrad.Generator()
    assert g.manual_seed(5) is g and g.initial_seed() == 5
    first = _draws(g)
    again = _draws(jitgrad.Generator().manual_seed(5))
    other = _draws(jitgrad.Generator().manual_seed(6))
    assert _same(first, again)
    assert not _same(first, other)
    assert not _same(first, _draws(g))          # the stream goes on


def test_generators_leave_the_default_stream_alone():
    jitgrad.manual_seed(0)
    expected = [jitgrad.rand(4), jitgrad.randn(3)]
    jitgrad.manual_seed(0)
    g = jitgrad.Generator().manual_seed(0)
    _draws(g)
    got = [jitgrad.rand(4), jitgrad.randn(3)]
    assert _same(expected, got)
    # and the default stream does not move a generator
    g1, g2 = jitgrad.Generator().manual_seed(9), jitgrad.Generator().manual_seed(9)
    a = jitgrad.rand(5, generator=g1)
    jitgrad.rand(100)
    assert _same([a], [jitgrad.rand(5, generator=g2)])


def test_state_save_and_restore_replays_the_stream():
    g = jitgrad.Generator().manual_seed(11)
    jitgrad.rand(3, generator=g)
    state = g.get_state()
    assert state.dtype is jitgrad.uint8 and state.dim() == 1
    first = _draws(g)
    g.set_state(state)
    assert _same(first, _draws(g))
    # into another generator, which takes the seed along
    h = jitgrad.Generator()
    assert h.set_state(state) is h and h.initial_seed() == 11
    assert _same(first, _draws(h))
    # the default generator through get_rng_state / set_rng_state / fork_rng
    saved = jitgrad.get_rng_state()
    a = _draws(None)
    jitgrad.set_rng_state(saved)
    assert _same(a, _draws(None))
    jitgrad.set_rng_state(saved)
    with jitgrad.random.fork_rng():
        _draws(None)
    assert _same(a, _draws(None))
    # a pickled generator carries its state
    g.set_state(state)
    assert _same(first, _draws(pickle.loads(pickle.dumps(g))))


def test_seeds_and_defaults_like_torch():
    torch = pytest.importorskip("torch")
    assert jitgrad.Generator().initial_seed() == torch.Generator().initial_seed()
    assert jitgrad.manual_seed(3) is jitgrad.default_generator
    assert jitgrad.initial_seed() == 3 and jitgrad.random.initial_seed() == 3
    s = jitgrad.seed()
    assert jitgrad.initial_seed() == s and 0 <= s < 2 ** 64
    g = jitgrad.Generator("cpu")
    s = g.seed()
    assert g.initial_seed() == s
    for lib in (jitgrad, torch):
        assert lib.Generator().manual_seed(-1).initial_seed() == 2 ** 64 - 1
        lib.manual_seed(2.0)        # torch.manual_seed takes int(seed)
        assert lib.initial_seed() == 2
    jitgrad.manual_seed(0)


def _message(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001  (comparing whatever each library raises)
        return type(e).__name__, str(e).replace("jitgrad", "torch")
    return None


def test_argument_errors_match_torch():
    torch = pytest.importorskip("torch")
    cases = [
        lambda lib: lib.Generator().manual_seed(1.5),
        lambda lib: lib.Generator().manual_seed("3"),
        lambda lib: lib.Generator().manual_seed(True),
        lambda lib: lib.Generator().manual_seed(2 ** 64),
        lambda lib: lib.Generator().manual_seed(-2 ** 63 - 1),
        lambda lib: lib.manual_seed(2 ** 64),
        lambda lib: lib.Generator().set_state(lib.zeros(3)),
        lambda lib: lib.Generator().set_state([1, 2]),
        lambda lib: lib.set_rng_state(lib.zeros(3)),
        lambda lib: lib.ones(3).normal_(generator=5),
        lambda lib: lib.ones(3).uniform_(generator=5),
        lambda lib: lib.multinomial(lib.ones(3), 1, generator=5),
        lambda lib: lib.multinomial(lib.tensor([0.2, 0.8]), 3),
        lambda lib: lib.multinomial(lib.tensor([0.2, -0.8]), 1),
        lambda lib: lib.multinomial(lib.tensor([0.2, float("inf")]), 1, True),
        lambda lib: lib.multinomial(lib.tensor([0.2, float("nan")]), 1),
        lambda lib: lib.multinomial(lib.tensor([0.0, 0.0]), 1),
        lambda lib: lib.multinomial(lib.tensor([[0.0, 1.0]]), 0),
        lambda lib: lib.multinomial(lib.tensor(1.0), 1),
        lambda lib: lib.multinomial(lib.ones(2, 2, 2), 1),
        lambda lib: lib.multinomial(lib.tensor([1, 2]), 1),
        lambda lib: lib.multinomial(lib.ones(2, 0), 1),
        lambda lib: lib.utils.data.random_split(range(10), [3, 3]),
        lambda lib: lib.utils.data.random_split(range(10), [0.5, 0.6]),
    ]
    for case in cases:
        mine, theirs = _message(lambda: case(jitgrad)), _message(lambda: case(torch))
        assert mine == theirs and mine is not None, (mine, theirs)
    # only the size of the state differs
    kind, msg = _message(lambda: jitgrad.Generator().set_state(jitgrad.zeros(3, dtype=jitgrad.uint8)))
    assert kind == "RuntimeError" and msg.endswith("but found the input RNG state size to be 3")
    with pytest.raises(TypeError, match="argument 'generator' must be"):
        jitgrad.rand(2, generator=np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="Cannot access accelerator"):
        jitgrad.Generator(device=1)


def test_multinomial_draws():
    g = jitgrad.Generator().manual_seed(1)
    p = jitgrad.tensor([0.1, 0.0, 0.6, 0.3], dtype=jitgrad.float64)
    s = jitgrad.multinomial(p, 20000, replacement=True, generator=g)
    assert s.dtype is jitgrad.int64 and s.shape == (20000,) and not s.requires_grad
    freq = np.bincount(s.numpy(), minlength=4) / 20000
    assert freq[1] == 0
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.6, 0.3], atol=0.02)
    # without replacement: distinct, weight-0 categories only once the others are used up
    for _ in range(50):
        s = p.multinomial(4, generator=g).numpy()
        assert sorted(s) == [0, 1, 2, 3] and s[-1] == 1
    firsts = np.bincount([p.multinomial(1, generator=g).item() for _ in range(3000)], minlength=4)
    np.testing.assert_allclose(firsts / 3000, [0.1, 0.0, 0.6, 0.3], atol=0.03)
    # rows of a matrix draw independently; unnormalised weights are fine
    w = jitgrad.tensor([[0.0, 5.0, 0.0], [2.0, 0.0, 0.0]])
    out = jitgrad.multinomial(w, 3, replacement=True, generator=g)
    assert out.shape == (2, 3) and out.numpy().tolist() == [[1, 1, 1], [0, 0, 0]]
    assert jitgrad.multinomial(jitgrad.ones(0, 3), 2).shape == (0, 2)
    # the default generator, reproducible under manual_seed
    jitgrad.manual_seed(4)
    a = jitgrad.multinomial(p, 3)
    jitgrad.manual_seed(4)
    assert np.array_equal(a.numpy(), jitgrad.multinomial(p, 3).numpy())


def test_dataloader_shuffles_from_its_generator():
    X = jitgrad.arange(40)

    def epochs(loader, n=2):
        return [np.concatenate([b.numpy() for b in loader]) for _ in range(n)]

    a = epochs(DataLoader(X, batch_size=6, shuffle=True, generator=jitgrad.Generator().manual_seed(2)))
    jitgrad.rand(10)          # the default stream does not matter
    b = epochs(DataLoader(X, batch_size=6, shuffle=True, generator=jitgrad.Generator().manual_seed(2)))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1]) and sorted(a[0]) == list(range(40))
    c = epochs(DataLoader(X, batch_size=6, shuffle=True, generator=jitgrad.Generator().manual_seed(3)))
    assert not np.array_equal(a[0], c[0])
    # drawing from the loader's generator leaves the default stream where it was
    jitgrad.manual_seed(0)
    expected = jitgrad.rand(3)
    jitgrad.manual_seed(0)
    epochs(DataLoader(X, batch_size=6, shuffle=True, generator=jitgrad.Generator()))
    assert np.array_equal(expected.numpy(), jitgrad.rand(3).numpy())


def test_random_split():
    torch = pytest.importorskip("torch")
    data = TensorDataset(jitgrad.arange(10) * 10)
    parts = random_split(data, [3, 7], generator=jitgrad.Generator().manual_seed(42))
    assert [len(p) for p in parts] == [3, 7] and all(isinstance(p, Subset) for p in parts)
    assert sorted(parts[0].indices + parts[1].indices) == list(range(10))
    assert parts[0][1][0].item() == parts[0].indices[1] * 10
    again = random_split(data, [3, 7], generator=jitgrad.Generator().manual_seed(42))
    assert [p.indices for p in again] == [p.indices for p in parts]
    other = random_split(data, [3, 7], generator=jitgrad.Generator().manual_seed(43))
    assert [p.indices for p in other] != [p.indices for p in parts]
    # fractions become the lengths torch gives, with its warning for an empty split
    for fracs in ([0.33, 0.33, 0.34], [0.25, 0.75], [0.05, 0.95]):
        with warnings.catch_warnings(record=True) as mine:
            warnings.simplefilter("always")
            lens = [len(p) for p in random_split(range(10), fracs)]
        with warnings.catch_warnings(record=True) as theirs:
            warnings.simplefilter("always")
            tlens = [len(p) for p in torch.utils.data.random_split(range(10), fracs)]
        assert lens == tlens
        assert [str(w.message) for w in mine] == [str(w.message) for w in theirs]
    with pytest.raises(ValueError, match="Fraction at index 0 is not between 0 and 1"):
        random_split(range(10), [1.5, -0.5])
    # a split feeds a DataLoader
    batches = list(DataLoader(parts[1], batch_size=4))
    assert sum(len(b[0]) for b in batches) == 7

"""The small array helpers compiler/program.py builds a program with, against brute force.

They replaced numpy calls that cost more than the work on a small program (np.isin, np.unique,
prefix sums over all of v); a wrong answer would silently skip or misapply a fold, so each is
checked on random inputs against the obvious loop.
"""
import numpy as np
import pytest

from jitgrad.compiler.program import _counts, _numel_table, _Ranges


@pytest.mark.parametrize("seed", range(20))
def test_ranges_meet_is_any_shared_slot(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 6))
    lo = rng.integers(0, 40, n)
    hi = lo + rng.integers(0, 8, n)               # empty ranges included: they meet nothing
    covered = np.zeros(60, bool)
    for a, b in zip(lo, hi):
        covered[a:b] = True
    q = rng.integers(-4, 45, 30)
    size = rng.integers(0, 8, 30)
    expected = [covered[max(a, 0): max(a + s, 0)].any() for a, s in zip(q, size)]
    assert _Ranges(lo, hi).meet(q, q + size).tolist() == expected


@pytest.mark.parametrize("seed", range(10))
def test_counts_is_occurrences_of_each_key(seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(-3, 12, int(rng.integers(0, 40)))
    keys = rng.integers(-3, 12, int(rng.integers(0, 6)))
    assert _counts(values, keys).tolist() == [int((values == k).sum()) for k in keys]


def test_numel_table_reads_each_shape_and_gives_zero_at_minus_one():
    shapes = np.array([2, 3, 4, 0, 1, 5, 3, 2, 0, 7], np.int64)     # (3,4) at 0, () at 3, (5,) at 4
    table = _numel_table(shapes, np.array([0, 3, -1]), np.array([4, 6]))
    assert (table[0], table[3], table[4], table[6], table[-1]) == (12, 1, 5, 0, 0)

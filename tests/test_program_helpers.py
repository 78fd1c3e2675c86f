"""The small array helpers compiler/program.py builds a program with, against brute force.

They replaced numpy calls that cost more than the work on a small program (np.isin, np.unique,
prefix sums over all of v); a wrong answer would silently skip or misapply a fold, so each is
checked on random inputs against the obvious loop.
"""
import numpy as np
import pytest

from jitgrad.compiler import program
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


def test_memo_writes_and_returns_what_the_pass_did_without_running_it():
    calls = []

    @program._memo(0)
    def double_into(a, k):
        calls.append(k)
        a *= 2
        return a.sum() + k, np.arange(3)

    first, second = np.array([1, 2, 3]), np.array([1, 2, 3])
    assert double_into(first, 5)[0] == 17
    total, table = double_into(second, 5)
    assert calls == [5] and total == 17 and second.tolist() == [2, 4, 6]
    table[0] = 99                               # (a caller's copy: the cache's stays)
    assert double_into(np.array([1, 2, 3]), 5)[1].tolist() == [0, 1, 2]
    double_into(np.array([1, 2, 3], np.int32), 5)   # another dtype, another argument: both run
    double_into(np.array([1, 2, 3]), 6)
    assert calls == [5, 5, 6]


def test_memo_stays_within_its_bytes(monkeypatch):
    monkeypatch.setattr(program, "_MEMO", type(program._MEMO)())
    monkeypatch.setattr(program, "_MEMO_BYTES", [0])
    monkeypatch.setattr(program, "_MEMO_LIMIT", 4000)
    ident = program._memo()(lambda a: a)
    for k in range(50):
        ident(np.full(20, k))
    held = sum(program._nbytes(key) + program._nbytes(value) for key, value in program._MEMO.items())
    assert 0 < held == program._MEMO_BYTES[0] <= 4000
    assert len(program._MEMO) < 50


def _sweep_model(seed):
    """A new model of one structure and its compiled step, run once (traced)."""
    import jitgrad
    from jitgrad import nn
    jitgrad.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    opt = jitgrad.optim.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(seed)
    X = jitgrad.tensor(rng.standard_normal((32, 2)))
    y = jitgrad.tensor(rng.integers(0, 3, 32))

    @jitgrad.compile
    def step():
        opt.zero_grad()
        loss = jitgrad.nn.functional.cross_entropy(jitgrad.cat([model(X), -model(X), model(X) ** 2], 1), y)
        loss.backward()
        opt.step()
        return loss
    step()
    return step, model


def test_a_new_model_of_one_structure_gets_the_program_its_own_analysis_gives(monkeypatch):
    from jitgrad.engine.tape import TAPE
    TAPE.compact()      # (a compaction between the models would rebuild the shape table, which
    _sweep_model(0)     # the passes' keys hold: not when this test's earlier ones left it due)
    held = len(program._MEMO)
    cached, _ = _sweep_model(1)                 # (other data and targets, one structure)
    assert len(program._MEMO) == held           # each pass a lookup
    monkeypatch.setattr(program, "_MEMO", type(program._MEMO)())
    monkeypatch.setattr(program, "_MEMO_BYTES", [0])
    fresh, _ = _sweep_model(1)
    a, b = (next(iter(f.traces.values())).program for f in (cached, fresh))
    assert (a.prog == b.prog).all() and (a.bints == b.bints).all() and (a.faddrs == b.faddrs).all()
    assert (a.rows[:, :program.SERIAL] == b.rows[:, :program.SERIAL]).all()
    _replays_as_eager(*_sweep_model(1))


def _replays_as_eager(replayed, model):
    """A compiled _sweep_model(1) gives, call by call, its eager twin's losses and parameters."""
    eager, twin = _sweep_model(1)
    for _ in range(3):
        assert replayed().item() == eager.__wrapped__().item()
    for p, q in zip(model.parameters(), twin.parameters()):
        assert np.array_equal(p.detach().numpy(), q.detach().numpy())


def test_a_new_model_of_one_structure_takes_the_first_ones_plan(monkeypatch):
    # (the conftest checks each taken plan against the analysis; here the analysis must not run)
    monkeypatch.setattr(program, "_CHECK_PLANS", [False])
    _sweep_model(0)
    analysed = []
    real = program.Program._analyse
    monkeypatch.setattr(program.Program, "_analyse", lambda self, *a: analysed.append(1) or real(self, *a))
    replayed, model = _sweep_model(1)
    assert analysed == []
    monkeypatch.setattr(program.Program, "_analyse", real)
    _replays_as_eager(replayed, model)


def test_a_plan_taken_for_another_structure_fails_the_check(monkeypatch):
    import jitgrad
    monkeypatch.setattr(program.Program, "_plan_key", lambda self, *a: ("one key for all",))
    monkeypatch.setattr(program, "_MEMO", type(program._MEMO)())
    monkeypatch.setattr(program, "_MEMO_BYTES", [0])
    x = jitgrad.ones(3, dtype=jitgrad.float64, requires_grad=True)
    jitgrad.compile(lambda: (x * x).sum().backward())()
    with pytest.raises(AssertionError, match="reused plan differs"):
        jitgrad.compile(lambda: (x + x).sum().backward())()      # (as many rows, another op)


def test_memo_from_many_threads_keeps_its_books(monkeypatch):
    import threading
    monkeypatch.setattr(program, "_MEMO", type(program._MEMO)())
    monkeypatch.setattr(program, "_MEMO_BYTES", [0])
    monkeypatch.setattr(program, "_MEMO_LIMIT", 2000)      # evictions while others look up
    ident = program._memo()(lambda a: a + 1)
    errors = []

    def work(seed):
        try:
            for k in range(300):
                v = (k * seed) % 13
                assert ident(np.full(10, v))[0] == v + 1
        except Exception as e:                # (a failure in a thread would pass silently)
            errors.append(e)
    threads = [threading.Thread(target=work, args=(s,)) for s in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    held = sum(program._nbytes(key) + program._nbytes(value) for key, value in program._MEMO.items())
    assert held == program._MEMO_BYTES[0] <= 2000


def test_address_is_the_data_pointer_for_every_kind_of_array():
    base = np.arange(24.0).reshape(4, 6)
    readonly = base.copy()
    readonly.flags.writeable = False
    for a in (base, base[1:], base[:, ::2], base.T, readonly, np.zeros(0), np.zeros((3, 0)),
              base.reshape(-1)[5:6], np.float32(1.0) * np.ones(()), np.arange(5)):
        assert program.address(a) == a.__array_interface__["data"][0]

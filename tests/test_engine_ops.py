"""Engine features the op families rely on: the generated interpreter is current, integer data
(int arena) and multi-input nodes survive compaction, and rules compile on first use."""
import gc

import numpy as np

import jitgrad
from jitgrad.engine import codegen
from jitgrad.engine.tape import TAPE


def test_generated_interpreter_is_current():
    with open(codegen._GENERATED) as f:
        assert f.read() == codegen.generate(), "regenerate: python -m jitgrad.engine.codegen"


def _garbage(n=50):
    x = jitgrad.ones(3, requires_grad=True)
    for _ in range(n):
        (x * 2)[[0, 0, 1]].sum()        # rows and int data no live tensor reaches


def test_index_data_and_multi_input_survive_compaction():
    w = jitgrad.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    _garbage()
    picked = w[jitgrad.tensor([2, 0, 2])]                 # int data (IndexBackward0)
    _garbage()
    both = jitgrad.cat([picked, w * 3], 0)               # multi-input (CatBackward0)
    _garbage()
    gc.collect()
    with TAPE.lock:
        before = len(TAPE.outs)
        TAPE.compact()
        assert len(TAPE.outs) < before
    (both * jitgrad.arange(24.0).reshape(6, 4)).sum().backward()
    g = np.zeros((3, 4))
    coef = np.arange(24.0).reshape(6, 4)
    for row, src in zip(coef[:3], (2, 0, 2)):
        g[src] += row
    g += 3 * coef[3:]
    np.testing.assert_allclose(w.grad.numpy(), g)


def test_multi_input_next_functions():
    a = jitgrad.ones(2, requires_grad=True)
    b = jitgrad.ones(2, requires_grad=True)
    out = jitgrad.cat([a, b * 2])
    names = [type(f).__name__ for f, _ in out.grad_fn.next_functions]
    assert names == ["AccumulateGrad", "MulBackward0"]


def test_rules_compile_on_first_use():
    table = codegen.rule_addresses(np.float64)
    x = jitgrad.ones(3, dtype=jitgrad.float64, requires_grad=True)
    jitgrad.softmax(x, 0).sum().backward()
    from jitgrad import ops
    assert table[ops.SOFTMAX] > 0 and table[ops.SUM] > 0
    assert table[ops.FILL] == -1          # an op without a rule: its inputs get no gradient


def test_read_only_package_regenerates_into_the_user_cache(tmp_path, monkeypatch):
    """A stale generated file in a read-only install is rewritten under the user cache dir."""
    import os
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    real_access = os.access
    package_dir = os.path.dirname(codegen._GENERATED)
    monkeypatch.setattr(codegen.os, "access",
                        lambda p, mode: False if os.path.abspath(p) == package_dir
                        else real_access(p, mode))
    path = codegen._writable_path()
    assert path == os.path.join(str(tmp_path), "jitgrad", "_interpreter.py")
    assert os.path.dirname(path) != package_dir

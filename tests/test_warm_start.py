"""What a new process skips on its first backward when nothing changed (codegen.py): the check
that the generated interpreter is current (generate()) when the key of its sources was noted,
and Numba's full context refresh when loading the compiled functions (_LightCache)."""
import numpy as np
import pytest
from numba import config

import jitgrad
from jitgrad.engine import codegen


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    path = tmp_path / "_interpreter.key"
    monkeypatch.setattr(codegen, "_key_path", lambda _: str(path))
    return path


def _count_generate(monkeypatch):
    calls = []
    real = codegen.generate

    def generate():
        calls.append(1)
        return real()
    monkeypatch.setattr(codegen, "generate", generate)
    return calls


def test_a_noted_key_skips_generate(key_file, monkeypatch):
    calls = _count_generate(monkeypatch)
    assert codegen._checked_source() == codegen._GENERATED      # no key yet: checked, noted
    assert calls == [1] and key_file.read_text().startswith(codegen._source_key())
    assert codegen._checked_source() == codegen._GENERATED
    assert calls == [1]


def test_other_sources_or_a_touched_file_are_checked_again(key_file, monkeypatch):
    calls = _count_generate(monkeypatch)
    codegen._checked_source()
    noted = key_file.read_text()
    key_file.write_text(noted.replace(codegen._source_key(), "0" * 64))   # sources changed
    codegen._checked_source()
    assert calls == [1, 1] and key_file.read_text() == noted
    key, stamp = noted.splitlines()
    key_file.write_text(f"{key}\n0 {stamp.split()[1]}\n")              # file touched since
    codegen._checked_source()
    assert calls == [1, 1, 1] and key_file.read_text() == noted


def test_the_key_follows_the_kernels(monkeypatch):
    from jitgrad.engine import registry
    before = codegen._source_key()
    monkeypatch.setattr(registry, "OPS", list(registry.OPS))

    def _times_four(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
        for j in range(n):
            g[a + j] += 4 * g[o + j]
    registry.OPS.append(registry.Op(len(registry.OPS), "TimesFourBackward0", _times_four, 1, {}))
    assert codegen._source_key() != before


@pytest.mark.skipif(config.DISABLE_JIT, reason="no compiled functions without the JIT")
def test_interpreter_functions_load_lightly():
    x = jitgrad.tensor(np.arange(3.0), requires_grad=True)
    (x * x).sum().backward()
    mod = codegen.interpreter()
    assert isinstance(mod.backward._cache, codegen._LightCache)
    assert x.grad.tolist() == [0.0, 2.0, 4.0]


@pytest.mark.skipif(config.DISABLE_JIT, reason="no compiled functions without the JIT")
def test_kernels_outside_the_interpreter_load_lightly():
    # a compiled step's manual update and optimizer kernels (kernel_address): Numba's own loading
    # refreshed its whole context, ~0.2 s of a new process's first compiled call
    from jitgrad.compiler.program import scaled_update
    from jitgrad.optim import _kernels
    w = jitgrad.tensor([1.0, 2.0], requires_grad=True)
    opt = jitgrad.optim.SGD([w], lr=0.5)

    @jitgrad.compile(fullgraph=True)
    def step():
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
        with jitgrad.no_grad():
            w.sub_(w.grad, alpha=0.25)

    for _ in range(3):
        step()
    assert isinstance(scaled_update._cache, codegen._LightCache)
    used = [k for k in vars(_kernels).values() if getattr(k, "signatures", None)]
    assert used and all(isinstance(k._cache, codegen._LightCache) for k in used)
    assert w.tolist() == [-0.125, -0.25]       # each step: w - 0.5 * 2w, then - 0.25 * 2w

"""Checkpoints, pickling and optimizers (issue 9): save/load of damaged files, atomic saves and
shared storage; pickle and deepcopy of tensors, modules, optimizers and schedulers; optimizers
updating parameters in place in their own storage."""
import copy
import io
import json
import os
import pickle

import numpy as np
import pytest

import jitgrad
from jitgrad import nn, optim


def _torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


# ---- load: missing and damaged files ---------------------------------------------------------
def _npz(path, header, **arrays):
    """A file shaped like jitgrad.save's, with header (any JSON value, or raw bytes)."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    with open(path, "wb") as fh:
        np.savez(fh, __jitgrad__=np.frombuffer(raw, np.uint8), **arrays)
    return path


def test_load_of_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        jitgrad.load(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError):
        jitgrad.load(str(tmp_path / "nope.pt"))


def _good_file(tmp_path):
    path = tmp_path / "good.pt"
    w = jitgrad.arange(6.0).reshape(2, 3)
    jitgrad.save({"w": w, "v": w[1:], "n": 3, "d": jitgrad.float64, "x": [1.5, None]}, path)
    return path


def test_truncated_files_raise_runtime_error(tmp_path):
    data = _good_file(tmp_path).read_bytes()
    for cut in (0, 1, 10, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1):
        (tmp_path / "cut").write_bytes(data[:cut])
        with pytest.raises(RuntimeError, match="not a file written by jitgrad.save"):
            jitgrad.load(tmp_path / "cut")


def test_random_bytes_and_foreign_files_raise_runtime_error(tmp_path):
    rng = np.random.default_rng(0)
    data = _good_file(tmp_path).read_bytes()
    for k in range(20):      # flipped bytes anywhere, the zip's own checks or ours catch it
        bad = bytearray(data)
        for i in rng.integers(0, len(bad), 4):
            bad[i] ^= 0xFF
        try:
            jitgrad.load(io.BytesIO(bytes(bad)))
        except RuntimeError:
            pass
    (tmp_path / "rand").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    np.save(tmp_path / "one.npy", np.ones(3))
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    for name in ("rand", "one.npy", "plain.npz"):
        with pytest.raises(RuntimeError, match="not a file written by jitgrad.save"):
            jitgrad.load(tmp_path / name)


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_payload_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(_Boom()))
    np.savez(tmp_path / "evil.npz", __jitgrad__=np.array([_Boom()], dtype=object), w=np.ones(2))
    for name in ("evil.pt", "evil.npz"):
        with pytest.raises(RuntimeError):
            jitgrad.load(tmp_path / name)
    assert not (tmp_path / "pwned").exists()


GOOD_TENSOR = {"t": "tensor", "n": 0, "k": "w", "rg": False, "param": False}
BAD_HEADERS = {
    "not JSON": b"{not json",
    "not UTF-8": b"\xff\xfe{}",
    "a list": [1, 2],
    "no root": {"format": 2},
    "format not an int": {"format": "2", "root": {"t": "value", "v": None}},
    "root not an entry": {"format": 2, "root": 5},
    "no type": {"format": 2, "root": {"v": 1}},
    "unknown type": {"format": 2, "root": {"t": "code", "v": "print(1)"}},
    "int holding a string": {"format": 2, "root": {"t": "int", "v": "12"}},
    "float holding a list": {"format": 2, "root": {"t": "float", "v": [1.0]}},
    "value holding a dict": {"format": 2, "root": {"t": "value", "v": {"a": 1}}},
    "dtype not allowed": {"format": 2, "root": {"t": "dtype", "v": "from_numpy_dtype"}},
    "dtype unknown": {"format": 2, "root": {"t": "dtype", "v": "complex64"}},
    "dtype not a string": {"format": 2, "root": {"t": "dtype", "v": 3}},
    "items not a list": {"format": 2, "root": {"t": "dict", "items": {"a": 1}}},
    "pair of three": {"format": 2, "root": {"t": "dict", "items": [[{"t": "int", "v": 1}] * 3]}},
    "unhashable key": {"format": 2, "root": {"t": "dict", "items": [
        [{"t": "tuple", "items": [{"t": "list", "items": []}]}, {"t": "int", "v": 1}]]}},
    "missing array": {"format": 2, "root": dict(GOOD_TENSOR, k="nope")},
    "array name not a string": {"format": 2, "root": dict(GOOD_TENSOR, k=["w"])},
    "flag not a bool": {"format": 2, "root": dict(GOOD_TENSOR, rg="yes")},
    "int tensor requiring grad": {"format": 2, "root": dict(GOOD_TENSOR, k="i", rg=True)},
    "string tensor": {"format": 2, "root": dict(GOOD_TENSOR, k="s")},
    "repeated tensor number": {"format": 2, "root": {"t": "list", "items": [GOOD_TENSOR] * 2}},
    "dangling ref": {"format": 2, "root": {"t": "ref", "n": 4}},
    "view out of bounds": {"format": 2, "root": {"t": "tensor", "n": 0, "s": "bytes", "off": 8,
                                                  "shape": [3], "strides": [8],
                                                  "dtype": "float64"}},
    "view too big": {"format": 2, "root": {"t": "tensor", "n": 0, "s": "bytes", "off": 0,
                                            "shape": [2 ** 40, 2 ** 40], "strides": [0, 0],
                                            "dtype": "float64"}},
    "view with a bad dtype": {"format": 2, "root": {"t": "tensor", "n": 0, "s": "bytes", "off": 0,
                                                     "shape": [1], "strides": [8], "dtype": "os"}},
    "view over floats": {"format": 2, "root": {"t": "tensor", "n": 0, "s": "w", "off": 0,
                                                "shape": [1], "strides": [8], "dtype": "float64"}},
    "view with bad strides": {"format": 2, "root": {"t": "tensor", "n": 0, "s": "bytes", "off": 0,
                                                     "shape": [1], "strides": [], "dtype": "int8"}},
    "deep nesting": ('{"format": 2, "root": ' + '{"t": "list", "items": [' * 100000
                     + "]}" * 100000 + "}").encode(),      # too deep for json or the decoder
}


@pytest.mark.parametrize("what", list(BAD_HEADERS))
def test_malformed_headers_raise_runtime_error_naming_the_problem(what, tmp_path):
    path = _npz(tmp_path / "f.pt", BAD_HEADERS[what], w=np.ones(2), i=np.arange(2),
                s=np.array(["a"]), bytes=np.zeros(16, np.uint8))
    with pytest.raises(RuntimeError, match="not a file written by jitgrad.save") as e:
        jitgrad.load(path)
    assert "damaged: " in str(e.value)


def test_load_still_reads_format_1_files(tmp_path):
    header = {"format": 1, "root": {"t": "dict", "items": [
        [{"t": "value", "v": "w"}, {"t": "tensor", "k": "w", "rg": True, "param": True}],
        [{"t": "value", "v": "d"}, {"t": "dtype", "v": "float64"}]]}}
    got = jitgrad.load(_npz(tmp_path / "old.pt", header, w=np.ones(2, np.float32)))
    assert isinstance(got["w"], nn.Parameter) and got["w"].requires_grad
    assert got["d"] is jitgrad.float64


# ---- save: atomic, to files and buffers -------------------------------------------------------
def test_a_save_that_dies_half_way_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    jitgrad.save({"w": jitgrad.ones(1000)}, path)
    real = np.savez

    def dies_half_way(file, **arrays):
        buf = io.BytesIO()
        real(buf, **arrays)
        file.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise KeyboardInterrupt      # the process is being killed

    monkeypatch.setattr(np, "savez", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        jitgrad.save({"w": jitgrad.zeros(1000)}, path)
    monkeypatch.undo()
    assert np.array_equal(jitgrad.load(path)["w"].numpy(), np.ones(1000))
    assert os.listdir(tmp_path) == ["ckpt.pt"]        # no temporary file left behind
    jitgrad.save({"w": jitgrad.zeros(3)}, path)      # and the next save replaces it
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    assert jitgrad.load(path)["w"].tolist() == [0, 0, 0]


def test_save_writes_through_a_symlink_and_to_buffers(tmp_path):
    target = tmp_path / "real.pt"
    jitgrad.save({"a": 1}, target)
    (tmp_path / "link.pt").symlink_to(target)
    jitgrad.save({"a": 2}, tmp_path / "link.pt")
    assert (tmp_path / "link.pt").is_symlink() and jitgrad.load(target) == {"a": 2}
    buf = io.BytesIO()
    jitgrad.save({"w": jitgrad.ones(2)}, buf)
    buf.seek(0)
    assert jitgrad.load(buf)["w"].tolist() == [1, 1]
    assert jitgrad.load(buf.getvalue())["w"].tolist() == [1, 1]


# ---- save/load: shared storage ----------------------------------------------------------------
def _round_trip(obj, tmp_path):
    jitgrad.save(obj, tmp_path / "s.pt")
    return jitgrad.load(tmp_path / "s.pt")


def test_save_load_keeps_tied_tensors_and_views_sharing(tmp_path):
    w = jitgrad.arange(12.0).reshape(3, 4)
    got = _round_trip({"a": w, "b": w, "c": w[1:], "t": w.t(), "col": w[:, 2], "d": w.detach()},
                      tmp_path)
    assert got["a"] is got["b"]           # the same tensor twice is one tensor, as torch
    for k in ("c", "t", "col", "d"):
        assert np.shares_memory(got[k].numpy(), got["a"].numpy()), k
    assert got["t"].tolist() == w.t().tolist() and got["col"].tolist() == [2.0, 6.0, 10.0]
    got["a"][1, 2] = 100.0
    assert got["c"][0, 2].item() == 100.0 and got["t"][2, 1].item() == 100.0
    assert got["col"][1].item() == 100.0 and got["d"][1, 2].item() == 100.0


def test_save_load_keeps_a_parameter_sharing_its_base_and_int_views(tmp_path):
    base = jitgrad.zeros(4)
    idx = jitgrad.arange(10)
    got = _round_trip({"base": base, "p": nn.Parameter(base[:2]), "i": idx, "j": idx[5:]},
                      tmp_path)
    assert isinstance(got["p"], nn.Parameter) and got["p"].requires_grad
    got["p"].data[0] = 3.0
    assert got["base"].tolist() == [3, 0, 0, 0]
    got["i"][7] = -1
    assert got["j"].dtype is jitgrad.int64 and got["j"][2].item() == -1


def test_save_of_a_small_view_does_not_store_its_base(tmp_path):
    big = jitgrad.zeros(1_000_000)
    jitgrad.save({"v": big[:10]}, tmp_path / "v.pt")
    assert os.path.getsize(tmp_path / "v.pt") < 10_000
    jitgrad.save({"v": big[:10], "u": big[5:20]}, tmp_path / "u.pt")   # only the span they cover
    assert os.path.getsize(tmp_path / "u.pt") < 10_000


def test_tied_weights_round_trip_through_state_dict(tmp_path):
    def tied():
        m = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
        m[1].weight = m[0].weight
        return m

    src, dst = tied(), tied()
    sd = _round_trip(src.state_dict(), tmp_path)
    assert np.shares_memory(sd["0.weight"].numpy(), sd["1.weight"].numpy())
    dst.load_state_dict(sd)
    x = jitgrad.randn(2, 3)
    assert np.array_equal(dst(x).detach().numpy(), src(x).detach().numpy())
    assert dst[1].weight is dst[0].weight


# ---- deepcopy and pickle of tensors and modules -----------------------------------------------
def test_deepcopy_of_a_leaf_keeps_grad_and_requires_grad():
    t = jitgrad.ones(3, requires_grad=True)
    (t * 2).sum().backward()
    c = copy.deepcopy(t)
    assert c.requires_grad and c.is_leaf and c.grad.tolist() == [2, 2, 2]
    assert not np.shares_memory(c.numpy(force=True), t.numpy(force=True))
    assert not np.shares_memory(c.grad.numpy(), t.grad.numpy())


def test_deepcopy_of_a_non_leaf_raises_torchs_error():
    t = jitgrad.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError) as e:
        copy.deepcopy(t * 2)
    expected = ("Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                "protocol at the moment.  If you were attempting to deepcopy a module, this may be "
                "because of a jitgrad.nn.utils.weight_norm usage, see "
                "https://github.com/pytorch/pytorch/pull/103001")
    assert str(e.value) == expected
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError) as te:
        copy.deepcopy(torch.ones(3, requires_grad=True) * 2)
    assert str(te.value).replace("torch.", "jitgrad.") == expected


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_views_keep_sharing_through_deepcopy_and_pickle(how):
    b = jitgrad.zeros(4)
    d = {"a": b, "v": b[1:], "w": b.detach()}
    d = copy.deepcopy(d) if how == "deepcopy" else pickle.loads(pickle.dumps(d))
    d["a"][1] = 5.0
    assert d["v"].tolist() == [5, 0, 0] and d["w"][1].item() == 5.0
    assert b.tolist() == [0, 0, 0, 0]


def test_a_parameter_over_a_slice_pickles_sharing_its_base():
    base = jitgrad.zeros(4)
    d = pickle.loads(pickle.dumps({"base": base, "p": nn.Parameter(base[1:3])}))
    assert isinstance(d["p"], nn.Parameter) and d["p"].requires_grad
    d["base"][1] = 2.0
    assert d["p"].tolist() == [2, 0]


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_modules_with_tied_weights_deepcopy_and_pickle(how):
    m = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 3))
    m[2].weight = m[0].weight
    m2 = copy.deepcopy(m) if how == "deepcopy" else pickle.loads(pickle.dumps(m))
    assert m2[2].weight is m2[0].weight and m2[0].weight is not m[0].weight
    x = jitgrad.randn(4, 3)
    assert np.array_equal(m2(x).detach().numpy(), m(x).detach().numpy())
    m2(x).sum().backward()
    assert m2[0].weight.grad is not None and m[0].weight.grad is None


# ---- optimizers and schedulers: pickle, deepcopy, state dicts ---------------------------------
OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
]
OPTIMIZER_IDS = [f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)]
_X = np.random.default_rng(1).standard_normal((16, 3)).astype(np.float32)
_Y = np.random.default_rng(2).standard_normal((16, 1)).astype(np.float32)


def _setup(name, kw):
    jitgrad.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = getattr(optim, name)(model.parameters(), **kw)
    return model, opt, optim.lr_scheduler.StepLR(opt, 2, 0.5)


def _train(model, opt, sched, steps):
    x, y = jitgrad.tensor(_X), jitgrad.tensor(_Y)
    for _ in range(steps):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        if sched is not None:
            sched.step()
    return [p.detach().numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=OPTIMIZER_IDS)
def test_training_state_deepcopies_and_pickles_and_continues_identically(name, kw, how, recwarn):
    model, opt, sched = _setup(name, kw)
    _train(model, opt, sched, 5)
    both = (model, opt, sched)
    m2, o2, s2 = copy.deepcopy(both) if how == "deepcopy" else pickle.loads(pickle.dumps(both))
    assert s2.optimizer is o2 and o2.param_groups[0]["params"][0] is m2[0].weight
    assert o2.state[m2[0].weight].keys() == opt.state[model[0].weight].keys()
    a = _train(model, opt, sched, 5)
    b = _train(m2, o2, s2, 5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert s2.get_last_lr() == sched.get_last_lr()
    assert not [w for w in recwarn if "lr_scheduler" in str(w.message)]


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=OPTIMIZER_IDS)
def test_state_dict_round_trip_continues_identically(name, kw, tmp_path):
    model, opt, sched = _setup(name, kw)
    _train(model, opt, None, 5)
    model2, opt2, _ = _setup(name, kw)
    model2.load_state_dict(model.state_dict())
    opt2.load_state_dict(_round_trip(opt.state_dict(), tmp_path))
    for x, y in zip(_train(model, opt, None, 5), _train(model2, opt2, None, 5)):
        np.testing.assert_array_equal(x, y)


def test_load_state_dict_replaces_the_whole_state_as_torch():
    a, b = nn.Parameter(jitgrad.ones(2)), nn.Parameter(jitgrad.ones(2))
    opt = optim.Adam([a, b])
    a.grad, b.grad = jitgrad.ones(2), jitgrad.ones(2)
    opt.step()
    sd = opt.state_dict()
    del sd["state"][1]
    opt.load_state_dict(sd)
    assert list(opt.state) == [a] and opt.state[a]["step"].item() == 1.0


def test_an_optimizer_pickles_on_its_own():
    p = nn.Parameter(jitgrad.ones(3))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = jitgrad.ones(3)
    opt.step()
    o2 = pickle.loads(pickle.dumps(opt))
    (q,) = o2.param_groups[0]["params"]
    assert q is not p and q.tolist() == p.tolist()
    assert o2.state[q]["momentum_buffer"].tolist() == [1, 1, 1]


# ---- optimizers update parameters in place ---------------------------------------------------
def test_a_parameter_over_a_slice_updates_its_base():
    base = jitgrad.zeros(4)
    p = nn.Parameter(base[:2])
    opt = optim.SGD([p], lr=1.0)
    p.grad = jitgrad.ones(2)
    opt.step()
    assert base.tolist() == [-1, -1, 0, 0]       # torch: tensor([-1., -1., 0., 0.])


def test_aliases_taken_before_the_optimizer_see_its_updates():
    m = nn.Linear(3, 2)
    data, det, arr = m.weight.data, m.weight.detach(), m.weight.detach().numpy()
    before = arr.copy()
    opt = optim.Adam(m.parameters(), lr=0.1)
    m(jitgrad.ones(1, 3)).sum().backward()
    opt.step()
    now = m.weight.detach().numpy()
    assert not np.allclose(now, before)
    for alias in (data.numpy(), det.numpy(), arr):
        np.testing.assert_array_equal(alias, now)


def _sgd_on_a_transposed_parameter(lib):
    base = lib.zeros(3, 4, dtype=lib.float64)
    p = lib.nn.Parameter(base.t())
    opt = lib.optim.SGD([p], lr=0.5, momentum=0.9)
    for k in range(3):
        p.grad = lib.arange(12.0, dtype=lib.float64).reshape(4, 3) * (k + 1)
        opt.step()
    return base.numpy()


def test_a_non_contiguous_parameter_is_updated_in_place():
    got = _sgd_on_a_transposed_parameter(jitgrad)
    # momentum buffers g, 2.9 g, 5.61 g: p = -0.5 * (1 + 2.9 + 5.61) g
    np.testing.assert_allclose(got, -4.755 * np.arange(12.0).reshape(4, 3).T, rtol=1e-12)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(got, _sgd_on_a_transposed_parameter(torch), rtol=1e-12)


def test_replaced_storage_is_updated_and_the_old_one_is_left_alone():
    p = nn.Parameter(jitgrad.ones(3))
    old = p.detach()
    opt = optim.SGD([p], lr=0.5)
    p.data = jitgrad.full((3,), 2.0)
    p.grad = jitgrad.ones(3)
    opt.step()
    assert p.tolist() == [1.5, 1.5, 1.5] and old.tolist() == [1, 1, 1]


def _grow_after_a_step(lib, name, kw):
    emb = lib.nn.Embedding(3, 2)
    opt = getattr(lib.optim, name)(emb.parameters(), lr=0.1, **kw)
    emb.weight.grad = lib.ones(3, 2)
    opt.step()
    emb.weight.data = lib.cat([emb.weight.data, lib.zeros(2, 2)])
    emb.weight.grad = lib.ones(5, 2)
    try:
        opt.step()
        return np.round(emb.weight.detach().numpy()[3:].astype(np.float64), 6).tolist()
    except RuntimeError as e:
        return str(e)


GROW_MISMATCH = ("The size of tensor a (3) must match the size of tensor b (5) at non-singleton "
                 "dimension 0")


@pytest.mark.parametrize("name,kw,expected", [
    ("SGD", {}, [[-0.1, -0.1], [-0.1, -0.1]]),
    ("SGD", dict(momentum=0.9), GROW_MISMATCH),
    ("Adam", {}, GROW_MISMATCH),
    ("RMSprop", {}, GROW_MISMATCH)])
def test_growing_a_parameter_after_the_optimizer_exists(name, kw, expected):
    """emb.weight.data = cat([emb.weight.data, new_rows]): stateless updates go on; state of the
    old shape raises torch's error (torch keeps the state and fails the same way)."""
    assert _grow_after_a_step(jitgrad, name, kw) == expected
    torch = pytest.importorskip("torch")
    assert _grow_after_a_step(torch, name, kw) == expected


def test_growing_before_the_first_step_keeps_state_of_the_new_shape():
    emb = nn.Embedding(3, 2)
    opt = optim.Adam(emb.parameters(), lr=0.1)
    emb.weight.data = jitgrad.cat([emb.weight.data, jitgrad.zeros(2, 2)])
    emb.weight.grad = jitgrad.ones(5, 2)
    opt.step()
    assert opt.state[emb.weight]["exp_avg"].shape == (5, 2)
    np.testing.assert_allclose(emb.weight.detach().numpy()[3:], -0.1, rtol=1e-5)


def test_a_gradient_of_the_old_shape_raises_torchs_error():
    p = nn.Parameter(jitgrad.ones(3, 2))
    opt = optim.SGD([p], lr=0.1)
    p.grad = jitgrad.ones(3, 2)
    p.data = jitgrad.zeros(5, 2)
    with pytest.raises(RuntimeError, match=r"^The size of tensor a \(5\) must match the size of "
                                           r"tensor b \(3\) at non-singleton dimension 0$"):
        opt.step()


def test_changing_dtype_after_the_optimizer_exists():
    m = nn.Linear(2, 1)
    opt = optim.SGD(m.parameters(), lr=0.1)
    m.double()
    m(jitgrad.ones(4, 2, dtype=jitgrad.float64)).sum().backward()
    before = m.weight.detach().numpy().copy()
    opt.step()
    assert m.weight.dtype is jitgrad.float64
    np.testing.assert_allclose(m.weight.detach().numpy(), before - 0.4)


def test_an_expanded_parameter_raises_torchs_error():
    p = nn.Parameter(jitgrad.ones(1).expand(3))
    opt = optim.SGD([p], lr=0.1)
    p.grad = jitgrad.ones(3)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        opt.step()


def test_optimizers_run_with_jit_disabled():
    """NUMBA_DISABLE_JIT=1 runs the compiled steps as Python over the same memory."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_persistence.py",
         "-k", "(in_place or slice or aliases or growing or continues_identically) and not jit"],
        cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " passed" in r.stdout

"""jitgrad.nn against torch.nn: registration, traversal, reprs, state dicts, layers and losses."""
import copy
import io

import numpy as np
import pytest

import jitgrad
from jitgrad import nn
from jitgrad.nn import functional as F


def _torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def _mlp(lib, dtype=None):
    m = lib.nn.Sequential(lib.nn.Linear(2, 4), lib.nn.ReLU(), lib.nn.Linear(4, 3), lib.nn.Tanh(),
                          lib.nn.Linear(3, 1))
    return m if dtype is None else m.to(dtype)


def _copy_weights(src, dst, torch):
    dst.load_state_dict({k: torch.tensor(v.numpy().copy()) for k, v in src.state_dict().items()})


# ---- Parameter ---------------------------------------------------------------------------------
def test_parameter_is_a_leaf_tensor_that_requires_grad_and_shares_storage():
    data = jitgrad.ones(2, 3)
    p = nn.Parameter(data)
    assert isinstance(p, jitgrad.Tensor) and p.requires_grad and p.is_leaf
    assert np.shares_memory(p.detach().numpy(), data.numpy())
    assert not nn.Parameter(data, requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(jitgrad.tensor([1, 2]))


def test_parameter_repr_matches_torch():
    torch = _torch()
    assert repr(nn.Parameter(jitgrad.ones(2))) == repr(torch.nn.Parameter(torch.ones(2)))
    assert repr(nn.Parameter(jitgrad.ones(2), requires_grad=False)) == \
        repr(torch.nn.Parameter(torch.ones(2), requires_grad=False))


def test_parameter_deepcopy_is_an_independent_parameter():
    p = nn.Parameter(jitgrad.ones(3))
    q = copy.deepcopy(p)
    assert isinstance(q, nn.Parameter) and q.requires_grad
    q.detach().numpy()[0] = 5
    assert p.detach().numpy()[0] == 1


# ---- registration and traversal ---------------------------------------------------------------
def _net_class(lib):
    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = lib.nn.Linear(2, 3)
            self.block = lib.nn.Sequential(lib.nn.Linear(3, 3), lib.nn.ReLU())
            self.scale = lib.nn.Parameter(lib.ones(1))
            self.register_buffer("running", lib.zeros(3))
            self.register_buffer("scratch", lib.zeros(2), persistent=False)
            self.not_registered = [lib.nn.Linear(1, 1)]

        def forward(self, x):
            return self.block(self.fc1(x)) * self.scale + self.running
    return Net


Net = _net_class(jitgrad)


def test_registration_and_traversal_match_torch():
    torch = _torch()
    j, t = Net(), _net_class(torch)()
    assert [n for n, _ in j.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in j.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert [n for n, _ in j.named_children()] == [n for n, _ in t.named_children()]
    assert [n for n, _ in j.named_modules()] == [n for n, _ in t.named_modules()]
    assert list(j.state_dict()) == list(t.state_dict())
    assert len(list(j.parameters())) == 5 and len(list(j.children())) == 2
    assert len(list(j.modules())) == 5
    assert [n for n, _ in j.named_parameters(recurse=False)] == ["scale"]
    assert j.get_submodule("block.0") is j.block[0]
    assert j.get_parameter("block.0.bias") is j.block[0].bias
    assert repr(j) == repr(t)


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(2, 2)
    m = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(m.parameters())) == 2
    assert [n for n, _ in m.named_parameters()] == ["0.weight", "0.bias"]


def test_attribute_rules():
    m = nn.Module()
    m.p = nn.Parameter(jitgrad.ones(1))
    assert "p" in m._parameters and "p" not in m.__dict__
    with pytest.raises(TypeError, match="cannot assign 'jitgrad.FloatTensor' as parameter 'p'"):
        m.p = jitgrad.ones(1)
    m.p = None
    assert m.p is None and list(m.parameters()) == []
    m.sub = nn.Linear(1, 1)
    del m.sub
    assert not hasattr(m, "sub")
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'missing'"):
        m.missing
    with pytest.raises(KeyError, match="attribute 'x' already exists"):
        m.x = 1
        m.register_parameter("x", nn.Parameter(jitgrad.ones(1)))

    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(jitgrad.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Bad()
    with pytest.raises(NotImplementedError, match="missing the required \"forward\""):
        nn.Module()(1)


def test_train_eval_zero_grad_requires_grad():
    m = Net()
    assert m.training and m.block[1].training
    assert m.eval() is m and not m.training and not m.block[1].training
    m.train()
    assert all(mod.training for mod in m.modules())
    out = m(jitgrad.ones(4, 2)).sum()
    out.backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())


def test_forward_hooks():
    m = nn.Linear(2, 2)
    seen = []
    h = m.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    m(jitgrad.ones(3, 2))
    h.remove()
    m(jitgrad.ones(3, 2))
    assert seen == [(3, 2)]


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    seq.append(nn.Sigmoid())
    del seq[1]
    assert [type(m).__name__ for m in seq] == ["Linear", "Linear", "Sigmoid"]
    assert list(seq._modules) == ["0", "1", "2"]
    ml = nn.ModuleList([nn.Linear(1, 1) for _ in range(3)])
    ml.append(nn.ReLU())
    ml.extend([nn.Tanh()])
    ml.insert(0, nn.Identity())
    assert [type(m).__name__ for m in ml] == ["Identity", "Linear", "Linear", "Linear", "ReLU", "Tanh"]
    assert len(list(ml.parameters())) == 6 and isinstance(ml[1:3], nn.ModuleList)
    with pytest.raises(IndexError, match="index 9 is out of range"):
        ml[9]


def test_reprs_match_torch():
    torch = _torch()

    def build(lib):
        n = lib.nn
        return n.Sequential(
            n.Linear(2, 16), n.ReLU(), n.Linear(16, 4, bias=False), n.Tanh(), n.Sigmoid(), n.GELU(),
            n.GELU(approximate="tanh"), n.LeakyReLU(), n.LeakyReLU(0.2), n.Softmax(dim=1),
            n.Dropout(0.25), n.Identity(), n.Embedding(10, 3), n.Embedding(5, 2, padding_idx=0),
            n.LayerNorm(4), n.LayerNorm([2, 3], elementwise_affine=False),
            n.ModuleList([n.Linear(1, 1), n.Linear(1, 1), n.ReLU()]), n.Sequential(),
            n.MSELoss(), n.BCEWithLogitsLoss(), n.CrossEntropyLoss(), n.NLLLoss())

    assert repr(build(jitgrad)) == repr(build(torch))
    assert repr(nn.ModuleList()) == repr(torch.nn.ModuleList())


# ---- Linear ------------------------------------------------------------------------------------
def test_linear_default_init_is_pytorch_kaiming_uniform():
    jitgrad.manual_seed(0)
    lin = nn.Linear(400, 300)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    bound = 1 / np.sqrt(400)
    assert w.dtype == np.float32 and w.shape == (300, 400) and b.shape == (300,)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # U(-bound, bound) has variance bound^2 / 3
    assert abs(w.var() / (bound ** 2 / 3) - 1) < 0.02
    assert abs(w.mean()) < 0.01 * bound
    jitgrad.manual_seed(0)
    assert np.array_equal(nn.Linear(400, 300).weight.detach().numpy(), w)
    assert nn.Linear(3, 2, dtype=jitgrad.float64).weight.dtype is jitgrad.float64


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mlp_forward_and_backward_match_torch(dtype):
    torch = _torch()
    j, t = _mlp(jitgrad, getattr(jitgrad, dtype)), _mlp(torch, getattr(torch, dtype))
    _copy_weights(j, t, torch)
    x = np.random.default_rng(0).standard_normal((7, 2))
    xj = jitgrad.tensor(x, dtype=getattr(jitgrad, dtype))
    xt = torch.tensor(x, dtype=getattr(torch, dtype))
    yj, yt = j(xj), t(xt)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(yj.detach().numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
    (yj * yj).sum().backward()
    (yt * yt).sum().backward()
    for (n, pj), pt in zip(j.named_parameters(), t.parameters()):
        np.testing.assert_allclose(pj.grad.numpy(), pt.grad.numpy(), rtol=tol, atol=tol, err_msg=n)
    # a single sample (1-D input) works as in torch
    np.testing.assert_allclose(j(xj[0]).detach().numpy(), t(xt[0]).detach().numpy(), rtol=tol, atol=tol)


def test_transpose_and_permute_gradients_match_torch():
    torch = _torch()
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 3, 4))
    for fn in (lambda x: x.permute(2, 0, 1), lambda x: x.transpose(0, 2), lambda x: x.reshape(6, 4).t(),
               lambda x: x.reshape(6, 4).T, lambda x: x.permute(1, 2, 0)):
        grads = []
        for lib in (jitgrad, torch):
            x = lib.tensor(a, requires_grad=True)
            y = fn(x)
            w = lib.tensor(np.arange(y.numel(), dtype=np.float64).reshape(tuple(y.shape)))
            (y * w).sum().backward()
            grads.append(x.grad.numpy())
        np.testing.assert_array_equal(grads[0], grads[1])


def test_bce_with_logits_loss_module_matches_torch():
    torch = _torch()
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((5, 1)), (rng.random((5, 1)) > 0.5).astype(np.float64)
    for red in ("mean", "sum", "none"):
        out = []
        for lib in (jitgrad, torch):
            xi = lib.tensor(x, requires_grad=True)
            loss = lib.nn.BCEWithLogitsLoss(reduction=red)(xi, lib.tensor(y))
            loss.sum().backward()
            out.append((loss.detach().numpy(), xi.grad.numpy()))
        np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-12)
        np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-12)
    assert nn.MSELoss(size_average=False).reduction == "sum"


# ---- layers and losses against torch ----------------------------------------------------------
def _compare_module(torch, make, x, target=None, tol=1e-10):
    j, t = make(jitgrad), make(torch)
    if list(t.parameters()):
        _copy_weights(j, t, torch)
    outs = []
    for lib, m in ((jitgrad, j), (torch, t)):
        xi = lib.tensor(x, requires_grad=x.dtype.kind == "f")
        y = m(xi) if target is None else m(xi, lib.tensor(target))
        (y * y).sum().backward() if y.dim() else y.backward()
        grads = [p.grad.numpy() for p in m.parameters()]
        outs.append((y.detach().numpy(), xi.grad.numpy() if xi.requires_grad else None, grads))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=tol, atol=tol)
    if outs[0][1] is not None:
        np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=tol, atol=tol)
    for gj, gt in zip(outs[0][2], outs[1][2]):
        np.testing.assert_allclose(gj, gt, rtol=tol, atol=tol)


_X = np.random.default_rng(3).standard_normal((4, 5))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_module(approximate):
    _compare_module(_torch(), lambda lib: lib.nn.GELU(approximate), _X)


def test_leaky_relu_module():
    _compare_module(_torch(), lambda lib: lib.nn.LeakyReLU(0.2), _X)


def test_softmax_module():
    _compare_module(_torch(), lambda lib: lib.nn.Softmax(dim=1), _X)


def test_dropout_module_train_and_eval():
    d = nn.Dropout(0.5)
    x = jitgrad.ones(1000, dtype=jitgrad.float64)
    y = d(x).numpy()
    assert set(np.unique(y)) <= {0.0, 2.0} and 350 < (y == 0).sum() < 650
    d.eval()
    assert np.array_equal(d(x).numpy(), x.numpy())


def test_embedding_module():
    torch = _torch()
    idx = np.array([[0, 2], [4, 2]])
    jitgrad.manual_seed(0)
    ej = nn.Embedding(5, 3, padding_idx=2).double()
    et = torch.nn.Embedding(5, 3, padding_idx=2).double()
    _copy_weights(ej, et, torch)
    outs = []
    for lib, e in ((jitgrad, ej), (torch, et)):
        y = e(lib.tensor(idx))
        (y * y).sum().backward()
        outs.append((y.detach().numpy(), e.weight.grad.numpy()))
    np.testing.assert_allclose(outs[0][0], outs[1][0])
    np.testing.assert_allclose(outs[0][1], outs[1][1])
    assert not ej.weight.detach().numpy()[2].any()


def test_layer_norm_module():
    _compare_module(_torch(), lambda lib: lib.nn.LayerNorm(5).double(), _X)


def test_layer_norm_functional_gradcheck_and_errors():
    import jitgrad
    F = jitgrad.nn.functional
    x = jitgrad.tensor(np.random.default_rng(0).standard_normal((3, 2, 4)), requires_grad=True)
    w = jitgrad.tensor(np.random.default_rng(1).standard_normal((2, 4)), requires_grad=True)
    b = jitgrad.tensor(np.random.default_rng(2).standard_normal((2, 4)), requires_grad=True)
    assert jitgrad.autograd.gradcheck(lambda x, w, b: F.layer_norm(x, (2, 4), w, b), (x, w, b))
    with pytest.raises(RuntimeError, match=r"^Given normalized_shape=\[4\], expected input with "
                                           r"shape \[\*, 4\], but got input of size\[2, 3\]$"):
        F.layer_norm(jitgrad.ones(2, 3), (4,))


def test_mse_loss_module():
    _compare_module(_torch(), lambda lib: lib.nn.MSELoss(), _X, _X[::-1].copy())


def test_cross_entropy_loss_module():
    _compare_module(_torch(), lambda lib: lib.nn.CrossEntropyLoss(), _X, np.array([0, 4, 2, 1]))


def test_nll_loss_module():
    _compare_module(_torch(), lambda lib: lib.nn.NLLLoss(), _X, np.array([0, 4, 2, 1]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kwargs", [{}, {"reduction": "sum"}, {"reduction": "none"},
                                    {"ignore_index": 2}, {"ignore_index": 2, "reduction": "sum"},
                                    {"ignore_index": 2, "reduction": "none"}, {"transposed": True}])
def test_cross_entropy_of_class_indices_as_torch(dtype, kwargs):
    # the (n, c) batch of class indices jitgrad computes in one compiled call: values, gradients,
    # dtypes and grad_fn names; the row whose target is ignored holds an inf (its loss is 0,
    # not nan), and with every target ignored the mean is nan, as torch's
    torch = _torch()
    kwargs = dict(kwargs)
    transposed = kwargs.pop("transposed", False)
    x = np.random.default_rng(3).standard_normal((4, 5) if transposed else (5, 4)).astype(dtype) * 3
    x[(1, 1)] = np.inf
    for targets in ([0, 2, 1, 2, 3], [2, 2, 2, 2, 2]):
        got = []
        for lib in (jitgrad, torch):
            leaf = lib.tensor(x, requires_grad=True)
            out = lib.nn.functional.cross_entropy(leaf.t() if transposed else leaf,
                                                  lib.tensor(targets), **kwargs)
            names = (type(out.grad_fn).__name__, type(out.grad_fn.next_functions[0][0]).__name__)
            out.sum().backward()
            got.append((out.detach().numpy(), leaf.grad.numpy(), names, str(out.dtype).split(".")[-1]))
        (v, g, n, d), (tv, tg, tn, td) = got
        assert (n, d) == (tn, td)
        assert v.shape == tv.shape
        np.testing.assert_allclose(v, tv, rtol=1e-5)
        np.testing.assert_allclose(g, tg, rtol=1e-5, atol=1e-7)
    with pytest.raises(IndexError, match="^Target 5 is out of bounds.$"):
        F.cross_entropy(jitgrad.zeros(2, 5, requires_grad=True), jitgrad.tensor([0, 5]))


# ---- state dicts, save and load --------------------------------------------------------------
def test_state_dict_shares_storage_and_round_trips_through_save_load(tmp_path):
    jitgrad.manual_seed(0)
    m = Net()
    m.running.numpy()[:] = [1, 2, 3]
    sd = m.state_dict()
    assert list(sd) == ["scale", "running", "fc1.weight", "fc1.bias", "block.0.weight", "block.0.bias"]
    assert not sd["fc1.weight"].requires_grad
    assert np.shares_memory(sd["fc1.weight"].numpy(), m.fc1.weight.detach().numpy())
    path = tmp_path / "model.pt"
    jitgrad.save(sd, path)
    assert path.exists()                      # the path is used as given: no .npz added
    loaded = jitgrad.load(path)
    assert list(loaded) == list(sd)
    jitgrad.manual_seed(1)
    m2 = Net()
    res = m2.load_state_dict(loaded)
    assert repr(res) == "<All keys matched successfully>"
    x = jitgrad.randn(3, 2)
    assert np.array_equal(m2(x).detach().numpy(), m(x).detach().numpy())
    assert np.array_equal(m2.running.numpy(), [1, 2, 3])
    # the stored file is a plain npz: readable without jitgrad, no pickle needed
    with np.load(path, allow_pickle=False) as z:
        assert np.array_equal(z["fc1.weight"], sd["fc1.weight"].numpy())


def test_save_load_nested_objects_to_file_objects():
    obj = {"model": {"w": jitgrad.ones(2, dtype=jitgrad.float64)}, "epoch": 3, "lr": 0.5,
           "name": "run", "betas": (0.9, 0.999), "flags": [True, None], 7: "int key",
           "p": nn.Parameter(jitgrad.zeros(2)), "dtype": jitgrad.float64,
           "arr": np.arange(3)}
    buf = io.BytesIO()
    jitgrad.save(obj, buf)
    buf.seek(0)
    got = jitgrad.load(buf)
    assert got["epoch"] == 3 and got["lr"] == 0.5 and got["name"] == "run"
    assert got["betas"] == (0.9, 0.999) and got["flags"] == [True, None] and got[7] == "int key"
    assert got["model"]["w"].dtype is jitgrad.float64 and got["model"]["w"].tolist() == [1, 1]
    assert isinstance(got["p"], nn.Parameter) and got["p"].requires_grad
    assert got["dtype"] is jitgrad.float64 and got["arr"].tolist() == [0, 1, 2]


def test_save_refuses_code_and_load_refuses_foreign_files(tmp_path):
    with pytest.raises(TypeError, match="state_dict"):
        jitgrad.save(nn.Linear(1, 1), tmp_path / "m")
    with pytest.raises(TypeError, match="got function"):
        jitgrad.save({"f": lambda: 0}, tmp_path / "m")
    (tmp_path / "junk").write_bytes(b"not a zip")
    with pytest.raises(RuntimeError, match="not a file written by jitgrad.save"):
        jitgrad.load(tmp_path / "junk")
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(RuntimeError, match="no '__jitgrad__' entry"):
        jitgrad.load(tmp_path / "plain.npz")


def test_load_state_dict_errors_name_the_key_like_torch(tmp_path):
    torch = _torch()
    small = {"0.weight": np.ones((4, 2)), "0.bias": np.ones(4), "2.weight": np.ones((3, 4)),
             "2.bias": np.ones(3), "4.weight": np.ones((1, 3)), "4.bias": np.ones(1)}
    bad = dict(small)
    del bad["2.bias"]
    bad["4.weight"] = np.ones((2, 3))
    bad["9.weight"] = np.ones(1)
    jitgrad.save({k: jitgrad.tensor(v, dtype=jitgrad.float32) for k, v in bad.items()},
                 tmp_path / "bad.npz")
    loaded = jitgrad.load(tmp_path / "bad.npz")
    msgs = []
    for lib, sd in ((jitgrad, loaded), (torch, {k: torch.tensor(v, dtype=torch.float32)
                                                for k, v in bad.items()})):
        with pytest.raises(RuntimeError) as e:
            _mlp(lib).load_state_dict(sd)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1].replace("torch.Size", "jitgrad.Size")
    assert 'Missing key(s) in state_dict: "2.bias"' in msgs[0]
    assert 'Unexpected key(s) in state_dict: "9.weight"' in msgs[0]
    assert "size mismatch for 4.weight" in msgs[0]
    # strict=False returns the key lists instead of raising, as torch does
    partial = {"0.weight": np.ones((4, 2)), "x": np.ones(1)}
    res = [lib_mlp.load_state_dict({k: lib.tensor(v, dtype=lib.float32) for k, v in partial.items()},
                                   strict=False)
           for lib, lib_mlp in ((jitgrad, _mlp(jitgrad)), (torch, _mlp(torch)))]
    assert res[0].missing_keys == res[1].missing_keys == ["0.bias", "2.weight", "2.bias", "4.weight",
                                                           "4.bias"]
    assert res[0].unexpected_keys == res[1].unexpected_keys == ["x"]


def test_state_dict_loads_into_torch_and_back():
    torch = _torch()
    j = _mlp(jitgrad, jitgrad.float64)
    t = _mlp(torch, torch.float64)
    _copy_weights(j, t, torch)
    j2 = _mlp(jitgrad, jitgrad.float64)
    j2.load_state_dict({k: jitgrad.tensor(v.numpy()) for k, v in t.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((3, 2))
    np.testing.assert_array_equal(j2(jitgrad.tensor(x)).detach().numpy(),
                                  j(jitgrad.tensor(x)).detach().numpy())


def test_module_dtype_conversion_and_deepcopy():
    m = _mlp(jitgrad)
    assert m.double() is m and all(p.dtype is jitgrad.float64 for p in m.parameters())
    m.to(jitgrad.float32)
    assert all(p.dtype is jitgrad.float32 for p in m.parameters())
    c = copy.deepcopy(m)
    assert all(isinstance(p, nn.Parameter) for p in c.parameters())
    next(c.parameters()).detach().numpy()[:] = 0
    assert next(m.parameters()).detach().numpy().any()


def test_loss_modules_pass_their_options_to_the_functional(monkeypatch):
    seen = {}
    monkeypatch.setattr(F, "cross_entropy", lambda x, t, **kw: seen.update(kw) or x, raising=False)
    monkeypatch.setattr(F, "nll_loss", lambda x, t, **kw: seen.update(kw) or x, raising=False)
    w = jitgrad.ones(3)
    nn.CrossEntropyLoss(weight=w, label_smoothing=0.1)(jitgrad.ones(2, 3), jitgrad.tensor([0, 1]))
    assert sorted(seen) == ["label_smoothing", "reduction", "weight"] and seen["weight"] is w
    seen.clear()
    nn.NLLLoss(ignore_index=2, reduction="sum")(jitgrad.ones(2, 3), jitgrad.tensor([0, 1]))
    assert seen == {"ignore_index": 2, "reduction": "sum"}
    assert list(nn.CrossEntropyLoss(weight=w).state_dict()) == ["weight"]

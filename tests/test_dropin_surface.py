"""Issue 13 (part A): the names PyTorch scripts use beyond autograd. torch's keyword names and
numpy spellings on every function and method, generator= everywhere, the counting and searching
functions, distances and std_mean/var_mean (gradients checked in float64 to second order), and
the CPU build's answers for CUDA. Each check runs without PyTorch against hand-computed values;
with PyTorch installed the same calls are compared with it."""
import inspect
import math
import warnings

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as F
from jitgrad import _keywords, _methods, ops
from jitgrad.autograd import gradcheck, gradgradcheck
from jitgrad.utils.data import DataLoader, TensorDataset, random_split

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def _np(v):
    return v.detach().numpy(force=True) if hasattr(v, "detach") else np.asarray(v)


def _same(a, b, rtol=1e-6, atol=1e-7):
    if isinstance(a, (tuple, list)):
        assert isinstance(b, (tuple, list)) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y, rtol, atol)
        return
    if hasattr(a, "dtype") and hasattr(b, "dtype"):
        assert str(a.dtype).split(".")[-1] == str(b.dtype).split(".")[-1]
    np.testing.assert_allclose(_np(a), _np(b), rtol=rtol, atol=atol)


# ---- keyword names ---------------------------------------------------------------------------
X = np.arange(6.0).reshape(2, 3)
KEYWORD_CALLS = [     # (call with torch's keywords, the numpy result)
    (lambda t, x: t.sum(x, axis=1, keepdims=True), X.sum(1, keepdims=True)),
    (lambda t, x: x.sum(axis=1, keepdims=True), X.sum(1, keepdims=True)),
    (lambda t, x: t.mean(input=x, dim=0, keepdims=True), X.mean(0, keepdims=True)),
    (lambda t, x: x.std(axis=0, keepdims=True), X.std(0, ddof=1, keepdims=True)),
    (lambda t, x: x.var(dim=1, correction=0), X.var(1)),
    (lambda t, x: t.var(x, 1, unbiased=False, keepdims=True), X.var(1, keepdims=True)),
    (lambda t, x: x.max(axis=1, keepdims=True).values, X.max(1, keepdims=True)),
    (lambda t, x: t.max(x, other=x - 1), X),
    (lambda t, x: x.min(axis=0).indices, X.argmin(0)),
    (lambda t, x: (x > 1).all(axis=1, keepdims=True), (X > 1).all(1, keepdims=True)),
    (lambda t, x: t.any(x > 4, axis=0), (X > 4).any(0)),
    (lambda t, x: x.amax(axis=(0, 1)), X.max()),
    (lambda t, x: t.argmax(x, axis=1, keepdims=True), X.argmax(1)[:, None]),
    (lambda t, x: x.prod(axis=1), X.prod(1)),
    (lambda t, x: t.logsumexp(x, axis=1), np.log(np.exp(X).sum(1))),
    (lambda t, x: x.cumsum(axis=1), X.cumsum(1)),
    (lambda t, x: t.softmax(x, axis=1), np.exp(X) / np.exp(X).sum(1, keepdims=True)),
    (lambda t, x: x.reshape(2, 1, 3).squeeze(axis=1), X),
    (lambda t, x: x.unsqueeze(axis=0), X[None]),
    (lambda t, x: t.matmul(input=x, other=x.T), X @ X.T),
    (lambda t, x: t.mm(input=x, mat2=x.T), X @ X.T),
    (lambda t, x: t.dot(input=x[0], tensor=x[1]), X[0] @ X[1]),
    (lambda t, x: t.mv(input=x, vec=x[0]), X @ X[0]),
    (lambda t, x: t.outer(input=x[0], vec2=x[1]), np.outer(X[0], X[1])),
    (lambda t, x: t.pow(x, exponent=2), X ** 2),
    (lambda t, x: t.add(x1=x, x2=x, alpha=2), 3 * X),
    (lambda t, x: t.exp(a=x), np.exp(X)),
    (lambda t, x: t.cat(tensors=[x, x], axis=0), np.concatenate([X, X])),
    (lambda t, x: t.stack(tensors=[x, x], axis=1), np.stack([X, X], 1)),
    (lambda t, x: x.permute(dims=(1, 0)), X.T),
    (lambda t, x: t.permute(input=x, dims=(1, 0)), X.T),
    (lambda t, x: t.reshape(x, shape=(3, 2)), X.reshape(3, 2)),
    (lambda t, x: x.view(size=(6,)), X.reshape(6)),
    (lambda t, x: t.flip(x, dims=(0,)), X[::-1]),
    (lambda t, x: x.split(split_size=1, dim=0)[1], X[1:]),
    (lambda t, x: t.split(x, split_size_or_sections=[1, 2], dim=1)[1], X[:, 1:]),
    (lambda t, x: t.eq(input=x, other=1.0), X == 1),
    (lambda t, x: t.transpose(x, dim0=0, dim1=1), X.T),
    (lambda t, x: x.repeat(repeats=(2, 1)), np.tile(X, (2, 1))),
]


@pytest.mark.parametrize("i", range(len(KEYWORD_CALLS)))
def test_torch_keyword_names(i):
    call, expected = KEYWORD_CALLS[i]
    got = call(jitgrad, jitgrad.tensor(X))
    np.testing.assert_allclose(_np(got), expected, rtol=1e-6)
    if torch is not None:
        _same(got, call(torch, torch.tensor(X)))


FACTORY_CALLS = [     # torch's keyword names on the factories, (call, numpy result)
    (lambda t: t.zeros(size=(2, 3)), np.zeros((2, 3))),
    (lambda t: t.ones(size=[2], dtype=t.float64), np.ones(2)),
    (lambda t: t.empty(size=(2,)).shape, (2,)),
    (lambda t: t.rand(size=(2, 2)).shape, (2, 2)),
    (lambda t: t.randn(size=(3,)).shape, (3,)),
    (lambda t: t.arange(end=3), np.arange(3)),
    (lambda t: t.arange(start=1, end=7, step=2), np.arange(1, 7, 2)),
    (lambda t: t.zeros_like(input=t.ones(2)), np.zeros(2)),
    (lambda t: t.full_like(input=t.ones(2), fill_value=2.0), np.full(2, 2.0)),
    (lambda t: t.rand_like(input=t.ones(2)).shape, (2,)),
    (lambda t: t.ones(2).new_zeros(size=(3,)), np.zeros(3)),
    (lambda t: t.ones(2, 3).expand(size=(2, 2, 3)).shape, (2, 2, 3)),
]


@pytest.mark.parametrize("i", range(len(FACTORY_CALLS)))
def test_factory_keyword_names(i):
    call, expected = FACTORY_CALLS[i]
    got = call(jitgrad)
    np.testing.assert_array_equal(_np(got), expected)
    if torch is not None:
        np.testing.assert_array_equal(_np(got), _np(call(torch)))


def test_keywords_keep_their_errors():
    x = jitgrad.ones(2, 3)
    with pytest.raises(TypeError, match="multiple values for argument 'dim'"):
        x.sum(dim=0, axis=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'axes'"):
        x.sum(axes=1)
    # torch's Python-level functions take no numpy spellings
    with pytest.raises(TypeError, match="unexpected keyword argument 'axis'"):
        jitgrad.norm(x, axis=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'a'"):
        x.uniform_(a=0, b=1)


def _schema_names(name):
    """The argument names torch's parser takes for the overloads of aten::name whose first
    argument is a tensor (or a list of them): 'self' is spelt 'input'."""
    names = set()
    for s in torch._C._jit_get_schemas_for_operator(f"aten::{name}"):
        args = s.arguments
        if not args or not str(args[0].type).startswith("Tensor") or "Dimname" in str(s) \
                or s.overload_name.endswith("out"):
            continue
        names.update("input" if a.name == "self" else a.name for a in args if not a.is_out)
    return names - {"out", "memory_format", "layout", "pin_memory", "out_dtype"}


# torch's arguments jitgrad does not take: Tensor.view(dtype) (reinterpreting memory), expand's
# internal `implicit`, and the forms of to()/copy_() parsed by hand
NOT_TAKEN = {"view": {"dtype"}, "expand": {"implicit"}, "to": {"other"},
             "copy_": {"non_blocking", "other"}}


def _accepted(fn):
    own = {p.name for p in inspect.signature(fn).parameters.values()
           if p.kind is not p.VAR_KEYWORD}
    return own | set(getattr(fn, "torch_keywords", ()))


@needs_torch
def test_every_function_takes_torchs_argument_names():
    public = {name: fn for fn, functions, _, _ in ops.NAMES for name in functions}
    missing = {}
    for name, fn in public.items():
        if not callable(fn) or not hasattr(torch, name) or name in _keywords._PYTHON_LEVEL:
            continue
        lacking = _schema_names(name) - _accepted(getattr(jitgrad, name))
        if lacking:
            missing[name] = sorted(lacking)
    assert not missing


@needs_torch
def test_every_method_takes_torchs_argument_names():
    missing = {}
    for name in [n for _, _, methods, _ in ops.NAMES for n in methods] + list(_methods._CONVENIENCES):
        if name.startswith("__") or not hasattr(torch.Tensor, name):
            continue
        lacking = (_schema_names(name) - {"input"} - _accepted(getattr(jitgrad.Tensor, name))
                   - NOT_TAKEN.get(name, set()))
        if lacking:
            missing[name] = sorted(lacking)
    assert not missing


# ---- generators ------------------------------------------------------------------------------
def _draws_with(g):
    x = jitgrad.zeros(3, 4)
    draws = [jitgrad.rand_like(x, generator=g), jitgrad.randn_like(x, generator=g),
             jitgrad.randint_like(x, 10, generator=g), jitgrad.randint_like(x, 3, 9, generator=g),
             x.clone().random_(generator=g), x.clone().random_(100, generator=g),
             x.clone().random_(-5, 5, generator=g)]
    for init in (jitgrad.nn.init.uniform_, jitgrad.nn.init.normal_,
                 jitgrad.nn.init.xavier_uniform_, jitgrad.nn.init.xavier_normal_,
                 jitgrad.nn.init.kaiming_uniform_, jitgrad.nn.init.kaiming_normal_,
                 jitgrad.nn.init.trunc_normal_, jitgrad.nn.init.orthogonal_):
        draws.append(init(jitgrad.empty(3, 4), generator=g))
    draws.append(jitgrad.nn.init.sparse_(jitgrad.empty(4, 3), 0.5, generator=g))
    return [d.numpy().copy() for d in draws]


def test_generator_is_honoured_and_leaves_the_default_stream_alone():
    state = jitgrad.get_rng_state()
    first = _draws_with(jitgrad.Generator().manual_seed(3))
    again = _draws_with(jitgrad.Generator().manual_seed(3))
    other = _draws_with(jitgrad.Generator().manual_seed(4))
    assert jitgrad.equal(state, jitgrad.get_rng_state())
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert all(not np.array_equal(a, b) for a, b in zip(first, other))


def test_default_generator_reproduces_after_manual_seed():
    jitgrad.manual_seed(11)
    first = _draws_with(None)
    jitgrad.manual_seed(11)
    assert all(np.array_equal(a, b) for a, b in zip(first, _draws_with(None)))


def test_random_fills_integers_in_range():
    jitgrad.manual_seed(0)
    assert (jitgrad.zeros(50).random_(5, 6) == 5).all()
    x = jitgrad.zeros(1000).random_(3)
    assert set(np.unique(x.numpy()).tolist()) == {0.0, 1.0, 2.0}
    big = jitgrad.zeros(1000).random_()           # float32: [0, 2**24]
    assert big.min() >= 0 and big.max() <= 2 ** 24 and (big == big.round()).all()
    small = jitgrad.zeros(1000, dtype=jitgrad.int8).random_()
    assert small.dtype == jitgrad.int8 and small.min() >= 0 and small.max() <= 127
    assert jitgrad.zeros(40, dtype=jitgrad.bool).random_().any()
    assert jitgrad.randint_like(jitgrad.zeros(3, dtype=jitgrad.int32), 5).dtype == jitgrad.int32
    y = jitgrad.zeros(3, requires_grad=True).clone()
    y.random_(0, 4)
    assert type(y.grad_fn).__name__ == "RandomBackward0"
    y.sum().backward()          # a filled tensor passes no gradient back, as torch's


RANDOM_ERRORS = [
    (lambda t: t.zeros(3).random_(5, 3), RuntimeError,
     "random_ expects 'from' to be less than 'to', but got from=5 >= to=3"),
    (lambda t: t.zeros(3).random_(0), RuntimeError,
     "random_ expects 'from' to be less than 'to', but got from=0 >= to=0"),
    (lambda t: t.zeros(3, dtype=t.uint8).random_(-1, 5), RuntimeError,
     "from is out of bounds for unsigned char"),
    (lambda t: t.zeros(3, dtype=t.uint8).random_(0, 500), RuntimeError,
     "to - 1 is out of bounds for unsigned char"),
    (lambda t: t.zeros(3).random_(2.5), TypeError, "random_() received an invalid combination"),
    (lambda t: t.zeros(3, requires_grad=True).random_(), RuntimeError,
     "a leaf Variable that requires grad is being used in an in-place operation."),
    (lambda t: t.Generator("cuda"), RuntimeError, "Cannot get CUDA generator without ATen_cuda"),
    (lambda t: t.Generator("mps"), RuntimeError,
     "Cannot execute getNewGenerator() without MPS backend."),
    (lambda t: t.nn.Linear(2, 2).cuda(), AssertionError, "Torch not compiled with CUDA enabled"),
    (lambda t: t.zeros(2).cuda(), AssertionError, "Torch not compiled with CUDA enabled"),
    (lambda t: t.cuda.get_rng_state(), AssertionError, "Torch not compiled with CUDA enabled"),
    (lambda t: t.accelerator.synchronize(), RuntimeError,
     "Cannot access accelerator device when none is available."),
]


@pytest.mark.parametrize("i", range(len(RANDOM_ERRORS)))
def test_errors_as_torchs(i):
    call, exc, message = RANDOM_ERRORS[i]
    for lib in (jitgrad, torch) if torch is not None else (jitgrad,):
        with pytest.raises(exc) as info:
            call(lib)
        assert str(info.value).startswith(message)


def test_no_cuda_answers():
    assert jitgrad.nn.ReLU().cuda().__class__ is jitgrad.nn.ReLU     # nothing to move
    assert jitgrad.nn.Linear(2, 2).cpu() is not None
    assert jitgrad.cuda.get_rng_state_all() == [] and jitgrad.cuda.get_arch_list() == []
    assert jitgrad.cuda.set_rng_state_all([]) is None
    assert not jitgrad.accelerator.is_available() and jitgrad.accelerator.current_accelerator() is None
    assert not jitgrad.backends.mps.is_available()


def test_init_orthogonal_trunc_normal_and_sparse():
    g = jitgrad.Generator().manual_seed(0)
    w = jitgrad.nn.init.orthogonal_(jitgrad.empty(3, 5), gain=2.0, generator=g)
    np.testing.assert_allclose(w.numpy() @ w.numpy().T, 4 * np.eye(3), atol=1e-5)
    tall = jitgrad.nn.init.orthogonal_(jitgrad.empty(6, 2, 2), generator=g).reshape(6, 4)
    np.testing.assert_allclose(tall.numpy().T @ tall.numpy(), np.eye(4), atol=1e-5)
    t = jitgrad.nn.init.trunc_normal_(jitgrad.empty(2000), mean=1.0, std=2.0, a=0.0, b=1.5,
                                      generator=g)
    assert t.min() >= 0.0 and t.max() <= 1.5
    s = jitgrad.nn.init.sparse_(jitgrad.empty(10, 4), 0.3, generator=g)
    assert ((s == 0).sum(0) == 3).all()
    with pytest.raises(ValueError, match="Only tensors with 2 or more dimensions"):
        jitgrad.nn.init.orthogonal_(jitgrad.empty(3))


def test_dataloader_and_random_split_follow_their_generator():
    ds = TensorDataset(jitgrad.arange(10))

    def order(seed):
        g = jitgrad.Generator().manual_seed(seed)
        return [b[0].tolist() for b in DataLoader(ds, batch_size=4, shuffle=True, generator=g)]
    assert order(1) == order(1) and order(1) != order(2)
    assert sorted(sum(order(1), [])) == list(range(10))
    a, b = random_split(range(10), [0.7, 0.3], generator=jitgrad.Generator().manual_seed(1))
    assert (len(a), len(b)) == (7, 3) and sorted(list(a) + list(b)) == list(range(10))


# ---- torch.utils.data ------------------------------------------------------------------------
class _Squares:
    """A map-style dataset of (array, int, dict) samples, built the same way for both libraries."""

    def __init__(self, lib):
        self.lib = lib

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return self.lib.tensor([float(i), float(i * i)]), i, {"name": str(i), "half": i / 2}


def _flatten(batch):
    """A batch as nested Python values (tensors as lists), to compare across libraries."""
    if hasattr(batch, "tolist") and hasattr(batch, "dtype"):
        return ("tensor", str(batch.dtype).split(".")[-1], batch.tolist())
    if isinstance(batch, dict):
        return {k: _flatten(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return [type(batch).__name__] + [_flatten(v) for v in batch]
    return batch


def _class_dataset(lib):
    data = lib.utils.data

    class Squares(_Squares, data.Dataset):
        pass

    class Stream(data.IterableDataset):
        def __iter__(self):
            return iter(range(7))

        def __len__(self):
            return 7
    return data, Squares(lib), Stream()


LOADER_CASES = [     # (lib -> batches)
    lambda lib: list(_class_dataset(lib)[0].DataLoader(_class_dataset(lib)[1], batch_size=2)),
    lambda lib: list(lib.utils.data.DataLoader([lib.ones(2), lib.zeros(2)], batch_size=2)),
    lambda lib: list(lib.utils.data.DataLoader(range(5), batch_size=2, collate_fn=sum)),
    lambda lib: list(lib.utils.data.DataLoader(range(5), batch_size=None)),
    lambda lib: list(lib.utils.data.DataLoader(_class_dataset(lib)[2], batch_size=3)),
    lambda lib: len(lib.utils.data.DataLoader(_class_dataset(lib)[2], batch_size=3, drop_last=True)),
    lambda lib: list(lib.utils.data.DataLoader(
        lib.utils.data.TensorDataset(lib.arange(6.0), lib.arange(6)), batch_size=4,
        num_workers=2, drop_last=True)),
    lambda lib: list(lib.utils.data.DataLoader(
        range(6), batch_sampler=lib.utils.data.BatchSampler(
            lib.utils.data.SequentialSampler(range(6)), 4, False))),
    lambda lib: list(lib.utils.data.DataLoader(
        range(6), sampler=lib.utils.data.SequentialSampler(range(6)), batch_size=5)),
    lambda lib: len(lib.utils.data.ConcatDataset([range(3), range(4)])),
    lambda lib: lib.utils.data.ConcatDataset([range(3), range(4)])[-2],
    lambda lib: list(_class_dataset(lib)[2] + _class_dataset(lib)[2])[5:9],
    lambda lib: lib.utils.data.default_collate([(1, 2.5, "a", True), (3, 4.5, "b", False)]),
    lambda lib: lib.utils.data.default_collate([np.ones(2, np.float32), np.zeros(2, np.float32)]),
    lambda lib: lib.utils.data.get_worker_info(),
]


@pytest.mark.parametrize("i", range(len(LOADER_CASES)))
def test_utils_data_as_torchs(i):
    got = _flatten(LOADER_CASES[i](jitgrad))
    assert got is not None or i == len(LOADER_CASES) - 1
    if torch is not None:
        assert got == _flatten(LOADER_CASES[i](torch))


def test_utils_data_by_hand():
    data = jitgrad.utils.data
    xs = list(data.DataLoader([{"a": 1, "b": jitgrad.tensor(2.0)}, {"a": 3, "b": jitgrad.tensor(4.0)}],
                              batch_size=2))
    assert xs[0]["a"].tolist() == [1, 3] and xs[0]["b"].tolist() == [2.0, 4.0]
    tensors = data.TensorDataset(jitgrad.arange(10.0))
    jitgrad.manual_seed(5)
    first = [b[0].tolist() for b in data.DataLoader(tensors, batch_size=4, shuffle=True)]
    jitgrad.manual_seed(5)
    again = [b[0].tolist() for b in data.DataLoader(tensors, batch_size=4, shuffle=True)]
    assert first == again and sorted(sum(first, [])) == list(range(10))
    g = jitgrad.Generator().manual_seed(0)
    draws = list(data.WeightedRandomSampler([0.0, 1.0, 0.0], 6, generator=g))
    assert draws == [1] * 6
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data.DataLoader(tensors, pin_memory=True)
    assert "no accelerator is found" in str(caught[0].message)


LOADER_ERRORS = [
    (dict(num_workers=-1), "num_workers option should be non-negative"),
    (dict(shuffle=True, sampler=[0]), "sampler option is mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler option is mutually exclusive"),
    (dict(batch_size=None, drop_last=True), "batch_size=None option disables auto-batching"),
    (dict(timeout=-1), "timeout option should be non-negative"),
]


@pytest.mark.parametrize("i", range(len(LOADER_ERRORS)))
def test_data_loader_argument_errors(i):
    kwargs, message = LOADER_ERRORS[i]
    for lib in (jitgrad, torch) if torch is not None else (jitgrad,):
        with pytest.raises(ValueError, match=message):
            lib.utils.data.DataLoader(lib.utils.data.TensorDataset(lib.arange(5.0)), **kwargs)
    with pytest.raises(ValueError, match="expected unspecified shuffle option"):
        jitgrad.utils.data.DataLoader(_class_dataset(jitgrad)[2], shuffle=True)
    with pytest.raises(TypeError, match="default_collate: batch must contain tensors"):
        jitgrad.utils.data.default_collate([object()])
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal"):
        jitgrad.utils.data.default_collate([[1, 2], [3]])


# ---- Size ------------------------------------------------------------------------------------
def test_size_compares_as_a_tuple():
    s = jitgrad.zeros(2, 3).shape
    assert s == (2, 3) and (2, 3) == s and s == jitgrad.Size([2, 3]) and s != (3, 2)
    assert hash(s) == hash((2, 3)) and isinstance(s, tuple)
    assert repr(s) == "jitgrad.Size([2, 3])" and repr(s[1:]) == "jitgrad.Size([3])"
    assert s.numel() == 6 and list(s) == [2, 3]


# ---- tensor methods --------------------------------------------------------------------------
def test_memory_and_type_methods():
    x = jitgrad.arange(6.0).reshape(2, 3)
    assert x.element_size() == 4 and x.nbytes == 24 and x.is_contiguous()
    assert x.t().stride() == (1, 3) and not x.t().is_contiguous()
    assert x.t().contiguous().is_contiguous() and x[:, 1:].storage_offset() == 1
    assert x.type_as(jitgrad.zeros(1, dtype=jitgrad.float64)).dtype == jitgrad.float64
    assert x.type(jitgrad.int64).dtype == jitgrad.int64 and x.type() == "jitgrad.FloatTensor"
    assert x.data_ptr() == x[0].data_ptr() != x[1].data_ptr()


def test_unflatten():
    x = jitgrad.arange(12.0, requires_grad=True)
    y = x.reshape(2, 6).unflatten(1, (3, -1))
    assert y.shape == (2, 3, 2)
    np.testing.assert_array_equal(y.detach().numpy(), np.arange(12.0).reshape(2, 3, 2))
    (y * jitgrad.arange(12.0).reshape(2, 3, 2)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.arange(12.0))
    assert jitgrad.unflatten(jitgrad.zeros(4, 6), -1, sizes=(2, 3)).shape == (4, 2, 3)
    with pytest.raises(RuntimeError, match=r"Provided sizes \[4, -1\] don't multiply up"):
        jitgrad.zeros(2, 6).unflatten(1, (4, -1))
    with pytest.raises(RuntimeError, match="sizes must be non-empty"):
        jitgrad.zeros(2, 6).unflatten(1, ())


# ---- counting and searching ------------------------------------------------------------------
def test_histc_and_histogram_by_hand():
    x = jitgrad.tensor([1.0, 2.0, 1.0, 3.0, -5.0])
    np.testing.assert_array_equal(jitgrad.histc(x, bins=4, min=0, max=3).numpy(), [0, 2, 1, 1])
    np.testing.assert_array_equal(jitgrad.histc(jitgrad.tensor([1.0, 1.0]), 3).numpy(), [0, 2, 0])
    h = jitgrad.histogram(x, bins=4, range=(0.0, 4.0))
    np.testing.assert_array_equal(h.hist.numpy(), [0, 2, 1, 1])
    np.testing.assert_array_equal(h.bin_edges.numpy(), [0, 1, 2, 3, 4])
    default = jitgrad.histogram(x, density=True)          # 100 bins over the data's range
    assert default.hist.shape == (100,) and default.bin_edges.shape == (101,)
    np.testing.assert_allclose((default.hist * (8.0 / 100)).sum().item(), 1.0, rtol=1e-5)
    d = jitgrad.histogram(x, jitgrad.tensor([0.0, 2.0, 4.0]), weight=x.abs(), density=True)
    np.testing.assert_allclose(d.hist.numpy(), np.array([2.0, 5.0]) / 7 / 2)
    with pytest.raises(NotImplementedError, match="\"histogram_cpu\" not implemented for 'Long'"):
        jitgrad.histc(jitgrad.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="max must be larger than min"):
        jitgrad.histc(x, 3, min=2, max=1)


def test_bincount_unique_searchsorted_bucketize_by_hand():
    i = jitgrad.tensor([0, 1, 1, 3])
    np.testing.assert_array_equal(jitgrad.bincount(i).numpy(), [1, 2, 0, 1])
    w = jitgrad.bincount(i, weights=jitgrad.tensor([0.5, 1.0, 1.0, 2.0]), minlength=6)
    assert w.dtype == jitgrad.float32
    np.testing.assert_array_equal(w.numpy(), [0.5, 2, 0, 2, 0, 0])
    with pytest.raises(RuntimeError, match="1-d non-negative integral inputs"):
        jitgrad.bincount(jitgrad.tensor([-1]))
    values, inverse, counts = jitgrad.tensor([3, 1, 3, 2]).unique(return_inverse=True,
                                                                 return_counts=True)
    assert (values.tolist(), inverse.tolist(), counts.tolist()) == ([1, 2, 3], [2, 0, 2, 1],
                                                                      [1, 1, 2])
    rows = jitgrad.unique(jitgrad.tensor([[3, 1], [3, 1], [0, 2]]), dim=0)
    assert rows.tolist() == [[0, 2], [3, 1]]
    assert jitgrad.unique_consecutive(jitgrad.tensor([1, 1, 2, 2, 3, 1])).tolist() == [1, 2, 3, 1]
    seq = jitgrad.tensor([1, 3, 5, 7])
    assert jitgrad.searchsorted(seq, jitgrad.tensor([3, 6, 9])).tolist() == [1, 3, 4]
    assert jitgrad.searchsorted(seq, jitgrad.tensor([3, 6, 9]), side="right").tolist() == [2, 3, 4]
    assert jitgrad.searchsorted(jitgrad.tensor([[1, 3, 5], [2, 4, 6]]),
                                jitgrad.tensor([[3], [5]]), right=True).tolist() == [[2], [2]]
    b = jitgrad.bucketize(jitgrad.tensor([3, 6, 9]), seq, right=True, out_int32=True)
    assert b.dtype == jitgrad.int32 and b.tolist() == [2, 3, 4]
    with pytest.raises(RuntimeError, match="side and right can't be set to opposites"):
        jitgrad.searchsorted(seq, 2, right=True, side="left")


@needs_torch
def test_counting_matches_torch():
    rng = np.random.default_rng(0)
    for trial in range(40):
        dt = (np.float32, np.float64)[trial % 2]
        a = rng.standard_normal(int(rng.integers(1, 40))).astype(dt)
        bins = int(rng.integers(1, 12))
        lo, hi = sorted(rng.standard_normal(2).tolist())
        j, t = jitgrad.from_numpy(a), torch.from_numpy(a)
        _same(jitgrad.histc(j, bins), torch.histc(t, bins))
        _same(jitgrad.histc(j, bins, min=lo, max=hi), torch.histc(t, bins, min=lo, max=hi))
        # inner bin edges may differ from torch's by an ulp (its fused multiply-adds)
        _same(tuple(jitgrad.histogram(j, bins, range=(lo, hi))),
              tuple(torch.histogram(t, bins, range=(lo, hi))), rtol=1e-5, atol=1e-6)
        edges = np.sort(rng.standard_normal(5)).astype(dt)
        for right in (False, True):
            _same(jitgrad.searchsorted(jitgrad.from_numpy(edges), j, right=right),
                  torch.searchsorted(torch.from_numpy(edges), t, right=right))
        ints = rng.integers(0, 6, 12)
        ji, ti = jitgrad.from_numpy(ints), torch.from_numpy(ints)
        _same(jitgrad.bincount(ji, minlength=3), torch.bincount(ti, minlength=3))
        _same(jitgrad.unique(ji, return_inverse=True, return_counts=True),
              torch.unique(ti, return_inverse=True, return_counts=True))
        _same(jitgrad.unique_consecutive(ji, return_counts=True),
              torch.unique_consecutive(ti, return_counts=True))


# ---- compositions: values by hand, gradients to second order, torch's values and gradients ----
COMPOSED = [   # (function of jitgrad or torch, input shapes); torch has no second derivative of cdist
    (lambda t, x: t.std_mean(x, dim=1), [(3, 4)]),
    (lambda t, x: t.var_mean(x, 0, unbiased=False, keepdim=True), [(3, 4)]),
    (lambda t, x: t.var_mean(x, correction=2), [(3, 4)]),
    (lambda t, x, y: t.cdist(x, y), [(3, 4), (2, 4)]),
    (lambda t, x, y: t.cdist(x, y, p=1), [(2, 3, 4), (2, 5, 4)]),
    (lambda t, x, y: t.cdist(x, y, p=3.0), [(3, 2), (4, 2)]),
    (lambda t, x, y: t.cdist(x, y, p=float("inf")), [(3, 2), (4, 2)]),
    (lambda t, x, y: t.cdist(x, y, compute_mode="use_mm_for_euclid_dist"), [(3, 4), (2, 4)]),
    (lambda t, x: t.nn.functional.normalize(x), [(3, 4)]),
    (lambda t, x: t.nn.functional.normalize(x, p=1.0, dim=0), [(3, 4)]),
    (lambda t, x, y: t.nn.functional.cosine_similarity(x, y), [(3, 4), (3, 4)]),
    (lambda t, x, y: t.nn.functional.cosine_similarity(x, y, dim=-1), [(3, 4), (4,)]),
    (lambda t, x, y: t.nn.functional.pairwise_distance(x, y), [(3, 4), (3, 4)]),
    (lambda t, x, y: t.nn.functional.pairwise_distance(x, y, p=1.0, keepdim=True),
     [(3, 4), (4,)]),
    (lambda t, x, y: t.nn.CosineSimilarity(dim=0)(x, y), [(3, 4), (3, 4)]),
    (lambda t, x, y: t.nn.PairwiseDistance(p=3.0)(x, y), [(3, 4), (3, 4)]),
]


def _inputs(shapes, seed, lib):
    rng = np.random.default_rng(seed)
    return [lib.tensor(rng.standard_normal(s), dtype=lib.float64, requires_grad=True)
            for s in shapes]


def _outs(r):
    return tuple(r) if isinstance(r, tuple) else (r,)


@pytest.mark.parametrize("i", range(len(COMPOSED)))
def test_compositions_gradcheck_to_second_order(i):
    fn, shapes = COMPOSED[i]
    xs = _inputs(shapes, i, jitgrad)
    assert gradcheck(lambda *a: fn(jitgrad, *a), xs, eps=1e-6, atol=1e-6, rtol=1e-5)
    assert gradgradcheck(lambda *a: fn(jitgrad, *a), xs, eps=1e-6, atol=1e-5, rtol=1e-4)


@needs_torch
@pytest.mark.parametrize("i", range(len(COMPOSED)))
def test_compositions_match_torch(i):
    fn, shapes = COMPOSED[i]
    jx, tx = _inputs(shapes, i, jitgrad), _inputs(shapes, i, torch)
    jo, to = _outs(fn(jitgrad, *jx)), _outs(fn(torch, *tx))
    _same(jo, to, rtol=1e-9, atol=1e-12)
    seeds = [np.random.default_rng(50 + k).standard_normal(tuple(o.shape)) for k, o in enumerate(to)]
    jg = jitgrad.autograd.grad(jo, jx, [jitgrad.tensor(s) for s in seeds], create_graph=True)
    tg = torch.autograd.grad(to, tx, [torch.tensor(s) for s in seeds], create_graph=True)
    _same(jg, tg, rtol=1e-9, atol=1e-12)
    if any(type(o.grad_fn).__name__ == "CdistBackward0" for o in to):
        return
    jh = jitgrad.autograd.grad(sum((g * g).sum() for g in jg), jx)
    th = torch.autograd.grad(sum((g * g).sum() for g in tg), tx)
    _same(jh, th, rtol=1e-7, atol=1e-10)


def test_compositions_by_hand():
    x = jitgrad.tensor([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(F.normalize(x).numpy(), [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(jitgrad.cdist(x, x).numpy(), [[0.0, 5.0], [5.0, 0.0]])
    np.testing.assert_allclose(jitgrad.cdist(x, x, p=1).numpy(), [[0.0, 7.0], [7.0, 0.0]])
    np.testing.assert_allclose(F.cosine_similarity(x, jitgrad.tensor([[4.0, 3.0]])).numpy(),
                               [24 / 25, 0.0])
    np.testing.assert_allclose(F.pairwise_distance(x, x).numpy(), [2 ** 0.5 * 1e-6] * 2, rtol=1e-5)
    s, m = jitgrad.std_mean(jitgrad.tensor([1.0, 2.0, 3.0, 4.0]))
    assert math.isclose(s.item(), np.std([1, 2, 3, 4], ddof=1), rel_tol=1e-6) and m.item() == 2.5
    # a zero vector gets a zero distance gradient, not nan
    z = jitgrad.zeros(1, 3, requires_grad=True)
    jitgrad.cdist(z, jitgrad.zeros(1, 3)).sum().backward()
    assert not np.isnan(z.grad.numpy()).any()
    with pytest.raises(RuntimeError, match="X1 and X2 must have the same number of columns"):
        jitgrad.cdist(jitgrad.ones(2, 3), jitgrad.ones(2, 4))
    with pytest.raises(RuntimeError, match="cdist only supports at least 2D tensors, X2 got: 1D"):
        jitgrad.cdist(jitgrad.ones(2, 3), jitgrad.ones(3))


def test_cdist_large_inputs_use_the_matmul_form():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((30, 5)), rng.standard_normal((40, 5))
    expected = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    got = jitgrad.cdist(jitgrad.tensor(a), jitgrad.tensor(b))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)
    if torch is not None:
        _same(got, torch.cdist(torch.tensor(a), torch.tensor(b)), rtol=1e-9, atol=1e-12)


# ---- warnings --------------------------------------------------------------------------------
def test_scalar_conversion_warns_only_for_float():
    x = jitgrad.ones((), requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        int(x), x.item(), bool(x)
    assert not caught


def test_runtime_switches_and_loss_modules():
    assert jitgrad.get_num_threads() >= 1
    jitgrad.set_num_threads(1)
    assert jitgrad.get_num_threads() == 1
    with pytest.raises(RuntimeError, match="positive integer"):
        jitgrad.set_num_threads(0)
    jitgrad.use_deterministic_algorithms(True)
    assert jitgrad.are_deterministic_algorithms_enabled()
    jitgrad.use_deterministic_algorithms(False)
    jitgrad.set_float32_matmul_precision("high")
    assert jitgrad.get_float32_matmul_precision() == "high"
    jitgrad.set_float32_matmul_precision("highest")
    x = jitgrad.tensor([0.2, 0.7, 0.9])
    t = jitgrad.tensor([0.0, 1.0, 1.0])
    nn = jitgrad.nn
    for mod, fn in ((nn.L1Loss(), lambda: np.abs(x.numpy() - t.numpy()).mean()),
                    (nn.BCELoss(reduction="sum"),
                     lambda: -(t.numpy() * np.log(x.numpy()) + (1 - t.numpy()) * np.log(1 - x.numpy())).sum()),
                    (nn.SmoothL1Loss(beta=0.5), lambda: np.where(np.abs(x.numpy() - t.numpy()) < 0.5,
                                                                0.5 * (x.numpy() - t.numpy()) ** 2 / 0.5,
                                                                np.abs(x.numpy() - t.numpy()) - 0.25).mean()),
                    (nn.HuberLoss(delta=0.5), lambda: np.where(np.abs(x.numpy() - t.numpy()) < 0.5,
                                                             0.5 * (x.numpy() - t.numpy()) ** 2,
                                                             0.5 * (np.abs(x.numpy() - t.numpy()) - 0.25)).mean())):
        np.testing.assert_allclose(mod(x, t).item(), fn(), rtol=1e-6)
    torch = pytest.importorskip("torch")
    for name, kw in (("L1Loss", {}), ("BCELoss", {}), ("SmoothL1Loss", {"beta": 0.5}), ("HuberLoss", {"delta": 0.5})):
        ours = getattr(nn, name)(**kw)(x, t).item()
        theirs = getattr(torch.nn, name)(**kw)(torch.tensor(x.numpy()), torch.tensor(t.numpy())).item()
        assert abs(ours - theirs) < 1e-6
        assert repr(getattr(nn, name)(**kw)) == repr(getattr(torch.nn, name)(**kw))


# ---- what jitgrad lacks stops a script with NotImplementedError naming it ---------------------------
def test_a_missing_torch_name_raises_not_implemented_naming_it():
    from jitgrad import _missing
    name = sorted(_missing.FUNCTIONS)[0]
    with pytest.raises(NotImplementedError, match=rf"jitgrad\.{name} is not implemented in jitgrad yet"):
        getattr(jitgrad, name)
    method = sorted(_missing.METHODS)[0]
    with pytest.raises(NotImplementedError, match=rf"Tensor\.{method} is not implemented"):
        getattr(jitgrad.ones(1), method)
    assert not hasattr(jitgrad, name) and getattr(jitgrad.ones(1), method, None) is None
    with pytest.raises(AttributeError, match="module 'jitgrad' has no attribute 'not_a_torch_name'"):
        jitgrad.not_a_torch_name          # noqa: B018
    for name in _missing.FUNCTIONS:
        assert name not in vars(jitgrad), f"{name} is implemented: regenerate jitgrad/_missing.py"
    for name in _missing.METHODS:
        assert not any(name in vars(c) and not isinstance(vars(c)[name], _missing.Missing)
                       for c in jitgrad.Tensor.__mro__), \
            f"Tensor.{name} is implemented: regenerate jitgrad/_missing.py"


@needs_torch
def test_every_torch_name_is_implemented_or_listed_missing():
    import inspect
    from jitgrad import _missing
    unlisted = [n for n in torch.__all__ if n[:1].islower() and callable(getattr(torch, n, None))
                and not inspect.isclass(getattr(torch, n)) and n not in vars(jitgrad)
                and n not in _missing.FUNCTIONS and n not in ("optim", "data", "utils")]
    assert not unlisted, "regenerate jitgrad/_missing.py (python -m jitgrad._missing)"

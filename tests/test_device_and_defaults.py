"""Issue 13, device slice: jitgrad.device and the default device/dtype, jitgrad.cuda /
accelerator / backends as PyTorch's CPU build answers them, Size as torch.Size, Tensor.to's full
signature and the memory/conversion methods, and the warnings PyTorch gives (float(t) of a tensor
requiring grad, the losses' size_average/reduce).

Most cases are one expression run on jitgrad and, when installed, on torch: both give the same
value (compared by repr, ``torch.`` read as ``jitgrad.``) or raise the same exception type with
jitgrad's message contained in torch's. EXPECTED keeps the main answers checked without torch.
"""
import pickle
import warnings

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as JF

try:
    import torch
    import torch.nn.functional as TF
except ImportError:
    torch = TF = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is the oracle")


@pytest.fixture(autouse=True)
def _restore_defaults():
    yield
    for lib in (jitgrad, torch):
        if lib is not None:
            lib.set_default_dtype(lib.float32)
            lib.set_default_device(None)


def _ns(lib):
    x = lib.ones(2, requires_grad=True)
    return dict(t=lib, x=x, y=lib.arange(12.).reshape(3, 4), np=np, pickle=pickle)


def _run(lib, expr):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return "ok", eval(expr, _ns(lib))
        except Exception as e:            # noqa: BLE001  (the exception is the result)
            return "raise", e


def _norm(v):
    return repr(v).replace("torch.", "jitgrad.").replace("torch::", "jitgrad::")


def _compare(expr):
    jk, jv = _run(jitgrad, expr)
    tk, tv = _run(torch, expr)
    assert jk == tk, (expr, jv, tv)
    if jk == "ok":
        assert _norm(jv) == _norm(tv), expr
    else:
        assert type(jv).__name__ == type(tv).__name__, (expr, jv, tv)
        tmsg = str(tv).replace("torch.", "jitgrad.").strip()
        assert str(jv).strip() in tmsg, (expr, str(jv), tmsg)


DEVICE = [
    "t.device('cpu')", "str(t.device('cpu'))", "t.device('cpu', 0)", "str(t.device('cpu', 0))",
    "t.device('cpu:0')", "t.device('cpu').type", "t.device('cpu').index", "t.device('cpu:3').index",
    "t.device(t.device('cpu:1'))", "t.device(type='cpu', index=2)", "t.device('cuda')",
    "t.device('cuda:1').index", "t.device('mps').type",
    "t.device('cpu') == 'cpu'", "t.device('cpu') == t.device('cpu')",
    "t.device('cpu') == t.device('cpu', 0)", "t.device('cpu:1') == t.device('cpu', 1)",
    "t.device('cpu') != t.device('cpu', 1)",
    "hash(t.device('cpu')) == hash(t.device('cpu'))", "{t.device('cpu:0'): 1}[t.device('cpu', 0)]",
    "pickle.loads(pickle.dumps(t.device('cpu', 1)))",
    "t.device('foo')", "t.device('')", "t.device('cpu:01')", "t.device('cpu:x')",
    "t.device('cpu', -1)", "t.device(0)", "t.device(-1)", "t.device('cpu', 'a')",
    "t.device('cpu', 0.5)", "t.device('cpu:0', 1)",
    # tensors live on the cpu whatever cpu index is named
    "t.zeros(2).device", "t.zeros(2).device.type", "t.zeros(2).device == 'cpu'",
    "t.zeros(2, device=t.device('cpu', 0)).device", "t.zeros(2, device='cpu:1').device",
    "t.zeros(2).to('cpu:3').device", "t.tensor([1.], device=t.device('cpu')).device",
    "t.zeros(1).is_cpu", "t.zeros(1).is_cuda", "t.zeros(1).get_device()",
    "t.get_default_device()",
    # every constructor takes a device
    "t.empty(2, device=t.device('cpu')).device", "t.full((2,), 1., device='cpu').device",
    "t.arange(3, device=t.device('cpu')).device", "t.linspace(0, 1, 3, device='cpu').device",
    "t.eye(2, device='cpu').device", "t.randint(0, 3, (2,), device=t.device('cpu')).device",
    "t.randperm(3, device='cpu').device", "t.rand_like(y, device='cpu').device",
    "t.as_tensor([1.], device='cpu').device", "t.normal(0., 1., (2,), device='cpu').device",
    "t.normal(0., 1., (2,), device='mps')", "t.ones_like(y, device=t.device('cpu', 0)).device",
]
# the CPU build's refusals, per device type, for a creation function, tensor() and .to()
for _kind in ("cuda", "cuda:0", "xpu", "mps", "hip", "xla", "vulkan", "mkldnn", "lazy", "hpu",
              "mtia"):
    DEVICE += [f"t.zeros(2, device='{_kind}')", f"t.tensor([1.], device='{_kind}')",
               f"t.ones(2).to('{_kind}')", f"t.ones(2).to(t.device('{_kind}'))"]
DEVICE += ["t.randn(2, device='mps')", "t.arange(3, device='cuda')", "t.zeros(2, device=1)",
           "t.zeros(2, device=-1)", "t.zeros(2, device='foo')", "t.ones(2).cuda()",
           "t.ones(2).cuda(0)", "t.zeros_like(t.ones(2), device='cuda')"]

TO = [
    "x.to('cpu') is x", "x.to(t.device('cpu')) is x", "x.to(t.float32) is x", "x.to(t.float64)",
    "x.to(t.zeros(1, dtype=t.float64))", "x.to('cpu', t.float64)", "x.to(None) is x",
    "x.to() is x", "x.to(float).dtype", "x.to(int).dtype",
    "x.to(dtype=t.float64, device='cpu', copy=False, non_blocking=True)",
    "x.to(t.float32, copy=True) is x", "x.to(t.float32, copy=True).grad_fn.name()",
    "x.to('cpu', copy=True).grad_fn.name()", "x.to(t.float64, False, True).dtype",
    "x.to(t.device('cpu'), t.float64, False, True).grad_fn.name()",
    "x.to(t.zeros(1, dtype=t.float64), True).dtype",
    "x.to(device='cpu', dtype=t.int64)", "x.to(t.float64, t.float32)", "x.to('cpu', 'cpu')",
    "x.to(t.float64, False, True, True)", "x.to('foo')",
    "x.cpu() is x", "y.t().cpu().stride()",
]

ACCELERATORS = [
    "t.cuda.is_available()", "t.cuda.device_count()", "t.cuda.manual_seed(0)",
    "t.cuda.manual_seed_all(0)", "t.cuda.seed()", "t.cuda.seed_all()", "t.cuda.empty_cache()",
    "t.cuda.is_initialized()", "t.cuda.is_bf16_supported()", "t.cuda.memory_allocated()",
    "t.cuda.current_device()", "t.cuda.synchronize()", "t.cuda.get_device_name()",
    "t.cuda.get_device_name(0)", "t.cuda.get_device_properties(0)", "t.cuda.initial_seed()",
    "t.accelerator.is_available()", "t.accelerator.current_accelerator()",
    "t.accelerator.device_count()", "t.accelerator.current_device_index()",
    "t.accelerator.synchronize()",
    "t.backends.mps.is_available()", "t.backends.mps.is_built()", "t.backends.cudnn.is_available()",
    "t.backends.cuda.is_built()", "t.backends.cudnn.enabled", "t.backends.cudnn.deterministic",
    "t.backends.cudnn.benchmark", "t.backends.cuda.matmul.allow_tf32",
]

SIZE = [
    "t.Size([2, 3])", "t.Size([2, 3]) == (2, 3)", "t.Size([2, 3]) == [2, 3]",
    "t.Size([2, 3]) != (2, 3)", "t.Size([2, 3])[1:]", "t.Size([2, 3])[::-1]", "t.Size([2, 3])[0]",
    "t.Size([2, 3])[-1]", "t.Size([2, 3]) + (4,)", "(4,) + t.Size([2, 3])",
    "t.Size([2, 3]) + t.Size([5])", "t.Size([2, 3]) * 2", "2 * t.Size([2, 3])",
    "t.Size([2, 3]).numel()", "t.Size([]).numel()", "t.Size([])", "t.Size()",
    "t.Size([t.tensor(3)])", "t.Size(np.array([2, 3]))",
    "hash(t.Size([2, 3])) == hash((2, 3))", "t.Size([2, 3]).count(2)", "t.Size([2, 3]).index(3)",
    "pickle.loads(pickle.dumps(t.Size([2, 3])))", "t.zeros(2, 3).shape[1:]",
    "t.zeros(2, 3).size()[:1] + (5,)", "isinstance(t.zeros(2).shape, tuple)", "str(t.Size([1]))",
    "t.Size([2.5])", "t.Size([2, None])", "t.Size(3)", "t.Size([2, 3]) + [4]",
]

METHODS = [
    # new_*: this tensor's dtype unless told, sizes as the creation functions take them
    "y.new_zeros(2, 3)", "y.new_zeros((2, 3), dtype=t.int64)", "y.new_ones([2])",
    "y.double().new_ones(2).dtype", "y.new_full((2,), 3)", "y.new_full((2,), 3, dtype=t.int32)",
    "y.new_full((2,), 3., requires_grad=True)", "y.new_empty(2, 3).shape",
    "y.new_empty((0,)).shape", "y.new_tensor([1, 2])", "t.tensor([1, 2]).new_tensor([1.5])",
    "y.new_tensor([True])", "y.new_tensor([1., 2.], dtype=t.float64, requires_grad=True)",
    "y.new_tensor(x)", "y.new_zeros(2, 3.5)", "y.new_full(2, 3)", "y.new_zeros(2, device='cuda')",
    "y.new_ones(-1)",
    # type, type_as
    "y.type()", "y.long().type()", "y.type(t.float64)", "y.type(t.float32) is y",
    "y.type('torch.DoubleTensor').dtype", "y.type(t.DoubleTensor).dtype",
    "y.type(t.LongTensor).dtype", "y.type('torch.cuda.FloatTensor')", "y.type('foo')",
    "x.type(t.float64).grad_fn.name()", "x.type_as(t.zeros(1, dtype=t.float64)).grad_fn.name()",
    "x.type_as(x) is x", "y.type_as(t.tensor([1]))",
    # memory layout, in elements
    "(x.element_size(), x.nbytes, x.itemsize)",
    "(y.long().element_size(), y.bool().nbytes, y.double().itemsize)",
    "y.stride()", "y.stride(0)", "y.stride(-1)", "y.stride(2)", "y.t().stride()",
    "y[:, 1:3].stride()", "y[:, 1:3].storage_offset()", "y[1].storage_offset()",
    "y[1:, 2:].storage_offset()", "y.storage_offset()", "y[::2].stride()",
    "y.unsqueeze(1).stride()", "t.zeros(2, 1, 3).stride()", "t.zeros(3).expand(2, 3).stride()",
    "t.tensor(1.).stride()", "t.tensor(1.).stride(0)", "t.tensor(1.).stride(-1)",
    "y.is_contiguous()", "y.t().is_contiguous()", "y[:, 1:3].is_contiguous()",
    "y[1:].is_contiguous()", "t.zeros(3).expand(2, 3).is_contiguous()",
    "y.t().contiguous().is_contiguous()", "y.t().contiguous().stride()", "y.t().contiguous()",
    "y.contiguous() is y", "y[:, 1:3].contiguous().storage_offset()",
    "y[1:].data_ptr() - y.data_ptr()", "(lambda d: d[1:].data_ptr() - d.data_ptr())(y.double())",
    "y.data_ptr() == y.view(12).data_ptr()", "y.data_ptr() == y.t().data_ptr()",
    # apply_ / map_: in place, elementwise, not for tensors requiring grad
    "y.clone().apply_(lambda v: v * 2)", "t.arange(3).apply_(lambda v: v * 2.7)",
    "y[:, 1:3].apply_(lambda v: -v) is not None", "y.clone().apply_(lambda v: 'a')",
    "x.apply_(lambda v: v)",
    "y.clone().map_(t.tensor([1., 2., 3., 4.]), lambda a, b: a + b)",
    "y.clone().map_(t.tensor([1, 2, 3, 4]), lambda a, b: a + b)", "x.map_(x, lambda a, b: a)",
]


@needs_torch
@pytest.mark.parametrize("expr", DEVICE + TO + ACCELERATORS + SIZE + METHODS)
def test_same_as_torch(expr):
    _compare(expr)


EXPECTED = [
    ("repr(t.device('cpu'))", "device(type='cpu')"),
    ("repr(t.device('cpu', 0))", "device(type='cpu', index=0)"),
    ("str(t.device('cpu:0'))", "cpu:0"),
    ("t.device('cpu:0').index", 0),
    ("t.zeros(2).device.type", "cpu"),
    ("t.zeros(2).device == t.device('cpu')", True),
    ("t.cuda.is_available()", False),
    ("t.cuda.device_count()", 0),
    ("t.accelerator.current_accelerator()", None),
    ("t.backends.mps.is_available()", False),
    ("t.Size([2, 3]) == (2, 3)", True),
    ("repr(t.Size([2, 3])[1:])", "jitgrad.Size([3])"),
    ("repr((4,) + t.Size([2, 3]))", "jitgrad.Size([4, 2, 3])"),
    ("y.t().stride()", (1, 4)),
    ("y[1:, 2:].storage_offset()", 6),
    ("y.t().is_contiguous()", False),
    ("y.t().contiguous().is_contiguous()", True),
    ("x.to('cpu', t.float64).dtype", jitgrad.float64),
    ("y.new_full((2,), 3).tolist()", [3.0, 3.0]),
    ("y.type('torch.DoubleTensor').dtype", jitgrad.float64),
    ("y.type('jitgrad.LongTensor').dtype", jitgrad.int64),
]


@pytest.mark.parametrize("expr,expected", EXPECTED, ids=[e[0] for e in EXPECTED])
def test_expected_without_torch(expr, expected):
    kind, value = _run(jitgrad, expr)
    assert kind == "ok", value
    assert value == expected


@pytest.mark.parametrize("expr,exc,message", [
    ("t.zeros(2, device='cuda')", AssertionError, "Torch not compiled with CUDA enabled"),
    ("t.ones(2).to('cuda:0')", AssertionError, "Torch not compiled with CUDA enabled"),
    ("x.cuda()", AssertionError, "Torch not compiled with CUDA enabled"),
    ("t.ones(2).to('mps')", RuntimeError, "PyTorch is not linked with support for mps devices"),
    ("t.cuda.current_device()", AssertionError, "Torch not compiled with CUDA enabled"),
    ("t.Size([2.5])", TypeError, "jitgrad.Size() takes an iterable of 'int' (item 0 is 'float')"),
])
def test_errors_without_torch(expr, exc, message):
    kind, e = _run(jitgrad, expr)
    assert kind == "raise" and type(e) is exc and str(e) == message, e


# ---- the "pick a device" preambles of real scripts, verbatim, with the import changed ---------
PREAMBLES = [
    'device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() '
    'else "cpu"',
    'device = torch.accelerator.current_accelerator().type if torch.accelerator.is_available() '
    'else "cpu"',
    'device = torch.device("cuda" if torch.cuda.is_available() else "cpu")',
    'device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")',
    'device = "cuda" if torch.cuda.is_available() else "cpu"\n'
    'torch.manual_seed(0)\ntorch.cuda.manual_seed(0)\ntorch.cuda.manual_seed_all(0)\n'
    'torch.backends.cudnn.deterministic = True\ntorch.backends.cudnn.benchmark = False',
    'import jitgrad.backends.cudnn as cudnn\ncudnn.benchmark = True\n'
    'device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")',
    'use_cuda = torch.cuda.is_available()\nuse_mps = torch.backends.mps.is_available()\n'
    'device = torch.device("cuda" if use_cuda else "mps" if use_mps else "cpu")\n'
    'kwargs = {"num_workers": 1, "pin_memory": True} if use_cuda else {}',
]


@pytest.mark.parametrize("preamble", PREAMBLES)
def test_device_preambles_run_on_the_cpu(preamble):
    flags = (jitgrad.backends.cudnn.deterministic, jitgrad.backends.cudnn.benchmark)
    try:
        ns = {}
        exec("import jitgrad as torch\n" + preamble + "\n"
             "model = torch.nn.Linear(3, 2).to(device)\n"
             "x = torch.randn(4, 3, device=device)\n"
             "out = model(x.to(device))\n"
             "loss = out.sum()\n"
             "loss.backward()\n", ns)
        assert str(ns["device"]) == "cpu"
        assert ns["out"].device.type == "cpu" and ns["x"].device == jitgrad.device("cpu")
        assert ns["model"].weight.grad.shape == (2, 3)
        assert f"Using {ns['device']} device" == "Using cpu device"
    finally:
        jitgrad.backends.cudnn.deterministic, jitgrad.backends.cudnn.benchmark = flags


def test_device_context_manager_and_default_device():
    assert jitgrad.get_default_device() == jitgrad.device("cpu")
    with jitgrad.device("cpu"):
        assert jitgrad.zeros(1).device == jitgrad.device("cpu")
    jitgrad.set_default_device("cpu:0")
    assert jitgrad.zeros(1).device.type == "cpu"
    jitgrad.set_default_device(None)
    assert repr(jitgrad.get_default_device()) == "device(type='cpu')"
    # another device is refused when set (PyTorch fails at the next creation instead)
    for kind, exc in (("cuda", AssertionError), ("mps", RuntimeError)):
        with pytest.raises(exc):
            jitgrad.set_default_device(kind)
    assert jitgrad.get_default_device().type == "cpu"


def test_module_to_takes_devices():
    m = jitgrad.nn.Linear(2, 2)
    assert m.to(jitgrad.device("cpu")) is m and m.to("cpu:0") is m
    assert m.to(jitgrad.device("cpu", 0), jitgrad.float64).weight.dtype is jitgrad.float64
    with pytest.raises(AssertionError, match="Torch not compiled with CUDA enabled"):
        m.to("cuda")


# ---- default dtype --------------------------------------------------------------------------
DEFAULT_DTYPE = [
    "t.tensor([1.5]).dtype", "t.tensor(1.5).dtype", "t.tensor([1]).dtype", "t.tensor([True]).dtype",
    "t.tensor(np.float32(2)).dtype", "t.zeros(2).dtype", "t.ones(2).dtype", "t.empty(2).dtype",
    "t.full((2,), 1.5).dtype", "t.full((2,), 1).dtype", "t.rand(2).dtype", "t.randn(2).dtype",
    "t.arange(0., 3).dtype", "t.arange(3).dtype", "t.linspace(0, 1, 3).dtype", "t.eye(2).dtype",
    "t.zeros_like(t.tensor([1])).dtype", "t.Tensor([1]).dtype", "t.Tensor(2, 3).dtype",
    "t.Tensor().shape", "t.Tensor(t.Size([2, 3])).shape", "t.Tensor((2, 3))",
    "t.FloatTensor([1]).dtype", "t.FloatTensor().shape", "t.FloatTensor(2, 3).dtype",
    "t.DoubleTensor([1]).dtype", "t.LongTensor([1]).dtype", "t.LongTensor(t.Size([2])).shape",
    "(t.tensor([1, 2]) / 2).dtype", "(t.tensor([1, 2]) * 1.5).dtype",
    "t.tensor([1, 2]).sqrt().dtype",
    "(2.0 ** t.tensor([1])).dtype", "t.normal(0., 1., (2,)).dtype",
    "(t.ones(2, dtype=t.float32) * 1.5).dtype", "t.nn.Linear(2, 2).weight.dtype",
    "t.get_default_dtype()",
]


@needs_torch
@pytest.mark.parametrize("default", ["float32", "float64"])
@pytest.mark.parametrize("expr", DEFAULT_DTYPE)
def test_default_dtype_as_torch(expr, default):
    jitgrad.set_default_dtype(getattr(jitgrad, default))
    torch.set_default_dtype(getattr(torch, default))
    _compare(expr)


def test_default_dtype_without_torch():
    jitgrad.set_default_dtype(jitgrad.float64)
    assert jitgrad.get_default_dtype() is jitgrad.float64
    assert jitgrad.tensor([1.5]).dtype is jitgrad.float64
    assert jitgrad.zeros(2).dtype is jitgrad.float64
    assert jitgrad.Tensor([1]).dtype is jitgrad.float64
    assert jitgrad.FloatTensor([1]).dtype is jitgrad.float32
    assert (jitgrad.tensor([1, 2]) / 2).dtype is jitgrad.float64
    jitgrad.set_default_dtype(jitgrad.float32)
    assert jitgrad.tensor([1.5]).dtype is jitgrad.float32


@pytest.mark.parametrize("expr", ["t.set_default_dtype(t.int64)", "t.set_default_dtype('float32')",
                                  "t.set_default_dtype(t.float16)"])
def test_set_default_dtype_checks(expr):
    if torch is not None:
        _compare(expr)
    else:
        _run(jitgrad, expr)


def test_set_default_tensor_type_warns_and_sets_the_dtype():
    with pytest.warns(UserWarning, match=r"set_default_tensor_type\(\) is deprecated"):
        jitgrad.set_default_tensor_type(jitgrad.DoubleTensor)
    assert jitgrad.zeros(1).dtype is jitgrad.float64
    with pytest.warns(UserWarning):
        jitgrad.set_default_tensor_type("torch.FloatTensor")
    assert jitgrad.zeros(1).dtype is jitgrad.float32


# ---- to(): gradients flow through the copies ----------------------------------------------
def test_to_copies_carry_gradients():
    x = jitgrad.tensor([1.0, 2.0], requires_grad=True)
    y = x.to(jitgrad.float32, copy=True)
    assert y is not x and y.grad_fn.name() == "ToCopyBackward0"
    (y * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]
    z = x.to("cpu", jitgrad.float64, non_blocking=True)
    (z ** 2).sum().backward()
    assert z.dtype is jitgrad.float64 and x.grad.tolist() == [5.0, 7.0]


def test_contiguous_copies_and_backpropagates():
    x = jitgrad.arange(6.0).reshape(2, 3).requires_grad_()
    xt = x.t()
    c = xt.contiguous()
    assert c.is_contiguous() and not xt.is_contiguous() and c.data_ptr() != x.data_ptr()
    assert c.grad_fn.name() == "CloneBackward0"
    (c * jitgrad.tensor([[1.0, 2.0]] * 3)).sum().backward()
    assert x.grad.tolist() == [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]


def test_apply_and_map_write_in_place():
    y = jitgrad.arange(6.0).reshape(2, 3)
    v = y[:, 1:]
    assert v.apply_(lambda e: e * 10) is v
    assert y.tolist() == [[0.0, 10.0, 20.0], [3.0, 40.0, 50.0]]
    y.map_(jitgrad.tensor([1.0, 2.0, 3.0]), lambda a, b: a + b)
    assert y.tolist() == [[1.0, 12.0, 23.0], [4.0, 42.0, 53.0]]


def test_new_tensor_warns_for_a_tensor():
    with pytest.warns(UserWarning, match="To copy construct from a tensor"):
        jitgrad.zeros(1).new_tensor(jitgrad.ones(2))


# ---- warnings --------------------------------------------------------------------------------
_SCALAR_WARNING = ("Converting a tensor with requires_grad=True to a scalar may lead to unexpected "
                   "behavior.\nConsider using tensor.detach() first.")


def test_float_of_a_tensor_requiring_grad_warns_once():
    import jitgrad.tensor as jt
    jt._scalar_warned = False
    x = jitgrad.ones(2, requires_grad=True).sum()
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        int(x), x.item(), bool(x), float(x.detach())      # PyTorch: no warning for these
        assert got == []
        assert float(x) == 2.0
        assert [str(w.message) for w in got] == [_SCALAR_WARNING]
        assert got[0].category is UserWarning and got[0].filename == __file__
        float(x), float(jitgrad.ones(1, requires_grad=True))   # once per process, as PyTorch
        assert len(got) == 1


@needs_torch
def test_float_warning_text_is_torchs():
    # torch warns once per process: read its message from a fresh interpreter
    import subprocess
    import sys
    code = ("import warnings, torch\nwarnings.simplefilter('always')\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    float(torch.ones(1, requires_grad=True))\nprint(str(w[0].message))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.startswith(_SCALAR_WARNING)


LEGACY = [(None, False), (False, None), (False, False), (True, False), (True, True), (None, True),
          (False, True)]


def _legacy_calls(lib, F):
    g = np.random.default_rng(0)
    a, b = g.standard_normal((3, 4)), g.standard_normal((3, 4))
    p, tgt = 1 / (1 + np.exp(-a)), (b > 0).astype(np.float64)
    cls = np.array([0, 3, 1])
    T = lib.tensor
    return [
        lambda **kw: F.mse_loss(T(a), T(b), **kw),
        lambda **kw: F.l1_loss(T(a), T(b), **kw),
        lambda **kw: F.smooth_l1_loss(T(a), T(b), **kw),
        lambda **kw: F.binary_cross_entropy(T(p), T(tgt), **kw),
        lambda **kw: F.binary_cross_entropy_with_logits(T(a), T(tgt), **kw),
        lambda **kw: F.nll_loss(F.log_softmax(T(a), 1), T(cls), **kw),
        lambda **kw: F.cross_entropy(T(a), T(cls), **kw),
        lambda **kw: lib.nn.MSELoss(**kw)(T(a), T(b)),
        lambda **kw: lib.nn.BCEWithLogitsLoss(**kw)(T(a), T(tgt)),
        lambda **kw: lib.nn.CrossEntropyLoss(**kw)(T(a), T(cls)),
        lambda **kw: lib.nn.NLLLoss(**kw)(F.log_softmax(T(a), 1), T(cls)),
    ]


def _legacy_reduction(size_average, reduce):
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


@pytest.mark.parametrize("size_average,reduce", LEGACY)
def test_size_average_and_reduce_warn_and_reduce(size_average, reduce):
    kw = {k: v for k, v in (("size_average", size_average), ("reduce", reduce)) if v is not None}
    reduction = _legacy_reduction(size_average, reduce)
    message = (f"size_average and reduce args will be deprecated, please use "
               f"reduction='{reduction}' instead.")
    for i, call in enumerate(_legacy_calls(jitgrad, JF)):
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            out = call(**kw)
        assert [(w.category, str(w.message)) for w in got] == [(UserWarning, message)], i
        expected = _legacy_calls(jitgrad, JF)[i](reduction=reduction)
        np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-12)
        if torch is not None:
            with warnings.catch_warnings(record=True) as tgot:
                warnings.simplefilter("always")
                tout = _legacy_calls(torch, TF)[i](**kw)
            assert [str(w.message) for w in tgot] == [message], i
            np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-10)


def test_loss_module_warns_once_at_construction():
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        loss = jitgrad.nn.MSELoss(reduce=False)
        assert loss.reduction == "none" and len(got) == 1
        loss(jitgrad.zeros(2), jitgrad.ones(2))
        assert len(got) == 1

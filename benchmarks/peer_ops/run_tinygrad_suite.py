"""Run tinygrad's op test suite (test/test_ops.py, or test/backend/test_ops.py in newer trees)
with jitgrad standing in for tinygrad, against PyTorch.

    python -m benchmarks.peer_ops.run_tinygrad_suite PATH/TO/test_ops.py [-k SUBSTRING] [-v]

Each test of that file compares an op written for torch (``torch_fxn``) with the same op written
for tinygrad. Here the tinygrad side is replaced: every test runs twice, first with the real torch
(the reference: each ``helper_test_op`` call records torch's output and input gradients), then
with the module's ``torch`` name bound to jitgrad, so the same ``torch_fxn`` (and the test's body)
runs on jitgrad tensors and is compared call by call, with the test's own tolerances.
``helper_test_exception`` checks that jitgrad raises the exception type torch raises.

Counts: pass; fail (with the reason: missing op, missing keyword, wrong value, wrong gradient,
wrong shape/dtype, error); not applicable (the test exercises tinygrad's own API, no torch
comparison; or it is skipped, or torch itself fails it). tinygrad is not needed: a stub package
answers its imports, and any use of its Tensor outside the never-called tinygrad functions makes
the test not applicable.
"""
import argparse
import collections
import contextlib
import importlib.util
import re
import sys
import time
import traceback
import types
import unittest

import numpy as np
import torch

import jitgrad


class TinygradOnly(Exception):
    """The test used tinygrad's own API outside a helper's tinygrad function."""


class Mismatch(AssertionError):
    def __init__(self, kind, detail):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


# ---- the stub tinygrad package -----------------------------------------------------------------
class _Anything:
    """A tinygrad object the decorators read at import (skipIf(Device.DEFAULT == "AMD"),
    skipUnless(dtypes.half in Device[...].renderer.supported_dtypes())): attributes, items and
    calls give more of itself; comparisons are false, membership true (a CPU supports every
    dtype), so a test runs unless it is specific to another device."""

    def __init__(self, name="tinygrad"):
        self._name = name

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything(f"{self._name}.{name}")

    def __getitem__(self, key):
        return _Anything(f"{self._name}[{key!r}]")

    def __call__(self, *args, **kwargs):
        return _Anything(f"{self._name}()")

    def __contains__(self, item):
        return True

    def __eq__(self, other):
        return False

    def __hash__(self):
        return id(self)

    def __gt__(self, other):
        return False

    __lt__ = __ge__ = __le__ = __gt__

    def __bool__(self):
        return False

    def __int__(self):
        return 0

    def __str__(self):
        return ""

    def __add__(self, other):
        return self

    __radd__ = __add__


class _TensorMeta(type):
    def __getattr__(cls, name):
        def tinygrad_only(*args, **kwargs):
            raise TinygradOnly(f"Tensor.{name}")
        return tinygrad_only


class _Tensor(metaclass=_TensorMeta):
    """tinygrad's Tensor: building one is allowed (tests build inputs for tinygrad functions we
    never call); using one is not."""

    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        raise TinygradOnly(f"Tensor().{name}")

    def _op(self, *args):
        raise TinygradOnly("Tensor operator")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __or__ = __and__ = _op
    __xor__ = __lshift__ = __rshift__ = __invert__ = __neg__ = __getitem__ = __lt__ = __gt__ = _op
    __eq__ = __ne__ = __le__ = __ge__ = __pow__ = __rpow__ = __matmul__ = __mod__ = __floordiv__ = _op
    __rtruediv__ = __rfloordiv__ = __rmod__ = __rmatmul__ = __ror__ = __rand__ = __rxor__ = _op
    __hash__ = object.__hash__


class _Dtypes(_Anything):
    default_float = "float32"
    int = int32 = types.SimpleNamespace(max=2 ** 31 - 1, min=-2 ** 31)     # test values


def _getenv(key, default=0):
    return type(default)(default)


def _install_stub():
    tg = types.ModuleType("tinygrad")
    tg.Tensor = _Tensor
    tg.Device = _Anything("Device")
    tg.Device.DEFAULT = "CPU"
    tg.dtypes = _Dtypes("dtypes")
    helpers = types.ModuleType("tinygrad.helpers")
    helpers.getenv = _getenv
    helpers.DEBUG = helpers.IMAGE = 0
    helpers.DEV = _Anything("DEV")
    helpers.Context = lambda **options: contextlib.nullcontext()
    tensor = types.ModuleType("tinygrad.tensor")
    tensor.Tensor = _Tensor
    tensor._to_np_dtype = lambda d: np.float32
    renderer = types.ModuleType("tinygrad.renderer")
    nir = types.ModuleType("tinygrad.renderer.nir")
    nir.NIRRenderer = type("NIRRenderer", (), {})
    torch_backend = types.ModuleType("tinygrad.nn.torch")
    for name, mod in (("tinygrad", tg), ("tinygrad.helpers", helpers), ("tinygrad.tensor", tensor),
                      ("tinygrad.renderer", renderer), ("tinygrad.renderer.nir", nir),
                      ("tinygrad.nn", types.ModuleType("tinygrad.nn")), ("tinygrad.nn.torch", torch_backend)):
        sys.modules[name] = mod


# ---- jitgrad as the test module's ``torch`` ---------------------------------------------------
_RANDOM = ("rand", "randn", "randint", "rand_like", "randn_like", "randint_like", "randperm",
           "normal", "bernoulli", "multinomial")


class _JitgradAsTorch(types.ModuleType):
    """jitgrad under torch's name. Random tensors a test body draws come from torch's generator
    (seeded alike in both runs), converted, so both runs see the same data."""

    def __init__(self):
        super().__init__("torch")

    def __getattr__(self, name):
        if name in _RANDOM:
            real = getattr(torch, name)

            def drawn_by_torch(*args, **kwargs):
                args = [_to_torch(a) for a in args]
                kwargs = {k: _to_torch(v) for k, v in kwargs.items()}
                return _to_jitgrad(real(*args, **kwargs))
            return drawn_by_torch
        return getattr(jitgrad, name)


def _to_torch(v):
    if isinstance(v, jitgrad.Tensor):
        return torch.from_numpy(np.array(v.detach().numpy()))
    if isinstance(v, jitgrad.dtype):
        return getattr(torch, str(v).split(".")[-1])
    return v


def _to_jitgrad(t):
    if isinstance(t, torch.Tensor):
        return jitgrad.tensor(t.detach().numpy(), requires_grad=t.requires_grad)
    return t


# ---- the helpers, replaced ---------------------------------------------------------------------
class _Recorder:
    """Run 1 (torch) records each helper call's results; run 2 (jitgrad) compares against them."""

    def __init__(self):
        self.mode = "torch"
        self.records = []
        self.at = 0
        self.calls = 0

    def start(self, mode):
        self.mode, self.at, self.calls = mode, 0, 0
        if mode == "torch":
            self.records = []

    def take(self):
        if self.at >= len(self.records):
            raise Mismatch("error", "the jitgrad run made more helper calls than the torch run")
        r = self.records[self.at]
        self.at += 1
        return r


REC = _Recorder()


def _prepare(low, high, shps, vals, forward_only, lib):
    if shps is None:
        ts = [torch.tensor(x, requires_grad=not forward_only) for x in vals]
    else:
        np.random.seed(0)
        data = [np.random.uniform(low=low, high=high, size=size).astype(np.float32) for size in shps]
        ts = [torch.tensor(d, requires_grad=not forward_only) for d in data]
    ts = [t.type(torch.int32) if t.dtype == torch.int64 else t for t in ts]
    if lib is torch:
        return ts
    return [jitgrad.tensor(t.detach().numpy(), requires_grad=t.requires_grad) for t in ts]


def _numpy(t):
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    return np.asarray(t.detach().numpy())


def _compare(kind, got, want, atol, rtol):
    if got.shape != want.shape:
        raise Mismatch("wrong shape", f"{kind}: jitgrad {got.shape}, torch {want.shape}")
    if got.dtype != want.dtype:
        raise Mismatch("wrong dtype", f"{kind}: jitgrad {got.dtype}, torch {want.dtype}")
    try:
        if np.issubdtype(got.dtype, np.floating):
            np.testing.assert_allclose(got, want, atol=atol, rtol=rtol)
        else:
            np.testing.assert_equal(got, want)
    except AssertionError as e:
        raise Mismatch("wrong value" if kind == "forward" else "wrong gradient",
                       f"{kind}: {str(e).strip().splitlines()[-1] if str(e).strip() else e}") from None


def helper_test_op(shps, torch_fxn, tinygrad_fxn=None, atol=1e-6, rtol=1e-3, grad_atol=1e-4, grad_rtol=1e-3,
                   forward_only=False, vals=None, low=-2, high=2):
    REC.calls += 1
    backward = not forward_only
    if REC.mode == "torch":
        ts = _prepare(low, high, shps, vals, forward_only, torch)
        out = _numpy(torch_fxn(*ts))
        grads = None
        if backward and ts:
            grads = [_numpy(g) for g in torch.autograd.grad(torch_fxn(*ts).sum(), ts)]
        REC.records.append((out, grads))
        return
    want_out, want_grads = REC.take()
    js = _prepare(low, high, shps, vals, forward_only, jitgrad)
    _compare("forward", _numpy(torch_fxn(*js)), want_out, atol, rtol)
    if want_grads is not None:
        grads = jitgrad.autograd.grad(torch_fxn(*js).sum(), js, allow_unused=True)
        for i, (g, w) in enumerate(zip(grads, want_grads)):
            g = np.zeros_like(w) if g is None else _numpy(g)
            _compare(f"gradient of input {i}", g, w, grad_atol, grad_rtol)


def helper_test_exception(self, shps, torch_fxn, tinygrad_fxn=None, expected=None, forward_only=False,
                          exact=False, vals=None, low=-1.5, high=1.5):
    REC.calls += 1
    lib = torch if REC.mode == "torch" else jitgrad
    ts = _prepare(low, high, shps, vals, forward_only, lib)
    try:
        torch_fxn(*ts)
    except expected as e:
        if REC.mode == "torch":
            REC.records.append((str(e), None))
        elif exact and str(e) != REC.take()[0]:
            raise Mismatch("wrong error", f"message {str(e)!r}, torch {REC.records[REC.at - 1][0]!r}")
        else:
            REC.take()
        return
    except Exception as e:
        if REC.mode == "torch":
            raise
        raise Mismatch("wrong error", f"{type(e).__name__}({e}) where torch raises {expected}") from None
    if REC.mode == "torch":
        raise AssertionError(f"torch did not raise {expected}")
    raise Mismatch("wrong error", f"no error where torch raises {expected}")


# ---- running -------------------------------------------------------------------------------------
def load(path):
    _install_stub()
    spec = importlib.util.spec_from_file_location("tinygrad_test_ops", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.helper_test_op = helper_test_op
    for cls in vars(mod).values():
        if isinstance(cls, type) and issubclass(cls, unittest.TestCase):
            cls.helper_test_exception = helper_test_exception
    return mod


def tests_of(mod):
    for cls in list(vars(mod).values()):
        if isinstance(cls, type) and issubclass(cls, unittest.TestCase) and cls.__module__ == mod.__name__:
            for name in sorted(n for n in dir(cls) if n.startswith("test")):
                yield cls, name


def _call(cls, name):
    """Run one test method; returns None or the exception it raised (skips included)."""
    case = cls(name)
    method = getattr(case, name)
    if getattr(method, "__unittest_skip__", False) or getattr(cls, "__unittest_skip__", False):
        return unittest.SkipTest(getattr(method, "__unittest_skip_why__", "skipped"))
    try:
        case.setUp()
        try:
            method()
        finally:
            case.tearDown()
    except Exception as e:
        return e
    return None


_MISSING_ATTR = re.compile(r"(?:module '[\w.]+'|'?\w+'? object|type object '\w+') has no attribute '(\w+)'")
_MISSING_OPERATOR = re.compile(r"unsupported operand type\(s\) for ([^:]+):")
_MISSING_KW = re.compile(r"unexpected keyword argument '(\w+)'")


def classify(e):
    """The reason of a jitgrad-run failure, as (kind, detail)."""
    if isinstance(e, Mismatch):
        return e.kind, str(e)
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, AttributeError) and (m := _MISSING_ATTR.search(msg)):
        return "missing op", m.group(1)
    if isinstance(e, TypeError) and (m := _MISSING_OPERATOR.search(msg)):
        return "missing op", f"operator {m.group(1)}"
    if isinstance(e, TypeError) and (m := _MISSING_KW.search(msg)):
        return "missing keyword", m.group(1)
    if isinstance(e, NotImplementedError):
        return "not implemented", msg[:160]
    return "error", f"{type(e).__name__}: {msg[:160]}"


def _where(e):
    """The innermost frame of the test file a failure passed through (for -v)."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "test_ops" in f.filename]
    return f"line {frames[-1].lineno}" if frames else ""


def _run_one(mod, real_torch, jt, cls, name, verbose):
    """(status, reason, detail) of one test: its torch run, then its jitgrad run."""
    mod.torch = real_torch
    REC.start("torch")
    torch.manual_seed(0)
    np.random.seed(1337)
    e = _call(cls, name)
    if isinstance(e, unittest.SkipTest):
        return "n/a", "skipped", str(e)
    if (isinstance(e, TinygradOnly) and REC.calls == 0) or (e is None and REC.calls == 0):
        return "n/a", "tinygrad's own API", str(e or "no torch comparison")
    # a test that compares with torch and then goes on with tinygrad's own API: its torch
    # comparisons count, and the jitgrad run must reach the same point
    partial = isinstance(e, TinygradOnly)
    if partial:
        e = None
    if e is not None:
        return "n/a", "torch fails it", f"{type(e).__name__}: {str(e)[:120]}"
    mod.torch = jt
    REC.start("jitgrad")
    torch.manual_seed(0)
    np.random.seed(1337)
    try:
        e = _call(cls, name)
    finally:
        mod.torch = real_torch
    if partial and isinstance(e, TinygradOnly):
        e = None
    if e is None and REC.at != len(REC.records):
        e = Mismatch("error", "the jitgrad run stopped before the torch run's helper calls")
    if e is None:
        return "pass", "torch parts" if partial else "", ""
    if isinstance(e, TinygradOnly):
        e = Mismatch("error", f"reached tinygrad's own API ({e}) where the torch run did not")
    kind, detail = classify(e)
    return "fail", kind, f"{detail}  [{_where(e)}]" if verbose else detail


def run(path, select=None, verbose=False):
    mod = load(path)
    real_torch = mod.torch
    jt = _JitgradAsTorch()
    results = collections.OrderedDict()
    for cls, name in tests_of(mod):
        test = f"{cls.__name__}.{name}"
        if select and not any(s in test for s in select):
            continue
        t0 = time.monotonic()
        results[test] = _run_one(mod, real_torch, jt, cls, name, verbose)
        if verbose:
            print(f"{test}: {' '.join(results[test])} ({time.monotonic() - t0:.1f}s)", flush=True)
    return results


def report(results):
    counts = collections.Counter(r[0] for r in results.values())
    applicable = counts["pass"] + counts["fail"]
    print(f"pass {counts['pass']}, fail {counts['fail']}, not applicable {counts['n/a']}; "
          f"{counts['pass']} of {applicable} applicable tests "
          f"({100 * counts['pass'] / max(applicable, 1):.1f}%)")
    kinds = collections.Counter(r[1] for r in results.values() if r[0] == "fail")
    if kinds:
        print("failures by reason: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    for test, (status, kind, detail) in results.items():
        if status == "fail":
            print(f"  FAIL {test}: {kind}: {detail}")
    na = collections.Counter(r[1] for r in results.values() if r[0] == "n/a")
    print("not applicable: " + ", ".join(f"{k} {n}" for k, n in na.most_common()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", help="tinygrad's test_ops.py")
    p.add_argument("-k", action="append", help="run only the tests whose name contains this")
    p.add_argument("-v", action="store_true", help="print each test as it runs")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    report(run(args.path, args.k, args.v))


if __name__ == "__main__":
    main()

"""jitgrad.autograd.functional and jitgrad.func against torch (values, structure, dtypes,
requires_grad, errors), and against closed forms and finite differences without it."""
import numpy as np
import pytest

import jitgrad as jg
from jitgrad.autograd import functional as F
import jitgrad.func as jf


def _torch():
    return pytest.importorskip("torch")


def _rng(seed=0):
    return np.random.default_rng(seed)


def _pair(a, requires_grad=False):
    """The same float64 array as a jitgrad tensor and (if torch is there) a torch tensor."""
    t = jg.tensor(a, dtype=jg.float64, requires_grad=requires_grad)
    torch = _torch()
    return t, torch.tensor(a, dtype=torch.float64, requires_grad=requires_grad)


def _same(got, want, atol=1e-10, requires_grad=True):
    """got (jitgrad) has want's (torch) nesting, container types, values, dtypes and (unless told
    not to) requires_grad."""
    if isinstance(want, (tuple, list)):
        assert type(got) is type(want), (type(got), type(want))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _same(g, w, atol, requires_grad)
    elif isinstance(want, dict):
        assert type(got) is dict and list(got) == list(want)
        for k in want:
            _same(got[k], want[k], atol, requires_grad)
    else:
        assert isinstance(got, jg.Tensor), type(got)
        assert tuple(got.shape) == tuple(want.shape)
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
        if requires_grad:
            assert got.requires_grad == want.requires_grad
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), atol=atol, rtol=1e-9)


# functions written once for both libraries: methods and operators they share
def f_sin_mul(x):
    return x.sin() * x


def f_scalar(x):
    return (x.sin() * x.exp()).sum()


def f_two_in(x, y):
    return (x * y).tanh()


def f_two_in_scalar(x, y):
    return (x * x * y).sum() + (x * y).sin().sum()


def f_two_out(x, y):
    return x * y, (x * x).sum()


def f_matmul(x, w):
    return (x @ w).tanh().sum()


def _fd_hessian(f, x, eps=1e-5):
    """Central differences of central differences, float64."""
    x = np.asarray(x, np.float64)
    n = x.size
    h = np.zeros((n, n))

    def val(z):
        return f(jg.tensor(z.reshape(x.shape), dtype=jg.float64)).item()

    for i in range(n):
        for j in range(n):
            e_i = np.zeros(n)
            e_j = np.zeros(n)
            e_i[i] = eps
            e_j[j] = eps
            z = x.reshape(-1)
            h[i, j] = (val(z + e_i + e_j) - val(z + e_i - e_j) - val(z - e_i + e_j)
                       + val(z - e_i - e_j)) / (4 * eps * eps)
    return h.reshape(x.shape + x.shape)


# ---- autograd.functional: values and structure against torch ------------------------------
SHAPES = [(), (3,), (2, 3)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("create_graph", [False, True])
def test_vjp_single(shape, create_graph):
    torch = _torch()
    a = _rng().standard_normal(shape)
    v = _rng(1).standard_normal(shape)
    (x, tx), (jv, tv) = _pair(a), _pair(v)
    got = F.vjp(f_sin_mul, x, jv, create_graph=create_graph)
    want = torch.autograd.functional.vjp(f_sin_mul, tx, tv, create_graph=create_graph)
    _same(got, want)


@pytest.mark.parametrize("create_graph", [False, True])
def test_vjp_tuples_and_scalar_default_v(create_graph):
    torch = _torch()
    a, b = _rng().standard_normal((2, 3)), _rng(2).standard_normal((2, 3))
    (x, tx), (y, ty) = _pair(a), _pair(b)
    v = (_pair(np.ones((2, 3))), _pair(np.array(2.0)))
    got = F.vjp(f_two_out, (x, y), (v[0][0], v[1][0]), create_graph=create_graph)
    want = torch.autograd.functional.vjp(f_two_out, (tx, ty), (v[0][1], v[1][1]),
                                         create_graph=create_graph)
    _same(got, want)
    got = F.vjp(f_two_in_scalar, (x, y), create_graph=create_graph)
    want = torch.autograd.functional.vjp(f_two_in_scalar, (tx, ty), create_graph=create_graph)
    _same(got, want)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("create_graph", [False, True])
def test_jvp(shape, create_graph):
    torch = _torch()
    a, v = _rng().standard_normal(shape), _rng(1).standard_normal(shape)
    (x, tx), (jv, tv) = _pair(a), _pair(v)
    got = F.jvp(f_sin_mul, x, jv, create_graph=create_graph)
    want = torch.autograd.functional.jvp(f_sin_mul, tx, tv, create_graph=create_graph)
    _same(got, want)
    b = _rng(3).standard_normal(shape)
    y, ty = _pair(b)
    got = F.jvp(f_two_out, (x, y), (jv, jv), create_graph=create_graph)
    want = torch.autograd.functional.jvp(f_two_out, (tx, ty), (tv, tv), create_graph=create_graph)
    _same(got, want)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("vectorize", [False, True])
def test_jacobian_nesting(shape, vectorize):
    torch = _torch()
    a, b = _rng().standard_normal(shape), _rng(1).standard_normal(shape)
    (x, tx), (y, ty) = _pair(a), _pair(b)
    jac = torch.autograd.functional.jacobian
    _same(F.jacobian(f_sin_mul, x, vectorize=vectorize), jac(f_sin_mul, tx, vectorize=vectorize))
    _same(F.jacobian(f_two_in, (x, y), vectorize=vectorize),
          jac(f_two_in, (tx, ty), vectorize=vectorize))
    _same(F.jacobian(f_two_out, (x, y), vectorize=vectorize),
          jac(f_two_out, (tx, ty), vectorize=vectorize))
    _same(F.jacobian(lambda x: (x.exp(), x.sum()), x, vectorize=vectorize),
          jac(lambda x: (x.exp(), x.sum()), tx, vectorize=vectorize))
    # forward-mode (torch: only vectorized) gives the same blocks
    _same(F.jacobian(f_two_out, (x, y), vectorize=True, strategy="forward-mode"),
          jac(f_two_out, (tx, ty), vectorize=True, strategy="forward-mode"))


def test_jacobian_create_graph_is_differentiable():
    torch = _torch()
    a = _rng().standard_normal(3)
    x, tx = _pair(a, requires_grad=True)
    got = F.jacobian(f_sin_mul, x, create_graph=True)
    want = torch.autograd.functional.jacobian(f_sin_mul, tx, create_graph=True)
    _same(got, want)
    got.sum().backward()
    want.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=1e-10)


def test_jacobian_mixed_dtypes():
    torch = _torch()
    a = _rng().standard_normal(3)
    x32, x64 = jg.tensor(a, dtype=jg.float32), jg.tensor(a, dtype=jg.float64)
    t32, t64 = torch.tensor(a, dtype=torch.float32), torch.tensor(a, dtype=torch.float64)

    def f(x, y):
        return x * y.to(x.dtype)

    _same(F.jacobian(f, (x32, x64)), torch.autograd.functional.jacobian(f, (t32, t64)), atol=1e-6)


@pytest.mark.parametrize("shape", [(), (3,), (2, 2)])
@pytest.mark.parametrize("create_graph", [False, True])
def test_hessian_single_and_tuple(shape, create_graph):
    torch = _torch()
    a, b = _rng().standard_normal(shape), _rng(1).standard_normal(shape)
    (x, tx), (y, ty) = _pair(a), _pair(b)
    hess = torch.autograd.functional.hessian
    _same(F.hessian(f_scalar, x, create_graph=create_graph),
          hess(f_scalar, tx, create_graph=create_graph))
    _same(F.hessian(f_two_in_scalar, (x, y), create_graph=create_graph),
          hess(f_two_in_scalar, (tx, ty), create_graph=create_graph))


def test_hessian_vectorize_and_forward_outer():
    torch = _torch()
    a = _rng().standard_normal((2, 3))
    w = _rng(1).standard_normal((3, 2))
    (x, tx), (jw, tw) = _pair(a), _pair(w)
    want = torch.autograd.functional.hessian(f_matmul, (tx, tw))
    _same(F.hessian(f_matmul, (x, jw)), want)
    _same(F.hessian(f_matmul, (x, jw), vectorize=True), want)
    # (torch's forward-over-reverse result requires grad, an artifact of its dual tensors)
    _same(F.hessian(f_matmul, (x, jw), vectorize=True, outer_jacobian_strategy="forward-mode"),
          torch.autograd.functional.hessian(f_matmul, (tx, tw), vectorize=True,
                                            outer_jacobian_strategy="forward-mode"),
          requires_grad=False)


@pytest.mark.parametrize("which", ["vhp", "hvp"])
@pytest.mark.parametrize("create_graph", [False, True])
def test_vhp_hvp(which, create_graph):
    torch = _torch()
    a, b = _rng().standard_normal((2, 3)), _rng(1).standard_normal((2, 3))
    v1, v2 = _rng(2).standard_normal((2, 3)), _rng(3).standard_normal((2, 3))
    (x, tx), (y, ty) = _pair(a), _pair(b)
    (jv1, tv1), (jv2, tv2) = _pair(v1), _pair(v2)
    mine, theirs = getattr(F, which), getattr(torch.autograd.functional, which)
    _same(mine(f_scalar, x, jv1, create_graph=create_graph),
          theirs(f_scalar, tx, tv1, create_graph=create_graph))
    _same(mine(f_two_in_scalar, (x, y), (jv1, jv2), create_graph=create_graph),
          theirs(f_two_in_scalar, (tx, ty), (tv1, tv2), create_graph=create_graph))
    s, ts = _pair(np.array(0.3))
    _same(mine(lambda z: (z * z * z).sin(), s), theirs(lambda z: (z * z * z).sin(), ts))


def test_create_graph_results_differentiate_again():
    torch = _torch()
    a, v = _rng().standard_normal(3), _rng(1).standard_normal(3)
    x, tx = _pair(a, requires_grad=True)
    jv, tv = _pair(v)
    for mine, theirs in ((F.vjp, torch.autograd.functional.vjp),
                         (F.vhp, torch.autograd.functional.vhp),
                         (F.jvp, torch.autograd.functional.jvp)):
        x.grad = None
        tx.grad = None
        fn = f_scalar if mine is F.vhp else f_sin_mul
        out, res = mine(fn, x, jv, create_graph=True)
        tout, tres = theirs(fn, tx, tv, create_graph=True)
        (res * res).sum().backward()
        (tres * tres).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=1e-10)


# ---- autograd.functional without torch: closed forms, finite differences, errors ------------
def test_hessian_matches_finite_differences():
    a = _rng().standard_normal((2, 2))
    x = jg.tensor(a, dtype=jg.float64)
    h = F.hessian(f_scalar, x)
    np.testing.assert_allclose(h.numpy(), _fd_hessian(f_scalar, a), atol=1e-5)
    assert h.dtype == jg.float64 and not h.requires_grad


def test_closed_forms_without_torch():
    a = np.array([0.3, -1.2, 0.7])
    x = jg.tensor(a, dtype=jg.float64)
    v = jg.tensor([1.0, 2.0, -1.0], dtype=jg.float64)
    d = np.cos(a) * a + np.sin(a)                          # d/dx x sin x
    out, g = F.vjp(f_sin_mul, x, v)
    np.testing.assert_allclose(out.numpy(), np.sin(a) * a)
    np.testing.assert_allclose(g.numpy(), d * v.numpy())
    np.testing.assert_allclose(F.jvp(f_sin_mul, x, v)[1].numpy(), d * v.numpy())
    np.testing.assert_allclose(F.jacobian(f_sin_mul, x).numpy(), np.diag(d))
    d2 = 2 * np.cos(a) - a * np.sin(a)
    np.testing.assert_allclose(F.hessian(lambda x: f_sin_mul(x).sum(), x).numpy(), np.diag(d2))
    np.testing.assert_allclose(F.hvp(lambda x: f_sin_mul(x).sum(), x, v)[1].numpy(),
                               d2 * v.numpy())
    np.testing.assert_allclose(F.vhp(lambda x: f_sin_mul(x).sum(), x, v)[1].numpy(),
                               d2 * v.numpy())


def test_inputs_untouched_and_results_detached():
    x = jg.tensor([0.5, 1.5], dtype=jg.float64)
    w = jg.tensor([2.0, 3.0], dtype=jg.float64, requires_grad=True)
    out, g = F.vjp(lambda x, w: (x * w).sum(), (x, w))
    assert not x.requires_grad and x.grad is None and w.grad is None
    assert not out.requires_grad and not any(t.requires_grad for t in g)
    np.testing.assert_allclose(g[0].numpy(), [2.0, 3.0])


def test_independent_inputs_give_zeros_or_strict_errors():
    x = jg.tensor([1.0, 2.0], dtype=jg.float64)
    y = jg.tensor([3.0], dtype=jg.float64)
    out, (gx, gy) = F.vjp(lambda x, y: x * 2, (x, y), jg.ones(2, dtype=jg.float64))
    np.testing.assert_allclose(gy.numpy(), [0.0])
    with pytest.raises(RuntimeError, match="^The output of the user-provided function is "
                       "independent of input 1. This is not allowed in strict mode.$"):
        F.vjp(lambda x, y: x * 2, (x, y), jg.ones(2, dtype=jg.float64), strict=True)
    with pytest.raises(RuntimeError, match=r"^Output 0 of the user-provided function does not "
                       "require gradients. The outputs must be computed in a differentiable "
                       "manner from the input when running in strict mode.$"):
        F.vjp(lambda x: jg.ones(2), x, jg.ones(2), strict=True)
    jac = F.jacobian(lambda x, y: x * 2, (x, y))
    np.testing.assert_allclose(jac[1].numpy(), np.zeros((2, 1)))
    with pytest.raises(RuntimeError, match="^Output 0 of the user-provided function is "
                       "independent of input 1. This is not allowed in strict mode.$"):
        F.jacobian(lambda x, y: x * 2, (x, y), strict=True)
    # a linear function: its jacobian does not depend on the input
    h = F.hessian(lambda x: (x * 2).sum(), x)
    np.testing.assert_allclose(h.numpy(), np.zeros((2, 2)))
    with pytest.raises(RuntimeError, match="^While computing the hessian, found that the jacobian "
                       "of the user-provided function with respect to input 0 is independent"):
        F.hessian(lambda x: (x * 2).sum(), x, strict=True)
    np.testing.assert_allclose(F.vhp(lambda x: (x * 2).sum(), x, x)[1].numpy(), [0.0, 0.0])
    with pytest.raises(RuntimeError, match="^While computing the hessian, found that the jacobian"):
        F.vhp(lambda x: (x * 2).sum(), x, x, strict=True)


def test_functional_type_and_shape_errors():
    x = jg.tensor([1.0, 2.0], dtype=jg.float64)
    with pytest.raises(TypeError, match=r"^The inputs given to vjp must be either a Tensor or a "
                       r"tuple of Tensors but the value at index 1 has type <class 'float'>\.$"):
        F.vjp(f_sin_mul, (x, 1.0), x)
    with pytest.raises(TypeError, match=r"^The inputs given to jacobian must be either a Tensor "
                       r"or a tuple of Tensors but the given inputs has type <class 'list'>\.$"):
        F.jacobian(f_sin_mul, [x])
    with pytest.raises(TypeError, match=r"^The outputs of the user-provided function given to "
                       r"jvp must be either a Tensor or a tuple of Tensors but the given outputs of "
                       r"the user-provided function has type <class 'float'>\.$"):
        F.jvp(lambda x: 1.0, x, x)
    with pytest.raises(RuntimeError, match=r"^v has invalid size: should be torch.Size\(\[2\]\) "
                       r"but got torch.Size\(\[3\]\)\.$|^v has invalid size: should be "
                       r"jitgrad.Size\(\[2\]\) but got jitgrad.Size\(\[3\]\)\.$"):
        F.vjp(f_sin_mul, x, jg.ones(3, dtype=jg.float64))
    with pytest.raises(RuntimeError, match=r"^v is a tuple of invalid length: should be 2 but got "
                       r"1\.$"):
        F.jvp(f_two_in, (x, x), (x,))
    with pytest.raises(RuntimeError, match="^The given v should contain a single Tensor.$"):
        F.vjp(f_sin_mul, x, (x, x))
    with pytest.raises(RuntimeError, match="^The vector v can only be None if the user-provided "
                       "function returns a single Tensor with a single element.$"):
        F.vjp(f_sin_mul, x)
    with pytest.raises(RuntimeError, match="^The vector v can only be None if the input to the "
                       "user-provided function is a single Tensor with a single element.$"):
        F.hvp(f_scalar, x)
    with pytest.raises(RuntimeError, match="^The function given to hessian should return a single "
                       "Tensor$"):
        F.hessian(lambda x: (x.sum(), x.sum()), x)
    with pytest.raises(RuntimeError, match="^The Tensor returned by the function given to hessian "
                       "should contain a single element$"):
        F.hessian(f_sin_mul, x)
    with pytest.raises(RuntimeError, match="^The Tensor returned by the function given to vhp "
                       "should contain a single element$"):
        F.vhp(f_sin_mul, x, x)


def test_jacobian_strategy_errors():
    x = jg.tensor([1.0, 2.0], dtype=jg.float64)
    with pytest.raises(NotImplementedError, match="isonly implemented for `vectorize=True`"):
        F.jacobian(f_sin_mul, x, strategy="forward-mode")
    with pytest.raises(NotImplementedError, match="`create_graph=True` and "
                       '`strategy="forward-mode"` are not supported together'):
        F.jacobian(f_sin_mul, x, create_graph=True, strategy="forward-mode", vectorize=True)
    with pytest.raises(RuntimeError, match='`strict=True` and `strategy="forward-mode"` are not '
                       "supported together"):
        F.jacobian(f_sin_mul, x, strict=True, strategy="forward-mode", vectorize=True)
    with pytest.raises(RuntimeError, match="`strict=True` and `vectorized=True` are not supported "
                       "together"):
        F.jacobian(f_sin_mul, x, strict=True, vectorize=True)
    with pytest.raises(AssertionError, match='^Expected strategy to be either "forward-mode" or '
                       '"reverse-mode". Hint'):
        F.jacobian(f_sin_mul, x, strategy="sideways")
    with pytest.raises(AssertionError, match='^Expected strategy to be either "forward-mode" or '
                       '"reverse-mode".$'):
        F.hessian(f_scalar, x, outer_jacobian_strategy="sideways")
    with pytest.raises(NotImplementedError, match="isonly implemented for `vectorize=True`"):
        F.hessian(f_scalar, x, outer_jacobian_strategy="forward-mode")


def test_functional_errors_match_torch():
    torch = _torch()
    a = np.array([1.0, 2.0])
    x, tx = _pair(a)
    cases = [
        lambda F, x: F.vjp(lambda x: x * 2, (x, x), x * 0 + 1, strict=True),
        lambda F, x: F.jvp(lambda x: x.detach() * 2, x, x, strict=True),
        lambda F, x: F.jvp(lambda x, y: x * 2, (x, x), (x, x), strict=True),
        lambda F, x: F.hvp(lambda x: (x * 2).sum(), x, x, strict=True),
        lambda F, x: F.vjp(lambda x: x.sin(), x, (x, x)),
        lambda F, x: F.jacobian(lambda x: x, x, strategy="forward-mode"),
        lambda F, x: F.hessian(lambda x: x, x),
    ]
    for case in cases:
        with pytest.raises(Exception) as want:
            case(torch.autograd.functional, tx)
        with pytest.raises(type(want.value)) as got:
            case(F, x)
        assert str(got.value) == str(want.value)


# ---- jitgrad.func --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
def test_func_grad_and_value(shape):
    torch = _torch()
    a, b = _rng().standard_normal(shape), _rng(1).standard_normal(shape)
    (x, tx), (y, ty) = _pair(a), _pair(b)
    _same(jf.grad(f_scalar)(x), torch.func.grad(f_scalar)(tx))
    for argnums in (0, 1, -1, (0, 1), (1,)):
        _same(jf.grad(f_two_in_scalar, argnums)(x, y),
              torch.func.grad(f_two_in_scalar, argnums)(tx, ty))
        _same(jf.grad_and_value(f_two_in_scalar, argnums)(x, y),
              torch.func.grad_and_value(f_two_in_scalar, argnums)(tx, ty))


def test_func_grad_pytrees_aux_and_kwargs():
    torch = _torch()
    a, b = _rng().standard_normal(3), _rng(1).standard_normal(3)
    (x, tx), (y, ty) = _pair(a), _pair(b)

    def f(p, scale=1.0):
        s = (p["w"] * p["b"][0]).sin().sum() * scale + (p["b"][1] * p["b"][1]).sum()
        return s, {"out": s, "w": p["w"]}

    got = jf.grad(f, has_aux=True)({"w": x, "b": [y, x]}, scale=2.0)
    want = torch.func.grad(f, has_aux=True)({"w": tx, "b": [ty, tx]}, scale=2.0)
    _same(got, want)
    got = jf.grad_and_value(f, has_aux=True)({"w": x, "b": (y, x)})
    want = torch.func.grad_and_value(f, has_aux=True)({"w": tx, "b": (ty, tx)})
    _same(got, want)


def test_func_grad_of_grad():
    f = f_scalar
    x0 = 0.7
    x = jg.tensor(x0, dtype=jg.float64)
    # f = sin(x) e^x: f' = e^x (sin + cos), f'' = 2 e^x cos
    g1 = jf.grad(f)(x)
    g2 = jf.grad(jf.grad(f))(x)
    np.testing.assert_allclose(g1.item(), np.exp(x0) * (np.sin(x0) + np.cos(x0)))
    np.testing.assert_allclose(g2.item(), 2 * np.exp(x0) * np.cos(x0))
    assert not g2.requires_grad and not x.requires_grad and x.grad is None
    g3 = jf.grad(jf.grad(jf.grad(f)))(x)          # f''' = 2 e^x (cos - sin)
    np.testing.assert_allclose(g3.item(), 2 * np.exp(x0) * (np.cos(x0) - np.sin(x0)))


def test_func_grad_of_grad_against_torch():
    torch = _torch()
    x, tx = _pair(np.array(0.4))
    y, ty = _pair(_rng().standard_normal(3))

    def f(x, y):
        return (x * y).sin().sum() * x

    _same(jf.grad(jf.grad(f))(x, y), torch.func.grad(torch.func.grad(f))(tx, ty))
    _same(jf.grad(lambda x, y: jf.grad(f, 1)(x, y).sum())(x, y),
          torch.func.grad(lambda x, y: torch.func.grad(f, 1)(x, y).sum())(tx, ty))


def test_func_nested_levels_are_kept_apart():
    x = jg.tensor(3.0, dtype=jg.float64)
    # d/dx [ d/dy (x * y) at y = x ] = d/dx [x] = 1 (not 2: the inner y is not the outer x)
    g = jf.grad(lambda x: jf.grad(lambda y: x * y)(x))(x)
    assert g.item() == 1.0
    # an inner transform's own leaves are constants to the outer one: d/dx sum(2 x y0 * x)
    x = jg.tensor([0.5, 2.0], dtype=jg.float64)
    y0 = jg.tensor([1.5, -1.0], dtype=jg.float64)
    g = jf.grad(lambda x: (jf.grad(lambda y: (x * y * y).sum())(y0) * x).sum())(x)
    np.testing.assert_allclose(g.numpy(), [3.0, -8.0])
    assert not g.requires_grad


def test_func_composes_with_autograd():
    torch = _torch()
    a = _rng().standard_normal(3)
    x, tx = _pair(a, requires_grad=True)
    w, tw = _pair(_rng(1).standard_normal(3), requires_grad=True)

    def f(x):
        return (x * x * x * w).sum()

    def tf(x):
        return (x * x * x * tw).sum()

    g, tg = jf.grad(f)(x), torch.func.grad(tf)(tx)
    _same(g, tg)
    (g * g).sum().backward()
    (tg * tg).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), atol=1e-10)
    with jg.no_grad():
        g = jf.grad(f)(x)
    with torch.no_grad():
        tg = torch.func.grad(tf)(tx)
    _same(g, tg)


def test_func_gradient_penalty_reaches_captured_parameters():
    """grad w.r.t. the input of a function closing over parameters that require grad: the
    gradient is differentiable w.r.t. them (a WGAN-GP style penalty), as torch.func's."""
    torch = _torch()
    rng = _rng(7)
    w1_, b1_, w2_, x_ = (rng.standard_normal(s) for s in ((4, 3), (4,), (1, 4), (5, 3)))

    def run(m, func):
        w1, b1, w2 = (m.tensor(a, dtype=m.float64, requires_grad=True) for a in (w1_, b1_, w2_))
        x = m.tensor(x_, dtype=m.float64)

        def f(x):
            return ((x @ w1.t() + b1).tanh() @ w2.t()).sum()

        g = func.grad(f)(x)
        (g * g).sum().backward()
        return g, w1.grad, b1.grad, w2.grad, func.hessian(lambda v: f(v.reshape(5, 3)))(
            x.reshape(-1))

    _same(run(jg, jf), run(torch, torch.func))


def test_func_inputs_not_requiring_grad_untouched():
    x = jg.tensor([0.5, -1.0], dtype=jg.float64)
    g, v = jf.grad_and_value(f_scalar)(x)
    assert not x.requires_grad and x.grad is None
    assert not g.requires_grad and not v.requires_grad and g.is_leaf
    out, fn = jf.vjp(f_sin_mul, x)
    assert not out.requires_grad
    (gx,) = fn(jg.ones(2, dtype=jg.float64))
    assert not gx.requires_grad and x.grad is None


@pytest.mark.parametrize("shape", SHAPES)
def test_func_vjp(shape):
    torch = _torch()
    a, b = _rng().standard_normal(shape), _rng(1).standard_normal(shape)
    (x, tx), (y, ty) = _pair(a), _pair(b)

    def f(x, y):
        return {"p": x * y, "q": [(x * x).sum(), y.exp()]}

    out, fn = jf.vjp(f, x, y)
    tout, tfn = torch.func.vjp(f, tx, ty)
    _same(out, tout)
    c = {"p": jg.ones(shape, dtype=jg.float64), "q": [jg.tensor(2.0, dtype=jg.float64),
                                                       jg.ones(shape, dtype=jg.float64)]}
    tc = {"p": torch.ones(shape, dtype=torch.float64),
          "q": [torch.tensor(2.0, dtype=torch.float64), torch.ones(shape, dtype=torch.float64)]}
    _same(fn(c), tfn(tc))
    _same(fn(c), tfn(tc))                         # retain_graph=True by default
    out, fn, aux = jf.vjp(lambda x: (x.sin(), x.cos()), x, has_aux=True)
    tout, tfn, taux = torch.func.vjp(lambda x: (x.sin(), x.cos()), tx, has_aux=True)
    _same((out, aux), (tout, taux))
    _same(fn(jg.ones(shape, dtype=jg.float64)), tfn(torch.ones(shape, dtype=torch.float64)))


def test_func_vjp_fn_differentiable_in_its_cotangent():
    torch = _torch()
    (x, tx), (v, tv) = _pair(np.array([0.2, 1.1])), _pair(np.array([1.0, 3.0]))
    _, fn = jf.vjp(lambda x: x.sin() * x, x)
    _, tfn = torch.func.vjp(lambda x: x.sin() * x, tx)
    _same(jf.grad(lambda v: (fn(v)[0] * fn(v)[0]).sum())(v),
          torch.func.grad(lambda v: (tfn(v)[0] * tfn(v)[0]).sum())(tv))


def test_transforms_under_no_grad():
    torch = _torch()
    (x, tx), (v, tv) = _pair(np.array([0.2, 1.1])), _pair(np.array([1.0, 3.0]))
    with jg.no_grad(), torch.no_grad():
        _same(F.vjp(f_sin_mul, x, v), torch.autograd.functional.vjp(f_sin_mul, tx, tv))
        _same(F.hessian(f_scalar, x), torch.autograd.functional.hessian(f_scalar, tx))
        _same(jf.hessian(f_scalar)(x), torch.func.hessian(f_scalar)(tx))
        _same(jf.jacrev(f_sin_mul, chunk_size=2)(x), torch.func.jacrev(f_sin_mul)(tx))


def test_func_vjp_cotangent_structure_errors_match_torch():
    torch = _torch()
    x, tx = _pair(np.array([1.0, 2.0]))
    f = lambda x: (x.sin(), {"a": x.cos()})        # noqa: E731
    _, fn = jf.vjp(f, x)
    _, tfn = torch.func.vjp(f, tx)
    for c, tc in ((jg.ones(2), torch.ones(2)),
                  ([jg.ones(2), {"a": jg.ones(2)}], [torch.ones(2), {"a": torch.ones(2)}])):
        with pytest.raises(RuntimeError) as want:
            tfn(tc)
        with pytest.raises(RuntimeError) as got:
            fn(c)
        assert str(got.value) == str(want.value)


@pytest.mark.parametrize("shape", [(), (3,), (2, 2)])
def test_func_jacrev(shape):
    torch = _torch()
    a, b = _rng().standard_normal(shape), _rng(1).standard_normal(shape)
    (x, tx), (y, ty) = _pair(a), _pair(b)
    _same(jf.jacrev(f_sin_mul)(x), torch.func.jacrev(f_sin_mul)(tx))
    for argnums in (0, 1, (0, 1), (1,)):
        _same(jf.jacrev(f_two_out, argnums)(x, y), torch.func.jacrev(f_two_out, argnums)(tx, ty))
    f = lambda p: {"s": (p["a"] * p["b"]).sum(), "v": [p["a"].sin()]}     # noqa: E731
    _same(jf.jacrev(f)({"a": x, "b": y}), torch.func.jacrev(f)({"a": tx, "b": ty}))
    _same(jf.jacrev(f, chunk_size=1)({"a": x, "b": y}), torch.func.jacrev(f)({"a": tx, "b": ty}))
    g = lambda x: (x.exp(), {"aux": x * 2})        # noqa: E731
    _same(jf.jacrev(g, has_aux=True)(x), torch.func.jacrev(g, has_aux=True)(tx))


@pytest.mark.parametrize("shape", [(), (3,), (2, 2)])
def test_func_hessian(shape):
    torch = _torch()
    a, b = _rng().standard_normal(shape), _rng(1).standard_normal(shape)
    (x, tx), (y, ty) = _pair(a), _pair(b)
    _same(jf.hessian(f_scalar)(x), torch.func.hessian(f_scalar)(tx))
    for argnums in (0, 1, (0, 1)):
        _same(jf.hessian(f_two_in_scalar, argnums)(x, y),
              torch.func.hessian(f_two_in_scalar, argnums)(tx, ty))
    _same(jf.jacrev(jf.jacrev(f_sin_mul))(x), torch.func.jacrev(torch.func.jacrev(f_sin_mul))(tx))


def test_func_hessian_matches_finite_differences():
    a = _rng(5).standard_normal((2, 2))
    w = jg.tensor(_rng(6).standard_normal((2, 3)), dtype=jg.float64)

    def f(x):
        return f_matmul(x, w)

    h = jf.hessian(f)(jg.tensor(a, dtype=jg.float64))
    np.testing.assert_allclose(h.numpy(), _fd_hessian(f, a), atol=1e-5)
    h2 = F.hessian(f, jg.tensor(a, dtype=jg.float64))
    np.testing.assert_allclose(h.numpy(), h2.numpy(), atol=1e-12)


def test_func_errors():
    x = jg.tensor([1.0, 2.0], dtype=jg.float64)
    api = r"grad_and_value\(f\)\(\*args\): "
    with pytest.raises(RuntimeError, match="^" + api + "Expected f\\(\\*args\\) to return a scalar "
                       "Tensor, got tensor with 1 dims. Maybe you wanted to use the vjp or jacrev "
                       "APIs instead\\?$"):
        jf.grad(lambda x: x)(x)
    with pytest.raises(RuntimeError, match="^" + api + "Expected f\\(\\*args\\) to return a "
                       "Tensor, got <class 'float'>$"):
        jf.grad(lambda x: 3.0)(x)
    with pytest.raises(RuntimeError, match="^" + api + "output of function f should be a tuple: "
                       "\\(output, aux\\) if has_aux is True$"):
        jf.grad(lambda x: x.sum(), has_aux=True)(x)
    with pytest.raises(RuntimeError, match="^Got argnum=3, but only 1 positional inputs$"):
        jf.grad(lambda x: x.sum(), argnums=3)(x)
    with pytest.raises(RuntimeError, match="^argnums must be int or Tuple\\[int, ...\\], got: "
                       "<class 'list'>$"):
        jf.grad(lambda x: x.sum(), argnums=[0])(x)
    with pytest.raises(RuntimeError, match="^argnums must be non-empty$"):
        jf.grad(lambda x: x.sum(), argnums=())(x)
    with pytest.raises(RuntimeError, match="^argnums elements must be unique, got \\(0, 0\\)$"):
        jf.grad(lambda x: x.sum(), argnums=(0, 0))(x)
    with pytest.raises(ValueError, match="^Thing passed to transform API must be Tensor, got "
                       "<class 'float'>$"):
        jf.grad(lambda x: x)(3.0)
    with pytest.raises(RuntimeError, match="^only Tensors of floating point dtype can require "
                       "gradients$"):
        jf.grad(lambda x: x.sum())(jg.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="^Expected tensors, got unsupported type <class 'int'>$"):
        jf.grad(lambda x: (x.sum(), 3), has_aux=True)(x)
    with pytest.raises(RuntimeError, match=r"^vjp\(f, \*primals\): Expected f to be a function "
                       r"that has non-empty output \(got output = \[None\]\)$"):
        jf.vjp(lambda x: None, x)
    with pytest.raises(RuntimeError, match=r"^vjp\(f, \*primals\): expected f\(\*primals\) to "
                       r"return only tensors, got unsupported type <class 'float'>$"):
        jf.vjp(lambda x: 3.0, x)
    with pytest.raises(RuntimeError, match=r"^vjp\(f, \.\.\.\): All outputs of f must be "
                       "floating-point or complex Tensors, got Tensor with dtype "):
        jf.vjp(lambda x: x > 0, x)
    with pytest.raises(ValueError, match="^jacrev: `chunk_size` should be greater than 0.$"):
        jf.jacrev(f_sin_mul, chunk_size=0)
    assert not hasattr(jf, "vmap") and not hasattr(jf, "jacfwd") and not hasattr(jf, "jvp")


def test_func_exported():
    assert jg.func is jf
    assert jg.autograd.functional is F

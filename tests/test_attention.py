"""Attention: F.scaled_dot_product_attention, nn.MultiheadAttention, nn.TransformerEncoderLayer and
nn.TransformerEncoder against hand-computed values always and against PyTorch (same weights) where
it is installed; and a tiny character-level transformer that learns."""
import math

import numpy as np
import pytest

import jitgrad
from jitgrad import nn
from jitgrad.nn import functional as F

try:
    import torch
    torch.set_num_threads(1)
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
# PyTorch warns when a bool key_padding_mask meets a float attn_mask: both are tested on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched")


def _softmax(a):
    e = np.exp(a - a.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _sdpa_numpy(q, k, v, allowed=None, bias=None, scale=None):
    s = q @ np.swapaxes(k, -1, -2) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if bias is not None:
        s = s + bias
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)
    return _softmax(s) @ v


# ---- scaled_dot_product_attention ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["none", "bool", "float", "causal", "scale"])
def test_sdpa_matches_the_formula(kind):
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((2, 3, 6, 2))
    allowed = rng.random((4, 6)) > 0.3
    allowed[:, 0] = True
    bias = rng.standard_normal((4, 6))
    kwargs, want = {}, None
    if kind == "bool":
        kwargs, want = {"attn_mask": jitgrad.tensor(allowed)}, _sdpa_numpy(q, k, v, allowed=allowed)
    elif kind == "float":
        kwargs, want = {"attn_mask": jitgrad.tensor(bias)}, _sdpa_numpy(q, k, v, bias=bias)
    elif kind == "causal":
        kwargs, want = {"is_causal": True}, _sdpa_numpy(q, k, v, allowed=np.tril(np.ones((4, 6), bool)))
    elif kind == "scale":
        kwargs, want = {"scale": 0.3}, _sdpa_numpy(q, k, v, scale=0.3)
    else:
        want = _sdpa_numpy(q, k, v)
    out = F.scaled_dot_product_attention(jitgrad.tensor(q), jitgrad.tensor(k), jitgrad.tensor(v), **kwargs)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)


@needs_torch
@pytest.mark.parametrize("kind", ["none", "bool", "float", "causal", "scale", "gqa", "blind_rows", "unbatched"])
def test_sdpa_values_and_gradients_match_torch(kind):
    rng = np.random.default_rng(1)
    qs, ks, vs = (2, 4, 3, 5), (2, 4, 6, 5), (2, 4, 6, 3)
    kwargs = {}
    if kind == "bool":
        kwargs["attn_mask"] = rng.random((3, 6)) > 0.4
    elif kind == "float":
        kwargs["attn_mask"] = rng.standard_normal((2, 1, 3, 6))
    elif kind == "causal":
        kwargs["is_causal"] = True
    elif kind == "scale":
        kwargs["scale"] = 0.7
    elif kind == "gqa":
        ks, vs = (2, 2, 6, 5), (2, 2, 6, 3)
        kwargs["enable_gqa"] = True
    elif kind == "blind_rows":        # a query row allowed nothing: zeros and no nan gradient
        mask = rng.random((3, 6)) > 0.4
        mask[1] = False
        kwargs["attn_mask"] = mask
    elif kind == "unbatched":
        qs, ks, vs = (3, 5), (6, 5), (6, 2)
    arrays = [rng.standard_normal(s) for s in (qs, ks, vs)]
    tt = [torch.tensor(a, requires_grad=True) for a in arrays]
    jt = [jitgrad.tensor(a, requires_grad=True) for a in arrays]
    tk = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    jk = {k: jitgrad.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    to = torch.nn.functional.scaled_dot_product_attention(*tt, **tk)
    jo = F.scaled_dot_product_attention(*jt, **jk)
    np.testing.assert_allclose(jo.detach().numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    seed = rng.standard_normal(tuple(to.shape))
    to.backward(torch.tensor(seed))
    jo.backward(jitgrad.tensor(seed))
    for a, b in zip(jt, tt):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_sdpa_dropout_zeroes_and_rescales_weights():
    rng = np.random.default_rng(2)
    q, k = rng.standard_normal((1, 4, 3)), rng.standard_normal((1, 5, 3))
    v = np.eye(5)[None]                    # the output is the (dropped) attention weights themselves
    weights = _sdpa_numpy(q, k, v)
    jitgrad.manual_seed(0)
    out = F.scaled_dot_product_attention(jitgrad.tensor(q), jitgrad.tensor(k), jitgrad.tensor(v), dropout_p=0.5).numpy()
    kept = out != 0
    assert kept.any() and (~kept).any()
    np.testing.assert_allclose(out[kept], 2 * weights[kept], rtol=1e-12)
    jitgrad.manual_seed(0)
    again = F.scaled_dot_product_attention(jitgrad.tensor(q), jitgrad.tensor(k), jitgrad.tensor(v), dropout_p=0.5)
    np.testing.assert_array_equal(again.numpy(), out)


def test_sdpa_errors():
    x = jitgrad.randn(1, 2, 3, 4)
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when is_causal=True"):
        F.scaled_dot_product_attention(x, x, x, attn_mask=jitgrad.ones(3, 3, dtype=jitgrad.bool), is_causal=True)
    with pytest.raises(RuntimeError, match="Number of heads in key and value must divide"):
        F.scaled_dot_product_attention(jitgrad.randn(1, 3, 2, 4), x, x, enable_gqa=True)
    with pytest.raises(RuntimeError):
        F.scaled_dot_product_attention(jitgrad.randn(1, 3, 2, 4), x, x)   # heads do not broadcast


# ---- MultiheadAttention ---------------------------------------------------------------------------
def _load_from_torch(jm, tm):
    jm.load_state_dict({k: jitgrad.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})


def test_multihead_attention_parameters_and_init():
    m = nn.MultiheadAttention(12, 3)
    assert [n for n, _ in m.named_parameters()] == ["in_proj_weight", "in_proj_bias", "out_proj.weight",
                                                   "out_proj.bias"]
    assert tuple(m.in_proj_weight.shape) == (36, 12)
    bound = math.sqrt(6.0 / (36 + 12))           # xavier_uniform_ on the (3E, E) weight
    w = m.in_proj_weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert not m.in_proj_bias.detach().numpy().any() and not m.out_proj.bias.detach().numpy().any()
    separate = nn.MultiheadAttention(6, 2, kdim=4, vdim=5, add_bias_kv=True)
    assert [n for n, _ in separate.named_parameters()] == ["q_proj_weight", "k_proj_weight", "v_proj_weight",
                                                          "in_proj_bias", "bias_k", "bias_v", "out_proj.weight",
                                                          "out_proj.bias"]
    assert repr(m) == ("MultiheadAttention(\n  (out_proj): NonDynamicallyQuantizableLinear(in_features=12, "
                       "out_features=12, bias=True)\n)")
    with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
        nn.MultiheadAttention(10, 3)


def test_multihead_attention_one_head_by_hand():
    m = nn.MultiheadAttention(2, 1, bias=False, dtype=jitgrad.float64)
    with jitgrad.no_grad():
        m.in_proj_weight.copy_(jitgrad.tensor(np.vstack([np.eye(2)] * 3)))
        m.out_proj.weight.copy_(jitgrad.tensor(np.eye(2)))
    x = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])            # (L, E), unbatched
    out, w = m(jitgrad.tensor(x), jitgrad.tensor(x), jitgrad.tensor(x))
    want_w = _softmax(x @ x.T / math.sqrt(2))
    np.testing.assert_allclose(w.detach().numpy(), want_w, rtol=1e-12)
    np.testing.assert_allclose(out.detach().numpy(), want_w @ x, rtol=1e-12)


MHA_CASES = [({}, {}), ({"batch_first": True}, {}), ({}, {"need_weights": False}),
             ({"add_bias_kv": True, "add_zero_attn": True}, {}), ({"kdim": 3, "vdim": 5}, {}),
             ({}, {"average_attn_weights": False}), ({"bias": False}, {"float_mask": True}),
             ({"batch_first": True}, {"need_weights": False, "float_mask": True}), ({}, {"unbatched": True})]


@needs_torch
@pytest.mark.parametrize("kw,fkw", MHA_CASES, ids=[str(i) for i in range(len(MHA_CASES))])
def test_multihead_attention_matches_torch(kw, fkw):
    fkw = dict(fkw)
    float_mask, unbatched = fkw.pop("float_mask", False), fkw.pop("unbatched", False)
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(8, 2, **kw).double()
    jm = nn.MultiheadAttention(8, 2, dtype=jitgrad.float64, **kw)
    _load_from_torch(jm, tm)
    rng = np.random.default_rng(3)
    L, S, N = 4, 5, 3
    shapes = [(L, N, 8), (S, N, kw.get("kdim", 8)), (S, N, kw.get("vdim", 8))]
    arrays = [rng.standard_normal(s) for s in shapes]
    if kw.get("batch_first"):
        arrays = [a.transpose(1, 0, 2).copy() for a in arrays]
    kpm = np.zeros((N, S), bool)
    kpm[0, -2:] = True
    mask = rng.standard_normal((L, S)) if float_mask else np.triu(np.ones((L, S), bool), 2)
    if unbatched:
        arrays, kpm = [a[:, 0] for a in arrays], kpm[0]
    tt = [torch.tensor(a, requires_grad=True) for a in arrays]
    jt = [jitgrad.tensor(a, requires_grad=True) for a in arrays]
    to, tw = tm(*tt, key_padding_mask=torch.tensor(kpm), attn_mask=torch.tensor(mask), **fkw)
    jo, jw = jm(*jt, key_padding_mask=jitgrad.tensor(kpm), attn_mask=jitgrad.tensor(mask), **fkw)
    np.testing.assert_allclose(jo.detach().numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert (jw is None) == (tw is None)
    if tw is not None:
        np.testing.assert_allclose(jw.detach().numpy(), tw.detach().numpy(), rtol=1e-10, atol=1e-12)
    (to.sum() + (tw.pow(2).sum() if tw is not None else 0)).backward()
    (jo.sum() + (jw.pow(2).sum() if jw is not None else 0)).backward()
    for a, b in zip(jt, tt):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-12)
    for (n, p), (_, jp) in zip(tm.named_parameters(), jm.named_parameters()):
        np.testing.assert_allclose(jp.grad.numpy(), p.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=n)


# ---- TransformerEncoderLayer, TransformerEncoder -------------------------------------------------
ENCODER_CASES = [{}, {"norm_first": True}, {"activation": "gelu"}, {"batch_first": True, "norm_first": True},
                 {"activation": "callable"}]


@needs_torch
@pytest.mark.parametrize("kw", ENCODER_CASES, ids=[str(i) for i in range(len(ENCODER_CASES))])
def test_transformer_encoder_matches_torch(kw):
    kw = dict(kw)
    tkw, jkw = dict(kw), dict(kw)
    if kw.get("activation") == "callable":
        tkw["activation"], jkw["activation"] = torch.nn.functional.silu, F.silu
    torch.manual_seed(0)
    tlayer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, **tkw).double()
    tenc = torch.nn.TransformerEncoder(tlayer, 2, norm=torch.nn.LayerNorm(8).double(), enable_nested_tensor=False)
    jenc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, dtype=jitgrad.float64, **jkw), 2,
                                 norm=nn.LayerNorm(8, dtype=jitgrad.float64))
    assert list(jenc.state_dict()) == list(tenc.state_dict())
    _load_from_torch(jenc, tenc)
    tenc.eval()
    jenc.eval()          # dropout off: the two must agree exactly
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3, 8))          # (S, N, E)
    if kw.get("batch_first"):
        x = x.transpose(1, 0, 2).copy()
    mask = np.triu(np.full((5, 5), -np.inf), 1)
    kpm = np.zeros((3, 5), bool)
    kpm[1, -1] = True
    tx, jx = torch.tensor(x, requires_grad=True), jitgrad.tensor(x, requires_grad=True)
    with torch.inference_mode(False):
        to = tenc(tx, mask=torch.tensor(mask), src_key_padding_mask=torch.tensor(kpm))
    jo = jenc(jx, mask=jitgrad.tensor(mask), src_key_padding_mask=jitgrad.tensor(kpm))
    np.testing.assert_allclose(jo.detach().numpy(), to.detach().numpy(), rtol=1e-9, atol=1e-11)
    seed = rng.standard_normal(x.shape)
    to.backward(torch.tensor(seed))
    jo.backward(jitgrad.tensor(seed))
    np.testing.assert_allclose(jx.grad.numpy(), tx.grad.numpy(), rtol=1e-8, atol=1e-10)
    for (n, p), (_, jp) in zip(tenc.named_parameters(), jenc.named_parameters()):
        np.testing.assert_allclose(jp.grad.numpy(), p.grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=n)


def test_encoder_layers_are_independent_copies_and_dropout_trains_only():
    layer = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.5)
    enc = nn.TransformerEncoder(layer, 2)
    a, b = enc.layers[0].linear1.weight, enc.layers[1].linear1.weight
    assert a is not b and np.array_equal(a.detach().numpy(), b.detach().numpy())
    x = jitgrad.randn(3, 2, 4)
    enc.eval()
    np.testing.assert_array_equal(enc(x).detach().numpy(), enc(x).detach().numpy())
    enc.train()
    assert not np.array_equal(enc(x).detach().numpy(), enc(x).detach().numpy())
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(4, 2, activation="tanh")


def test_tiny_character_transformer_learns():
    """A one-layer causal transformer over characters: next-character loss falls well below its
    start (uniform guessing is log(vocab) ~ 3.3) within a few seconds."""
    jitgrad.manual_seed(0)
    text = "the quick brown fox jumps over the lazy dog. " * 8
    chars = sorted(set(text))
    vocab, T, B, D = len(chars), 12, 16, 24
    ids = np.array([chars.index(c) for c in text])

    class CharTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, D)
            self.pos = nn.Parameter(jitgrad.randn(T, D) * 0.1)
            self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, 2, 48, dropout=0.0, batch_first=True), 1)
            self.head = nn.Linear(D, vocab)

        def forward(self, x):
            causal = jitgrad.triu(jitgrad.full((T, T), float("-inf")), diagonal=1)
            return self.head(self.enc(self.tok(x) + self.pos, mask=causal))

    model = CharTransformer()
    opt = jitgrad.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(60):
        starts = rng.integers(0, len(ids) - T - 1, B)
        x = jitgrad.tensor(np.stack([ids[i:i + T] for i in starts]))
        y = jitgrad.tensor(np.stack([ids[i + 1:i + T + 1] for i in starts]))
        loss = F.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 3.0
    assert np.mean(losses[-5:]) < 0.25 * losses[0]

"""Differential test: a compiled module differentiated outside the compiled call
(``model = jitgrad.compile(model)``, then ``loss.backward()``) against the same module eagerly.

Each seed draws a small model (Python choices from random.Random(seed), weights from
jitgrad.manual_seed, data from numpy's default_rng) and builds it twice: one copy is called
eagerly, the other through jitgrad.compile(model). Both are called 4-6 times with the same
arguments and the same actions between calls. Ingredients: an MLP or a Conv1d/Conv2d net (with a
pooling layer), activations (modules or functions, a second hidden layer, one layer used twice),
BatchNorm/LayerNorm/GroupNorm, Dropout (jitgrad.manual_seed before each call of both copies: the
same masks), float32 or float64, a result that is a tensor, a tuple or a dict (a second output
differentiable, detached, the input itself or the first output again); inputs that do not require
grad, leaf inputs that do, non-leaf inputs (h = x * 2 before the call), reused or new at each
call. Each call does one of: backward of a loss computed outside (mse, l1, cross_entropy, sum of
squares; on all outputs or the first only), two forwards then one backward of their summed loss,
a forward whose backward runs at the next call (after another forward), retain_graph=True then a
second backward, autograd.grad w.r.t. the input and/or the parameters, a forward under no_grad or
without backward; then maybe an SGD/Adam step. Between calls: train()/eval(), a parameter frozen
or unfrozen, an in-place change of a parameter under no_grad, .grads zeroed. Some calls raise
eagerly (a wrong shape or dtype, batch norm of one sample, a backward twice, a parameter changed
in place before the backward, a backward of a no_grad result): the compiled copy must raise the
same. After every call everything observable must be the same: the outputs (dtype, shape,
values, requires_grad, is_leaf, whether it is the argument), the losses, what autograd.grad
returned, every parameter (values, requires_grad) and .grad, the inputs' .grads, BatchNorm's
running statistics, the optimizer's state_dict, the modules' training flags, the outputs kept
from earlier calls, and the exception (type and message).

Documented differences (README, "Compiled steps"; docs/design.md, "Compiled replay") are not
counted: a parameter used by two forwards before one backward gets each call's gradient summed,
then added (cases with two forwards compare within RTOL); a float32 module under a float64 loss
(not drawn: the loss has the module's dtype); the first call's graph is eager's (grad_fn names are
not compared); double backward through the node raises (create_graph is not drawn).

Values are compared bit for bit when the case has no exp/log/tanh/erf (see exact()); otherwise
numpy's vectorised math and the C library's may differ in the last bit, so each array may differ
by RTOL times the larger of its largest magnitude and the call's largest parameter magnitude
(as tests/test_compile_differential.py); so do cases where the caller's graph also reads a
tensor the compiled call read and a conv's input gradient, summed by the node before it is
added (eager adds term by term). What a replay cannot do runs eagerly with a warning (an
in-place activation, a module hook, an index argument): compared the same way. Over seeds
0-2999: 2,488 replayed, no failure. The bugs this tester found (a max pool's positions not
kept by a node's copy of its values, the in-place checks of the node's inputs, Dropout on a
non-leaf input running eagerly) are small cases in tests/test_compile_module.py.
``python tests/test_compile_module_differential.py [seeds | -FIRST LAST]`` prints the failing
seeds with their first differences, which needed RTOL, and why calls ran eagerly.
"""
import random
import sys
import warnings

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as F
from jitgrad import nn
from test_compile_differential import compare_arrays, summary

# (over seeds 0-2999 the worst needed is 4.6e-5 in float32, 5 seeds above 1e-6: Adam's steps on
# gradients through a BatchNorm without affine, rounding noise around zero; 2.5e-14 in float64)
RTOL = {"float32": 1e-4, "float64": 1e-12}
SEEDS = range(900)

ACTS = {"relu": F.relu, "tanh": jitgrad.tanh, "sigmoid": jitgrad.sigmoid, "gelu": F.gelu,
        "leaky_relu": lambda h: F.leaky_relu(h, 0.1), "softplus": F.softplus,
        "elu": F.elu, "silu": F.silu}
MODULE_ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
               "leaky_relu": lambda: nn.LeakyReLU(0.1), "softplus": nn.Softplus}
PIECEWISE = {"relu", "leaky_relu", None}
RETURNS = ["tensor", "tensor", "tuple", "tuple_detached", "dict", "dict_detached", "input",
           "same_twice"]
PATTERNS = ["backward"] * 4 + ["first_only", "twice", "defer", "retain", "grad_input",
                               "grad_params", "grad_both", "no_grad", "forward_only"]
BETWEEN = ["eval", "train", "freeze", "unfreeze", "scale_param", "zero_grad", "zero_keep",
           "input_grad", "lr"]
BAD = ["features", "dtype", "batch1", "backward_twice", "inplace_before_backward",
       "no_grad_backward", "grad_frozen"]


# ----------------------------------------------------------------------------- the draw

def draw(seed):
    """The seed's choices: plain Python values shared by both copies."""
    r = random.Random(seed)
    c = {"seed": seed}
    c["dtype"] = r.choice(["float32", "float64"])
    c["arch"] = r.choice(["mlp", "mlp", "conv1d", "conv2d"])
    conv = c["arch"] != "mlp"
    c["n_in"] = r.randint(2, 4)
    c["hidden"] = r.choice([4, 6])
    c["length"] = r.randint(3, 5)
    c["kernel"] = r.randint(1, 3)
    c["stride"] = r.choice([1, 1, 2])
    c["padding"] = r.choice([0, 1])
    c["pool"] = r.choice([None, None, "max", "avg", "adaptive_max", "adaptive_avg"]) \
        if conv else None
    c["reduce"] = r.choice(["mean", "flatten"])          # (a conv's features to the head)
    c["norm"] = r.choice([None] * 5 + ["bn", "bn", "bn_noaffine", "group"] + ["layer"] * (not conv))
    c["act"] = r.choice(sorted(ACTS))
    c["act_module"] = c["act"] in MODULE_ACTS and r.random() < 0.4
    c["second"] = r.choice([None, None] + sorted(ACTS))
    c["twice"] = c["second"] is not None and r.random() < 0.25    # a layer used twice
    c["dropout"] = r.choice([0, 0, 0, 0.3])
    c["n_out"] = r.randint(2, 4)
    c["ret"] = r.choice(RETURNS)
    # (what makes a call run eagerly, README: drawn rarely)
    c["eager_by"] = r.choice([None] * 14 + ["inplace_act", "hook", "index_arg"])
    c["loss"] = r.choice(["mse", "l1", "sumsq", "cross_entropy"])
    c["aux"] = r.random() < 0.6                # the second output in the loss too
    c["input"] = r.choice(["plain", "leaf", "nonleaf"])
    c["reuse"] = r.random() < 0.3              # the same input tensors at every call
    c["frozen0"] = r.random() < 0.15           # a parameter frozen before the first call
    c["opt"] = r.choice([None, "sgd", "sgd_momentum", "adam"])
    c["zero"] = r.choice(["none", "opt", "model"]) if c["opt"] else r.choice(["none", "model"])
    n = c["n_calls"] = r.randint(4, 6)
    base = r.randint(2, 5)
    vary = r.random() < 0.25
    c["batches"] = [r.choice([base, base + 1]) if vary else base for _ in range(n)]
    c["patterns"] = [r.choice(PATTERNS) for _ in range(n)]
    c["steps"] = [c["opt"] is not None and r.random() < 0.7 for _ in range(n)]
    c["between"] = {k: r.choice(BETWEEN) for k in range(1, n) if r.random() < 0.35}
    if c["norm"] and r.random() < 0.4:
        c["between"][r.randint(1, n - 1)] = r.choice(["eval", "train"])
    c["start_eval"] = r.random() < 0.1
    c["input_change"] = r.randint(1, n - 1) if r.random() < 0.15 else None   # another kind
    c["bad"] = (r.randint(0, n - 1), r.choice(BAD)) if r.random() < 0.15 else None
    return c


def exact(c):
    """Whether the case must match bit for bit: no exp/log/tanh/erf, one forward per backward
    (two: each call's gradient summed, then added), and no input that a conv reads and the loss
    outside too (eager's conv adds its input gradient into the input's slot term by term, the
    node adds it summed, as two forwards' gradients: the last bits differ)."""
    return c["act"] in PIECEWISE and c["second"] in PIECEWISE and \
        c["loss"] != "cross_entropy" and not {"twice", "defer"} & set(c["patterns"]) and \
        not (c["ret"] == "input" and c["aux"] and c["arch"] != "mlp")


# ----------------------------------------------------------------------------- the setup

class Net(nn.Module):
    def __init__(self, c):
        super().__init__()
        arch, hid, n_in = c["arch"], c["hidden"], c["n_in"]
        self.arch, self.ret, self.act, self.second = arch, c["ret"], c["act"], c["second"]
        self.inplace = c["eager_by"] == "inplace_act"
        self.reduce, self.twice = c["reduce"], c["twice"]
        # (no bias before a norm of each channel: its gradient would be rounding noise)
        bias = c["norm"] in (None, "layer")
        if arch == "mlp":
            self.first = nn.Linear(n_in, hid, bias=bias)
            width = hid
        else:
            conv = nn.Conv1d if arch == "conv1d" else nn.Conv2d
            k = min(c["kernel"], c["length"])
            self.first = conv(n_in, hid, k, stride=c["stride"], padding=c["padding"], bias=bias)
            lout = (c["length"] + 2 * c["padding"] - k) // c["stride"] + 1
            if c["pool"]:
                self.pool, lout = pool_layer(c["pool"], arch, lout)
            width = hid if c["reduce"] == "mean" else hid * lout ** (1 if arch == "conv1d" else 2)
        if c["norm"]:
            self.norm = norm_layer(c)
        if c["act_module"]:
            self.act_m = MODULE_ACTS[c["act"]]()
        if c["dropout"]:
            self.drop = nn.Dropout(c["dropout"])
        self.width = width
        if c["second"]:
            self.mid = nn.Linear(width, hid)
            if c["twice"]:
                self.mid2 = nn.Linear(hid, hid)
            width = hid
        self.head = nn.Linear(width, c["n_out"])
        if c["eager_by"] == "index_arg":
            self.embed = nn.Embedding(5, c["n_out"])

    def forward(self, x, idx=None):
        h = self.first(x)
        if "pool" in self._modules:
            h = self.pool(h)
        if "norm" in self._modules:
            h = self.norm(h)
        if self.inplace:
            h = F.relu(h, inplace=True)
        if "act_m" in self._modules:
            h = self.act_m(h)
        else:
            h = ACTS[self.act](h)
        if "drop" in self._modules:
            h = self.drop(h)
        if self.arch != "mlp":
            h = h.mean(dim=tuple(range(2, h.dim()))) if self.reduce == "mean" else h.flatten(1)
        feat = h
        if self.second:
            h = ACTS[self.second](self.mid(h))
            if self.twice:
                h = ACTS[self.second](self.mid2(ACTS[self.second](self.mid2(h))))
        out = self.head(h)
        if idx is not None:
            out = out + self.embed(idx)
        ret = self.ret
        if ret == "tuple":
            return out, feat
        if ret == "tuple_detached":
            return out, feat.detach()
        if ret == "dict":
            return {"out": out, "feat": feat}
        if ret == "dict_detached":
            return {"feat": feat.detach() * 2, "out": out}
        if ret == "input":
            return out, x
        if ret == "same_twice":
            return out, out
        return out


def pool_layer(kind, arch, lout):
    """A pooling layer after a conv, and its output's length."""
    two_d = arch == "conv2d"
    if kind.startswith("adaptive"):
        cls = {"adaptive_max": (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d),
               "adaptive_avg": (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)}[kind][two_d]
        return cls(2), 2
    cls = {"max": (nn.MaxPool1d, nn.MaxPool2d), "avg": (nn.AvgPool1d, nn.AvgPool2d)}[kind][two_d]
    kp = min(2, lout)
    return cls(kp), (lout - kp) // kp + 1


def norm_layer(c):
    kind, hid = c["norm"], c["hidden"]
    if kind.startswith("bn"):
        return (nn.BatchNorm2d if c["arch"] == "conv2d" else nn.BatchNorm1d)(
            hid, affine=kind == "bn")
    if kind == "layer":
        return nn.LayerNorm(hid)
    return nn.GroupNorm(2, hid)


class Setup:
    pass


def build(c, compiled):
    """One copy: the model (the compiled one's calls through jitgrad.compile), its optimizer,
    and each call's input values (numpy, the same for both copies)."""
    s = Setup()
    s.c = c
    dt = getattr(jitgrad, c["dtype"])
    jitgrad.manual_seed(c["seed"])
    s.model = Net(c).to(dt)
    if c["start_eval"]:
        s.model.eval()
    s.params = list(s.model.parameters())
    if c["frozen0"]:
        s.params[0].requires_grad_(False)
    if c["eager_by"] == "hook":          # (a module hook: the calls run eagerly, README)
        s.model.head.register_forward_hook(lambda m, args, out: out * 1.5)
    s.fn = jitgrad.compile(s.model) if compiled else s.model
    s.bns = [m for m in s.model.modules() if hasattr(m, "running_mean")]
    s.opt = None
    if c["opt"] == "sgd":
        s.opt = jitgrad.optim.SGD(s.params, lr=0.05)
    elif c["opt"] == "sgd_momentum":
        s.opt = jitgrad.optim.SGD(s.params, lr=0.05, momentum=0.9, weight_decay=1e-2)
    elif c["opt"] == "adam":
        s.opt = jitgrad.optim.Adam(s.params, lr=0.01)
    rng = np.random.default_rng(c["seed"])
    npdt = np.float32 if c["dtype"] == "float32" else np.float64
    shape = {"mlp": (c["n_in"],), "conv1d": (c["n_in"], c["length"]),
             "conv2d": (c["n_in"], c["length"], c["length"])}[c["arch"]]
    s.data = []
    for b in c["batches"]:
        x = rng.standard_normal((b,) + shape).astype(npdt)
        x2 = rng.standard_normal((b,) + shape).astype(npdt)
        if c["loss"] == "cross_entropy":
            y = rng.integers(0, c["n_out"], b)
        else:
            y = rng.standard_normal((b, c["n_out"])).astype(npdt)
        s.data.append((x, x2, y, rng.integers(0, 5, b)))
    s.kinds = [c["input"]] * c["n_calls"]
    if c["input_change"] is not None:
        k = c["input_change"]
        s.kinds[k:] = [{"plain": "leaf", "leaf": "nonleaf", "nonleaf": "plain"}[c["input"]]] * \
            (c["n_calls"] - k)
    s.reused = {}
    s.pending = None                     # (a result whose backward runs at the next call)
    s.held = []                          # every output seen (values must not change)
    return s


def inputs(s, k, bad):
    """Call k's leaf input, second input, target and index (new tensors, or the ones of an
    earlier call of the same batch size when reused)."""
    c = s.c
    x, x2, y, idx = s.data[k]
    if bad == "features":
        x = np.concatenate([x, x[:, :1]], axis=1)
    elif bad == "dtype":
        x = x.astype(np.float64 if x.dtype == np.float32 else np.float32)
    elif bad == "batch1":
        x, x2, y, idx = x[:1], x2[:1], y[:1], idx[:1]
    key = (x.shape, x.dtype, s.kinds[k])
    if c["reuse"] and key in s.reused:
        return s.reused[key]
    rg = s.kinds[k] != "plain"
    made = (jitgrad.tensor(x, requires_grad=rg), jitgrad.tensor(x2, requires_grad=rg),
            jitgrad.tensor(y), jitgrad.tensor(idx))
    s.reused[key] = made
    return made


def forward(s, k, x, idx, rec, name):
    h = rec[name + ".arg"] = x * 2 if s.kinds[k] == "nonleaf" else x
    res = rec[name] = s.fn(h, idx) if s.c["eager_by"] == "index_arg" else s.fn(h)
    return res


def parts(res):
    """The result's first output and its second one (or None)."""
    if isinstance(res, dict):
        return res["out"], res["feat"]
    if isinstance(res, tuple):
        return res
    return res, None


def loss_of(c, res, y, first_only=False):
    out, aux = parts(res)
    kind = c["loss"]
    if kind == "mse":
        loss = F.mse_loss(out, y)
    elif kind == "l1":
        loss = F.l1_loss(out, y)
    elif kind == "sumsq":
        loss = ((out - y) ** 2).sum()
    else:
        loss = F.cross_entropy(out, y)
    if aux is not None and c["aux"] and not first_only:
        loss = loss + 0.5 * (aux * aux).mean()
    return loss


def call(s, k):
    """Call k's work: the records to compare (name -> value). Raises where eager raises."""
    c = s.c
    pat = c["patterns"][k]
    bad = c["bad"][1] if c["bad"] and c["bad"][0] == k else None
    rec = {}
    if s.opt is not None and c["zero"] == "opt":
        s.opt.zero_grad()
    elif c["zero"] == "model":
        s.model.zero_grad()
    x, x2, y, idx = inputs(s, k, bad)
    jitgrad.manual_seed(10_000 + k)       # (dropout: the same masks both ways)
    if pat == "no_grad" or bad == "no_grad_backward":
        with jitgrad.no_grad():
            res = forward(s, k, x, idx, rec, "res")
        if bad == "no_grad_backward":
            loss_of(c, res, y).backward()
        return rec
    res = forward(s, k, x, idx, rec, "res")
    loss = loss_of(c, res, y, first_only=pat == "first_only")
    if pat == "twice":
        res2 = forward(s, k, x2, idx, rec, "res2")
        loss = loss + 0.5 * loss_of(c, res2, y)
    if s.pending is not None and pat not in ("defer", "forward_only"):
        loss = loss + loss_of(c, s.pending, s.pending_y)
        s.pending = None
    rec["loss"] = loss
    if pat in ("defer", "forward_only"):
        if pat == "defer":
            s.pending, s.pending_y = res, y
        return rec
    if bad == "inplace_before_backward":
        with jitgrad.no_grad():
            s.params[-1].mul_(0.9)
    leaf = x
    ps = [p for p in s.params if p.requires_grad or bad == "grad_frozen"]
    if pat == "grad_input":
        rec["grads"] = jitgrad.autograd.grad(loss, [leaf])
    elif pat == "grad_params":
        rec["grads"] = jitgrad.autograd.grad(loss, ps)
    elif pat == "grad_both":
        rec["grads"] = jitgrad.autograd.grad(loss, [leaf] + ps, allow_unused=True)
    elif bad == "grad_frozen":
        rec["grads"] = jitgrad.autograd.grad(loss, ps)
    elif pat == "retain":
        loss.backward(retain_graph=True)
        (loss * 0.5).backward()
    else:
        loss.backward()
        if bad == "backward_twice":
            loss.backward()
    if c["steps"][k] and s.opt is not None:
        s.opt.step()
    return rec


def between(c, s, k):
    """The action before call k (the same on both copies)."""
    act = c["between"].get(k)
    if act == "eval":
        s.model.eval()
    elif act == "train":
        s.model.train()
    elif act == "freeze":
        s.params[0].requires_grad_(False)
    elif act == "unfreeze":
        s.params[0].requires_grad_(True)
    elif act == "scale_param":
        with jitgrad.no_grad():
            s.params[-1].mul_(0.75)
            s.params[0].add_(0.125)
    elif act == "zero_grad":
        s.model.zero_grad()
    elif act == "zero_keep":
        s.model.zero_grad(set_to_none=False)
    elif act == "input_grad":
        for t in s.reused.values():
            t[0].grad = None
    elif act == "lr" and s.opt is not None:
        s.opt.param_groups[0]["lr"] *= 0.5


# ----------------------------------------------------------------------------- observing

def _plain(v):
    """A comparable copy of v (a tensor as ('T', dtype, shape, values, requires_grad, is_leaf))."""
    if isinstance(v, jitgrad.Tensor):
        return ("T", str(v.dtype), tuple(v.shape), np.array(v.detach().numpy(), copy=True),
                v.requires_grad, v.is_leaf)
    if isinstance(v, dict):
        return {"dict": [(k, _plain(x)) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))]}
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [_plain(x) for x in v])
    if isinstance(v, (int, float, str, bool, type(None))):
        return v
    return repr(v)


def observe(s, rec):
    obs = []
    if isinstance(rec, BaseException):
        obs.append(("raised", (type(rec).__name__, str(rec))))
        rec = {}
    for name in ("res", "res2", "loss", "grads"):
        if name in rec:
            obs.append((name, _plain(rec[name])))
    for name in ("res", "res2"):
        if name in rec:         # (the input returned: the argument itself, as eagerly)
            out = parts(rec[name])
            obs.append((name + ".is_arg", [o is rec[name + ".arg"] for o in out]))
            obs.append((name + ".one_object", out[0] is out[1]))
            s.held += [o for o in out if o is not None]
    for j, p in enumerate(s.params):
        obs.append((f"param{j}", _plain(p)))
        obs.append((f"param{j}.grad", _plain(p.grad)))
    for j, t in enumerate(s.reused.values()):
        obs.append((f"input{j}.grad", _plain(t[0].grad)))
        obs.append((f"input{j}b.grad", _plain(t[1].grad)))
    for j, bn in enumerate(s.bns):
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            obs.append((f"bn{j}.{name}", _plain(getattr(bn, name))))
    if s.opt is not None:
        obs.append(("opt.state_dict", _plain(s.opt.state_dict())))
    obs.append(("training", [m.training for m in s.model.modules()]))
    obs.append(("held", [_plain(h) for h in s.held]))
    return obs


def run(c, compiled):
    """The observations after each call, and the compiled module's traces (None if eager)."""
    s = build(c, compiled)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # (the eager fallback's warning: see traces)
        for k in range(c["n_calls"]):
            between(c, s, k)
            try:
                rec = call(s, k)
            except Exception as e:            # noqa: BLE001 (compared with eager's)
                rec = e
                s.pending = None
            seen.append(observe(s, rec))
    # the engine is usable after whatever happened
    t = jitgrad.ones(3, requires_grad=True)
    (t * t).sum().backward()
    assert t.grad.tolist() == [2.0, 2.0, 2.0], "the engine is left broken"
    return seen, (s.fn._compiled.traces if compiled else None)


def _compare(want, got, where, loose, rtol, floor):
    """Raise AssertionError at the first difference. rtol None: bit for bit; else an array may
    differ by rtol times the larger of its own largest magnitude and floor (the call's largest
    parameter magnitude). loose gets (name, error) of the values that needed it."""
    if isinstance(want, tuple) and len(want) == 6 and want[0] == "T":
        assert isinstance(got, tuple) and len(got) == 6 and got[0] == "T", \
            f"{where}: eager {want!r}, compiled {got!r}"
        assert (want[1], want[2], want[4], want[5]) == (got[1], got[2], got[4], got[5]), \
            f"{where}: (dtype, shape, requires_grad, is_leaf): eager " \
            f"{(want[1], want[2], want[4], want[5])}, compiled {(got[1], got[2], got[4], got[5])}"
        compare_arrays(want[3], got[3], where, loose, rtol and RTOL, floor)
        return
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: eager {want!r}, compiled {got!r}"
        wk, gk = [k for k, _ in want["dict"]], [k for k, _ in got["dict"]]
        assert wk == gk, f"{where}: keys: eager {wk}, compiled {gk}"
        for (k, a), (_, b) in zip(want["dict"], got["dict"]):
            _compare(a, b, f"{where}[{k!r}]", loose, rtol, floor)
        return
    if isinstance(want, tuple) and len(want) == 2 and isinstance(want[1], list):
        assert isinstance(got, tuple) and got[0] == want[0] and len(got[1]) == len(want[1]), \
            f"{where}: eager {want!r}, compiled {got!r}"
        for i, (a, b) in enumerate(zip(want[1], got[1])):
            _compare(a, b, f"{where}[{i}]", loose, rtol, floor)
        return
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), \
            f"{where}: eager {want!r}, compiled {got!r}"
        for i, (a, b) in enumerate(zip(want, got)):
            _compare(a, b, f"{where}[{i}]", loose, rtol, floor)
        return
    assert type(want) is type(got) and want == got, f"{where}: eager {want!r}, compiled {got!r}"


def check(seed):
    """Run the seed's case eagerly and compiled; returns (loose, traces), or raises
    AssertionError listing the first differences."""
    c = draw(seed)
    want, _ = run(c, compiled=False)
    got, traces = run(c, compiled=True)
    loose, errors = [], []
    rtol = None if exact(c) else RTOL[c["dtype"]]
    for k, (w, g) in enumerate(zip(want, got)):
        dw, dg = dict(w), dict(g)
        if dw.get("raised") != dg.get("raised"):
            errors.append(f"call {k}: raised: eager {dw.get('raised')}, compiled {dg.get('raised')}")
            continue
        names_w, names_g = [n for n, _ in w], [n for n, _ in g]
        if names_w != names_g:
            errors.append(f"call {k}: entries: eager only {sorted(set(names_w) - set(names_g))}, "
                          f"compiled only {sorted(set(names_g) - set(names_w))}")
            continue
        floor = max(float(np.nanmax(np.abs(v[3]), initial=0.0)) for n, v in w
                    if n.startswith("param") and "." not in n)
        for (name, a), (_, b) in zip(w, g):
            try:
                _compare(a, b, f"call {k}: {name}", loose, rtol, floor)
            except AssertionError as e:
                errors.append(str(e))
    if errors:
        raise AssertionError(f"{len(errors)} differences; the first:\n" +
                             "\n".join(e[:700] for e in errors[:3]))
    return loose, traces


def describe(seed):
    return ", ".join(f"{k}={v}" for k, v in draw(seed).items() if k != "seed")


@pytest.mark.parametrize("seed", SEEDS)
def test_compiled_module_matches_eager(seed):
    try:
        check(seed)
    except AssertionError as e:
        raise AssertionError(f"seed {seed} ({describe(seed)}):\n{e}") from None


if __name__ == "__main__":              # a summary: failing seeds, RTOL used, eager fallbacks
    summary(check, describe, SEEDS, sys.argv[1:])

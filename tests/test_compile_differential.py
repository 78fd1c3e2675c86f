"""Differential test: jitgrad.compile(step) against the same step run eagerly.

Each seed draws a small training setup (Python choices from random.Random(seed), values from
jitgrad.manual_seed and numpy's default_rng) and builds it twice: one copy runs the step
eagerly, the other through jitgrad.compile. Both are called with the same arguments 4-6 times
(the first compiled call traces, later ones replay or trace again), with the same actions
between calls (train/eval, lr and other hyperparameter changes, scheduler steps, freezing,
in-place changes of parameters, .grads or arguments, a param group added, a state dict
loaded, reseeding, ...). The ingredients: an MLP or a conv net (with a pooling layer), BatchNorm
(affine or not, with or without running statistics, momentum=None), LayerNorm, GroupNorm,
InstanceNorm, dropout variants, losses with their options (weights, ignore_index, label
smoothing, probability targets), the optimizers with their options, LR schedulers stepped inside
or outside the step, gradient clipping, micro-batches, gradient penalties, updates every other
call (accumulation), a parameter average kept in place, .grads changed before the update, a
second backward through a retained graph, a second optimizer, and train()/eval() inside the
step. After every call everything a caller can see must be the same: the result
(types, dtypes, shapes, values; which returned tensor is an argument, a parameter's .grad or
one returned before), every parameter (values, requires_grad, version), every .grad (None or
not, values, whether it is the object of the call before), the arguments' .grads, every
tensor held from earlier calls, optimizer.state_dict(), the scheduler's state_dict(),
BatchNorm's running statistics, and the exception (type and message) where eager raises.

What a replay cannot do runs eagerly with a warning (README, "Compiled steps"): those cases
are compared the same way. Documented limitations are not drawn: nothing here sets Python
state inside the step that a replay would skip (an optimizer's lr set in the step), nor reads
changing list or dict elements.

Values are compared bit for bit when the case has no exp/log/tanh/erf (see exact()); with
them, numpy's vectorised math and the C library's may differ in the last bit (README), which
a few steps carry through cancelling sums and Adam-like updates, so those cases compare within
RTOL times the larger of each array's largest magnitude and the call's largest parameter
magnitude (over seeds 0-249 the worst needed is 4e-7 in float32 and 7e-16 in float64; over
14000 seeds about one float32 run in 800 drifts further, to 1e-6..3e-5: training that diverges
(maximize, sums with a gradient penalty), gradients through a normalisation and an adaptive
optimizer; 8e-4 for an l1 loss after BatchNorm of a batch of 2, whose sign flipped: raise RTOL
if SEEDS is extended).
`python tests/test_compile_differential.py [seeds | -FIRST LAST]` prints the failing seeds,
which needed RTOL, how many replayed, and why the others ran eagerly.

The differences these cases found are small cases in tests/test_compile.py.
"""
import copy
import random
import sys
import warnings

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as F
from jitgrad import nn

SEEDS = range(250)
RTOL = {"float32": 1e-6, "float64": 1e-12}
GLOBAL_SCALE = 1.0                          # a global the step reads (rebinding it is a guard)

ACTS = {
    "relu": F.relu, "tanh": jitgrad.tanh, "sigmoid": jitgrad.sigmoid, "gelu": F.gelu,
    "gelu_tanh": lambda h: F.gelu(h, approximate="tanh"),
    "leaky_relu": lambda h: F.leaky_relu(h, 0.1), "softplus": F.softplus,
}
MODULE_ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
               "leaky_relu": lambda: nn.LeakyReLU(0.1), "softplus": nn.Softplus}
INPLACE = {
    "relu_": lambda h: h.relu_(), "relu_inplace": lambda h: F.relu(h, inplace=True),
    "mul_": lambda h: h.mul_(0.5), "add_": lambda h: h.add_(0.25),
    "clamp_": lambda h: h.clamp_(-1.0, 1.0),
}
LOSSES = ["mse", "l1", "smooth_l1", "bce_logits", "cross_entropy", "nll"]
OPTIMIZERS = ["sgd", "sgd_momentum", "sgd_nesterov", "adam", "adamw", "rmsprop", "adagrad"]
MANUAL = ["manual_isub", "manual_sub_", "manual_data", "none"]
BETWEEN = ["eval", "train", "set_lr", "hyper", "sched_outside", "freeze", "unfreeze",
           "scale_param", "replace_data", "replace_param", "dropout_p", "grad_none_outside",
           "zero_outside", "scale_grad", "mutate_arg", "mutate_captured", "global",
           "add_group", "load_state"]


# ----------------------------------------------------------------------------- the draw

def draw(seed):
    """The choices of this seed: a dict of plain Python values (shared by both copies)."""
    r = random.Random(seed)
    c = {"seed": seed}
    c["dtype"] = r.choice(["float32", "float64"])
    c["arch"] = r.choice(["mlp", "mlp", "conv1d", "conv2d"])
    c["n_in"] = r.randint(1, 4)
    c["hidden"] = r.choice([3, 4, 6])
    c["length"] = r.randint(3, 5)
    c["kernel"] = r.randint(1, 3)
    c["stride"] = r.choice([1, 1, 2])
    c["padding"] = r.choice([0, 1])
    c["pool"] = r.choice(["mean", "flatten"])
    c["bn"] = r.random() < 0.2              # (its variant: draw_more)
    c["start_eval"] = c["bn"] and r.random() < 0.4
    c["stop"] = r.random() < 0.05           # the first layer's output detached
    c["act"] = r.choice(sorted(ACTS))
    c["act_module"] = r.random() < 0.3 and c["act"] in MODULE_ACTS
    c["second"] = r.choice([None, None] + sorted(ACTS)) if c["arch"] == "mlp" else None
    c["mid_twice"] = c["second"] is not None and r.random() < 0.3   # one layer used twice
    c["dropout"] = r.choice([0, 0, 0, 0.2, 0.5])
    c["dropout_module"] = r.random() < 0.5
    c["inplace"] = r.choice(sorted(INPLACE)) if r.random() < 0.1 else None   # (runs eagerly)
    c["inplace_at"] = r.choice(["pre", "post"])
    c["extra"] = r.random() < 0.2           # a captured bias added to the output
    c["loss"] = r.choice(LOSSES)
    c["n_out"] = r.randint(2, 4) if c["loss"] in ("cross_entropy", "nll") else r.randint(1, 3)
    c["reduction"] = r.choice(["mean", "mean", "mean", "sum"])
    c["loss_opt"] = r.choice([None, None, None, "weight", "smoothing"])
    c["micro"] = r.random() < 0.1           # two micro-batches, one backward each
    c["opt"] = r.choice(OPTIMIZERS * 2 + MANUAL)
    c["groups"] = r.choice([1, 1, 2])
    c["momentum"] = r.choice([0.0, 0.9])
    c["weight_decay"] = r.choice([0, 0, 1e-2])
    c["amsgrad"] = r.random() < 0.3
    c["centered"] = r.random() < 0.3
    c["maximize"] = r.random() < 0.1
    c["sched"] = r.choice([None, None, "step", "exp", "cos"]) if c["opt"] in OPTIMIZERS else None
    c["clip"] = r.choice(["norm", "norm_inf", "value"]) if r.random() < 0.12 else None  # (eagerly)
    c["max_norm"] = r.choice([0.05, 1.0])
    c["zero"] = r.choice(["none", "set_none", "opt", "opt_keep", "model", "model_keep"])
    if c["zero"].startswith("opt") and c["opt"] in MANUAL:
        c["zero"] = "set_none"
    c["zero_at"] = r.choice(["first", "first", "last"])
    c["penalty"] = r.choice([None] * 10 + ["params", "input"])
    # a learning rate argument, for the manual updates (an optimizer's lr set inside the step
    # is a Python side effect that a replay does not repeat, README: 'set_lr' changes it
    # between calls instead)
    c["lr_arg"] = r.choice([None, "float_const", "float_changing", "tensor"])
    if not c["opt"].startswith("manual"):
        c["lr_arg"] = None
    c["scale_arg"] = r.choice([None, None, None, "float_const", "float_changing", "tensor"])
    c["target_arg"] = r.random() < 0.75
    c["kwargs"] = r.random() < 0.3          # y, lr, scale passed by keyword
    c["ret"] = r.choice(["loss", "loss", "detach", "tuple", "out_detach", "none", "grad", "arg",
                         "norm", "int", "twice", "view"] * 3 + ["item", "lr"])
    c["hold"] = r.random() < 0.5            # keep every returned tensor and .grad seen
    c["reuse_args"] = r.random() < 0.25     # the same argument tensors at every call
    n = r.randint(4, 6)
    c["n_calls"] = n
    vary = r.random() < 0.35 and not c["reuse_args"] and c["target_arg"]
    base = r.randint(2, 6)
    c["batches"] = [r.choice([base, base, base + 1, 3]) if vary else base for _ in range(n)]
    c["lengths"] = [c["length"]] * n
    if vary and c["arch"] != "mlp" and c["pool"] == "mean" and r.random() < 0.5:
        c["lengths"] = [r.choice([c["length"], c["length"] + 1]) for _ in range(n)]
    c["lrs"] = [r.choice([0.05, 0.1]) if c["lr_arg"] == "float_changing" else 0.05
                for _ in range(n)]
    c["scales"] = [r.choice([0.5, 1.0, 2.0]) if c["scale_arg"] in ("float_changing", "tensor")
                   else 1.5 for _ in range(n)]
    c["between"] = {k: r.choice(BETWEEN) for k in range(1, n) if r.random() < 0.3}
    c["bad"] = None
    if r.random() < 0.15:
        c["bad"] = (r.randint(1, n - 1),
                    r.choice(["features", "dtype", "batch1", "target_oob", "nan", "no_grad"]))
    draw_more(r, c)
    return c


def draw_more(r, c):
    """The ingredients added later, drawn after the others (earlier choices stay the seed's)."""
    conv, n = c["arch"] != "mlp", c["n_calls"]
    # a normalisation after the first layer: BatchNorm's variants, or one without batch stats
    c["norm"] = None
    if c["bn"]:
        c["norm"] = r.choice(["bn", "bn", "bn_noaffine", "bn_nostats", "bn_momnone"])
    elif r.random() < 0.3:
        c["norm"] = r.choice(["layer", "layer_noaffine", "group", "group_noaffine"] +
                             ["instance", "instance_affine", "instance_stats"] * conv)
    c["groups_norm"] = r.choice([d for d in (1, 2, 3) if c["hidden"] % d == 0])
    if c["norm"] and c["n_in"] == 1:  # (one weight per channel: a norm's output ignores its
        c["n_in"] = 2                 # scale, so its gradient would be rounding noise)
    if c["norm"] and r.random() < 0.4:   # train/eval switched between calls
        c["between"][r.randint(1, n - 1)] = r.choice(["eval", "train"])
    c["pool_layer"] = r.choice([None, None, "max", "avg", "adaptive_max", "adaptive_avg"]) \
        if conv else None
    c["ceil"] = r.random() < 0.3
    c["drop_kind"] = r.choice(["plain", "plain", "alpha", "feature", "feature_alpha"]) \
        if c["dropout"] else "plain"
    if r.random() < 0.3:
        c["loss"] = r.choice(["huber", "bce", "cross_entropy", "nll", "ce_module", "ce_probs"])
        c["loss_opt"] = r.choice([None, "weight", "smoothing", "ignore", "weight_ignore",
                                  "weight_smoothing"])
        classes = c["loss"] in ("cross_entropy", "nll", "ce_module")
        c["n_out"] = r.randint(2, 4) if classes or c["loss"] == "ce_probs" else r.randint(1, 3)
    if c["opt"] in OPTIMIZERS and r.random() < 0.35:
        c["opt"] = r.choice(["adamax", "nadam", "radam", "adadelta", "asgd", "rprop",
                             "adam_options", "sgd_options", "adagrad_options"])
    c["decoupled"] = r.random() < 0.5
    if c["opt"] not in MANUAL and r.random() < 0.35:
        c["sched"] = r.choice(["onecycle", "cyclic", "multistep", "linear", "lambda", "poly",
                               "warm_restarts", "sequential", "chained", "plateau"])
    c["sched_at"] = r.choice(["inside", "inside", "outside"])
    c["accum"] = r.random() < 0.1     # the update only every other call (a Python bool argument)
    if c["clip"] and r.random() < 0.5:
        c["clip"] = r.choice(["norm1", "norm_gen", "value_gen"])
    if r.random() < 0.1:
        c["between"][r.randint(1, n - 1)] = "reseed"
    # an average of the parameters kept by the step (under no_grad, in place)
    c["ema"] = r.choice([None] * 8 + ["isub", "mul_add", "copy_"])
    # the .grads changed by the step before the update (gradient unscaling, noise)
    c["grad_op"] = r.choice([None] * 12 + ["mul_", "mul_", "assign_div", "add_noise"])
    c["retain"] = r.random() < 0.08   # a second loss backward through the retained graph
    # a second optimizer (Adam) for the layers after the first one
    c["two_opts"] = c["opt"] not in MANUAL and r.random() < 0.12
    # the step sets the mode itself: train() first, or an eval() validation forward under
    # no_grad before train() again
    c["mode_inside"] = r.choice([None] * 8 + ["train_first", "validate"])
    # an Embedding of captured indices added to the output (a replay guards their values),
    # the indices changed in place between calls
    c["embed"] = r.random() < 0.1
    if r.random() < 0.15:             # the model's state or its norm's settings changed
        c["between"][r.randint(1, n - 1)] = r.choice(["load_model", "norm_setting",
                                                       "reset_stats"])
    if c["embed"] and r.random() < 0.5:
        c["between"][r.randint(1, n - 1)] = "mutate_index"


def exact(c):
    """Whether the case must match bit for bit: no exp, log, tanh or erf anywhere."""
    piecewise = {"relu", "leaky_relu", None}
    return c["act"] in piecewise and c["second"] in piecewise and \
        c["loss"] in ("mse", "l1", "smooth_l1", "huber")


# ----------------------------------------------------------------------------- the setup

class Setup:
    pass


DROPOUTS = {"plain": (nn.Dropout, F.dropout), "alpha": (nn.AlphaDropout, F.alpha_dropout),
            "feature1d": (nn.Dropout1d, F.dropout1d), "feature2d": (nn.Dropout2d, F.dropout2d),
            "feature_alpha": (nn.FeatureAlphaDropout, F.feature_alpha_dropout)}


def dropout_kind(c):
    if c["drop_kind"] == "feature":     # (an MLP's (N, C) is one unbatched sample to Dropout1d)
        return "feature2d" if c["arch"] == "conv2d" else "feature1d"
    return c["drop_kind"]


def norm_layer(c):
    kind, arch, hid = c["norm"], c["arch"], c["hidden"]
    if kind.startswith("bn"):
        return (nn.BatchNorm2d if arch == "conv2d" else nn.BatchNorm1d)(
            hid, affine=kind != "bn_noaffine", track_running_stats=kind != "bn_nostats",
            momentum=None if kind == "bn_momnone" else 0.1)
    if kind.startswith("layer"):
        return nn.LayerNorm(hid, elementwise_affine=kind == "layer")
    if kind.startswith("group"):
        return nn.GroupNorm(c["groups_norm"], hid, affine=kind == "group")
    return (nn.InstanceNorm1d if arch == "conv1d" else nn.InstanceNorm2d)(
        hid, affine=kind == "instance_affine", track_running_stats=kind == "instance_stats")


def pool_layer(c, lout):
    """A pooling layer after a conv, and its output's length."""
    kind, two_d = c["pool_layer"], c["arch"] == "conv2d"
    if kind.startswith("adaptive"):
        cls = {"adaptive_max": (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d),
               "adaptive_avg": (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)}[kind][two_d]
        return cls(2), 2
    cls = {"max": (nn.MaxPool1d, nn.MaxPool2d), "avg": (nn.AvgPool1d, nn.AvgPool2d)}[kind][two_d]
    kp = min(2, lout)
    out = (-(-(lout - kp) // kp) if c["ceil"] else (lout - kp) // kp) + 1
    return cls(kp, ceil_mode=c["ceil"]), out


def more_schedulers(c, opt):
    LR = jitgrad.optim.lr_scheduler
    kind, n = c["sched"], c["n_calls"]
    cycle = "momentum" in opt.defaults or "betas" in opt.defaults
    if kind == "onecycle":
        return LR.OneCycleLR(opt, max_lr=0.05, total_steps=3 * n, cycle_momentum=cycle)
    if kind == "cyclic":
        return LR.CyclicLR(opt, base_lr=0.01, max_lr=0.05, step_size_up=2, mode="triangular2",
                           cycle_momentum=cycle)
    if kind == "multistep":
        return LR.MultiStepLR(opt, milestones=[1, 3], gamma=0.5)
    if kind == "linear":
        return LR.LinearLR(opt, start_factor=0.5, total_iters=3)
    if kind == "lambda":
        return LR.LambdaLR(opt, lr_lambda=lambda epoch: 1.0 / (1 + epoch))
    if kind == "poly":
        return LR.PolynomialLR(opt, total_iters=4, power=2.0)
    if kind == "warm_restarts":
        return LR.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2, eta_min=1e-3)
    if kind == "sequential":
        return LR.SequentialLR(opt, [LR.ConstantLR(opt, factor=0.5, total_iters=2),
                                     LR.ExponentialLR(opt, gamma=0.9)], milestones=[2])
    if kind == "chained":
        return LR.ChainedScheduler([LR.StepLR(opt, 2, 0.5), LR.ExponentialLR(opt, 0.9)])
    return LR.ReduceLROnPlateau(opt, patience=0, factor=0.5)


def step_scheduler(sched, metric):
    """ReduceLROnPlateau reads a metric (inside the step: the loss, a Python read of a value)."""
    if isinstance(sched, jitgrad.optim.lr_scheduler.ReduceLROnPlateau):
        sched.step(metric)
    else:
        sched.step()


def build(c):
    """One copy of the seed's setup: model, optimizer, scheduler, step, and each call's
    arguments (new tensors, equal to the other copy's)."""
    global GLOBAL_SCALE
    GLOBAL_SCALE = 1.0
    s = Setup()
    dt = getattr(jitgrad, c["dtype"])
    jitgrad.manual_seed(c["seed"])
    arch, hid, n_in, n_out = c["arch"], c["hidden"], c["n_in"], c["n_out"]
    layers = {}
    # (no bias before a norm of each channel: its gradient would be rounding noise around zero)
    bias = c["norm"] is None or c["norm"].startswith("layer")
    if arch == "mlp":
        layers["first"] = nn.Linear(n_in, hid, bias=bias)
        width = hid
    else:
        conv = nn.Conv1d if arch == "conv1d" else nn.Conv2d
        k = min(c["kernel"], c["length"])
        layers["first"] = conv(n_in, hid, k, stride=c["stride"], padding=c["padding"], bias=bias)
        lout = (c["length"] + 2 * c["padding"] - k) // c["stride"] + 1
        if c["pool_layer"]:
            layers["pool"], lout = pool_layer(c, lout)
        width = hid if c["pool"] == "mean" else hid * lout ** (1 if arch == "conv1d" else 2)
    if c["norm"]:
        layers["norm"] = norm_layer(c)
    if c["act_module"]:
        layers["act"] = MODULE_ACTS[c["act"]]()
    if c["dropout"] and c["dropout_module"]:
        layers["drop"] = DROPOUTS[dropout_kind(c)][0](c["dropout"])
    if c["second"]:
        layers["mid"] = nn.Linear(width, hid)
        if c["mid_twice"]:
            layers["mid2"] = nn.Linear(hid, hid)
        width = hid
    layers["head"] = nn.Linear(width, n_out)
    if c["embed"]:
        layers["embed"] = nn.Embedding(5, n_out)
    s.index = jitgrad.tensor([1, 3, 1])
    model = nn.ModuleDict(layers).to(dt)
    if c["start_eval"]:
        model.eval()
    s.model, s.layers = model, layers
    params = list(model.parameters())
    s.params = params
    s.bns = [m for m in layers.values() if hasattr(m, "running_mean")]
    extra = jitgrad.zeros(n_out, dtype=dt, requires_grad=True) if c["extra"] else None
    s.extra = extra

    o, hp = c["opt"], dict(weight_decay=c["weight_decay"])
    first = list(layers["first"].parameters())
    rest = [p for p in params if all(p is not q for q in first)]
    if c["two_opts"]:
        groups = first
    elif c["groups"] == 2:
        groups = [{"params": first, "lr": 0.02}, {"params": rest}]
    else:
        groups = params
    s.opt2 = jitgrad.optim.Adam(rest, lr=0.01) if c["two_opts"] else None
    opt = None
    if c["maximize"] and o not in ("sgd_nesterov", *MANUAL):
        hp["maximize"] = True
    if o == "sgd":
        opt = jitgrad.optim.SGD(groups, lr=0.05, **hp)
    elif o == "sgd_momentum":
        opt = jitgrad.optim.SGD(groups, lr=0.05, momentum=0.9, dampening=0.1, **hp)
    elif o == "sgd_nesterov":
        opt = jitgrad.optim.SGD(groups, lr=0.05, momentum=0.9, nesterov=True, **hp)
    elif o == "adam":
        opt = jitgrad.optim.Adam(groups, lr=0.01, amsgrad=c["amsgrad"], **hp)
    elif o == "adamw":
        opt = jitgrad.optim.AdamW(groups, lr=0.01, amsgrad=c["amsgrad"], **hp)
    elif o == "rmsprop":
        opt = jitgrad.optim.RMSprop(groups, lr=0.01, momentum=c["momentum"],
                                    centered=c["centered"], **hp)
    elif o == "adagrad":
        opt = jitgrad.optim.Adagrad(groups, lr=0.05, **hp)
    elif o == "adamax":
        opt = jitgrad.optim.Adamax(groups, lr=0.01, **hp)
    elif o == "nadam":
        opt = jitgrad.optim.NAdam(groups, lr=0.01, decoupled_weight_decay=c["decoupled"], **hp)
    elif o == "radam":
        opt = jitgrad.optim.RAdam(groups, lr=0.01, decoupled_weight_decay=c["decoupled"], **hp)
    elif o == "adadelta":
        opt = jitgrad.optim.Adadelta(groups, lr=0.5, **hp)
    elif o == "asgd":                 # (t0=2: the average starts within the calls)
        opt = jitgrad.optim.ASGD(groups, lr=0.05, t0=2, **hp)
    elif o == "rprop":
        del hp["weight_decay"]
        opt = jitgrad.optim.Rprop(groups, lr=0.01, **hp)
    elif o == "adam_options":
        opt = jitgrad.optim.Adam(groups, lr=0.01, betas=(0.8, 0.95), eps=1e-6,
                                 amsgrad=c["amsgrad"], decoupled_weight_decay=c["decoupled"], **hp)
    elif o == "sgd_options":
        nesterov = c["decoupled"]
        opt = jitgrad.optim.SGD(groups, lr=0.05, momentum=0.5, nesterov=nesterov,
                                dampening=0 if nesterov else 0.5, **hp)
    elif o == "adagrad_options":
        opt = jitgrad.optim.Adagrad(groups, lr=0.05, lr_decay=0.1, initial_accumulator_value=0.1,
                                    eps=1e-8, **hp)
    s.opt = opt
    sched = None
    LR = jitgrad.optim.lr_scheduler
    if c["sched"] == "step":
        sched = LR.StepLR(opt, step_size=2, gamma=0.5)
    elif c["sched"] == "exp":
        sched = LR.ExponentialLR(opt, gamma=0.9)
    elif c["sched"] == "cos":
        sched = LR.CosineAnnealingLR(opt, T_max=3)
    elif c["sched"] is not None:
        sched = more_schedulers(c, opt)
    s.sched = sched

    # -- the arguments of every call (numpy values from the seed; new tensors per copy)
    rng = np.random.default_rng(c["seed"])
    npdt = np.float32 if c["dtype"] == "float32" else np.float64
    classes = c["loss"] in ("cross_entropy", "nll", "ce_module")
    calls = []
    for k in range(c["n_calls"]):
        B, L = c["batches"][k], c["lengths"][k]
        shape = {"mlp": (B, n_in), "conv1d": (B, n_in, L), "conv2d": (B, n_in, L, L)}[arch]
        x = rng.standard_normal(shape).astype(npdt)
        if classes:
            y = rng.integers(0, n_out, B).astype(np.int64)
            if c["loss_opt"] in ("ignore", "smoothing_ignore"):
                y[::3] = -100
        elif c["loss"] in ("bce_logits", "bce"):
            y = rng.random((B, n_out)).astype(npdt)
        elif c["loss"] == "ce_probs":
            y = rng.random((B, n_out)).astype(npdt)
            y /= y.sum(1, keepdims=True)
        else:
            y = rng.standard_normal((B, n_out)).astype(npdt)
        calls.append((x, y))
    class_weight = jitgrad.tensor(rng.random(n_out).astype(npdt) + 0.5)
    bad = c["bad"]
    if bad is not None:
        k, kind = bad
        x, y = calls[k]
        if kind == "features":
            x = np.concatenate([x, x[:, :1]], axis=1)
        elif kind == "dtype":
            x = x.astype(np.float64 if npdt is np.float32 else np.float32)
        elif kind == "batch1":
            x, y = x[:1], y[:1]
        elif kind == "target_oob" and classes:
            y = y.copy()
            y[0] = n_out + 2
        elif kind == "nan":
            x = x.copy()
            x.flat[0] = np.nan
        calls[k] = (x, y)

    def tensors(k):
        x, y = calls[k]
        return jitgrad.tensor(x, requires_grad=c["penalty"] == "input"), jitgrad.tensor(y)
    if c["reuse_args"]:
        fixed = tensors(0)
        s.args = [tensors(k) if bad is not None and k == bad[0] else fixed
                  for k in range(c["n_calls"])]
    else:
        s.args = [tensors(k) for k in range(c["n_calls"])]
    y_captured = tensors(0)[1]
    s.y_captured, s.class_weight = y_captured, class_weight

    s.call_args = []
    for k, (X, y) in enumerate(s.args):
        kw = {}
        if c["target_arg"]:
            kw["y"] = y
        if c["lr_arg"] in ("float_const", "float_changing"):
            kw["lr"] = c["lrs"][k]
        elif c["lr_arg"] == "tensor":
            kw["lr"] = jitgrad.tensor(c["lrs"][k] * (1 + 0.1 * k), dtype=dt)
        if c["scale_arg"] in ("float_const", "float_changing"):
            kw["scale"] = c["scales"][k]
        elif c["scale_arg"] == "tensor":
            kw["scale"] = jitgrad.tensor(c["scales"][k], dtype=dt)
        if c["accum"]:
            kw["update"] = k % 2 == 1
        if c["kwargs"]:
            s.call_args.append(((X,), kw))
        else:
            s.call_args.append(((X, kw.get("y"), kw.get("lr"), kw.get("scale")) +
                                ((kw["update"],) if "update" in kw else ()), {}))

    # -- the step (what it reads from c is copied into local constants first)
    act = layers["act"] if "act" in layers else ACTS[c["act"]]
    second = ACTS[c["second"]] if c["second"] else None
    inplace, inplace_at = INPLACE.get(c["inplace"]), c["inplace_at"]
    p_drop, drop_module, stop = c["dropout"], "drop" in layers, c["stop"]
    drop_fn = DROPOUTS[dropout_kind(c)][1]
    pool, loss_name, red, loss_opt = c["pool"], c["loss"], c["reduction"], c["loss_opt"]
    opts = set((loss_opt or "").split("_"))
    weight = class_weight if "weight" in opts else None
    smoothing = 0.1 if "smoothing" in opts else 0.0
    ignore = {"ignore": -100, "weight_ignore": 1}.get(loss_opt, -100)
    ce_module = nn.CrossEntropyLoss(weight=weight, ignore_index=ignore, reduction=c["reduction"],
                                    label_smoothing=smoothing)
    norm_channels_last = c["norm"] in ("layer", "layer_noaffine") and arch != "mlp"
    clip, max_norm, micro = c["clip"], c["max_norm"], c["micro"]
    sched_inside = sched is not None and c["sched_at"] == "inside"
    ema, grad_op, retain = c["ema"], c["grad_op"], c["retain"]
    opt2, mode_inside, index = s.opt2, c["mode_inside"], s.index
    averages = [p.detach().clone() for p in params]
    s.averages = averages if ema else []
    zero, zero_at, penalty = c["zero"], c["zero_at"], c["penalty"]
    ret = c["ret"]

    def forward(X):
        h = layers["first"](X)
        if stop:
            h = h.detach()
        if inplace is not None and inplace_at == "pre":
            h = inplace(h)
        if norm_channels_last:       # (LayerNorm over a conv's channels)
            h = layers["norm"](h.movedim(1, -1)).movedim(-1, 1)
        elif "norm" in layers:
            h = layers["norm"](h)
        h = act(h)
        if inplace is not None and inplace_at == "post":
            h = inplace(h)
        if p_drop:
            h = layers["drop"](h) if drop_module else drop_fn(h, p_drop, training=model.training)
        if "pool" in layers:
            h = layers["pool"](h)
        if h.dim() > 2:
            h = h.mean(tuple(range(2, h.dim()))) if pool == "mean" else h.flatten(1)
        if second is not None:
            h = second(layers["mid"](h))
            if "mid2" in layers:
                h = second(layers["mid2"](h)) + second(layers["mid2"](h * 0.5))
        out = layers["head"](h)
        if "embed" in layers:
            out = out + layers["embed"](index).mean(0)
        return out if extra is None else out + extra

    def loss_of(out, y):
        if loss_name == "mse":
            return F.mse_loss(out, y, reduction=red)
        if loss_name == "l1":
            return F.l1_loss(out, y, reduction=red)
        if loss_name == "smooth_l1":
            return F.smooth_l1_loss(out, y, reduction=red, beta=0.5 if loss_opt else 1.0)
        if loss_name == "huber":
            return F.huber_loss(out, y, reduction=red, delta=0.5 if loss_opt else 1.0)
        if loss_name == "bce_logits":
            return F.binary_cross_entropy_with_logits(out, y, reduction=red, pos_weight=weight)
        if loss_name == "bce":
            return F.binary_cross_entropy(jitgrad.sigmoid(out), y, reduction=red, weight=weight)
        if loss_name in ("cross_entropy", "ce_probs"):
            return F.cross_entropy(out, y, reduction=red, weight=weight, ignore_index=ignore,
                                   label_smoothing=smoothing)
        if loss_name == "ce_module":
            return ce_module(out, y)
        return F.nll_loss(F.log_softmax(out, dim=1), y, reduction=red, weight=weight,
                          ignore_index=ignore)

    def clear():
        if zero == "set_none":
            for p in params:
                p.grad = None
        elif zero == "opt":
            opt.zero_grad()
            if opt2 is not None:
                opt2.zero_grad()
        elif zero == "opt_keep":
            opt.zero_grad(set_to_none=False)
            if opt2 is not None:
                opt2.zero_grad(set_to_none=False)
        elif zero == "model":
            model.zero_grad()
        elif zero == "model_keep":
            model.zero_grad(set_to_none=False)

    def step(X, y=None, lr=None, scale=None, update=True):
        if y is None:
            y = y_captured
        if lr is None:
            lr = 0.05
        if mode_inside == "train_first":
            model.train()
        elif mode_inside == "validate":
            model.eval()
            with jitgrad.no_grad():
                validation = loss_of(forward(X), y)
            model.train()
        if zero_at == "first" and update:
            clear()
        if micro and X.shape[0] >= 2:
            half = X.shape[0] // 2
            parts = [(X[:half], y[:half]), (X[half:], y[half:])]
        else:
            parts = [(X, y)]
        for Xp, yp in parts:
            out = forward(Xp)
            loss = loss_of(out, yp) * GLOBAL_SCALE
            if scale is not None:
                loss = loss * scale
            if penalty == "params":
                ps = [p for p in params if p.requires_grad]
                gs = jitgrad.autograd.grad(loss, ps, create_graph=True)
                loss = loss + 0.1 * sum((g * g).sum() for g in gs)
            elif penalty == "input":
                g, = jitgrad.autograd.grad(loss, Xp, create_graph=True)
                loss = loss + 0.1 * (g * g).sum()
            if retain:
                (loss / len(parts)).backward(retain_graph=True)
                (out * out).mean().backward()
            else:
                (loss / len(parts)).backward()
        if grad_op is not None:
            for p in params:
                if p.grad is not None:
                    if grad_op == "assign_div":
                        p.grad = p.grad / 2.0
                    elif grad_op == "mul_":
                        p.grad.mul_(0.5)
                    else:
                        p.grad = p.grad + 0.01 * jitgrad.randn_like(p.grad)
        norm = None
        if not update:               # (accumulating: the update is the next call's)
            return loss.detach()
        if clip == "norm":
            norm = nn.utils.clip_grad_norm_(params, max_norm)
        elif clip == "norm_inf":
            norm = nn.utils.clip_grad_norm_(params, max_norm, norm_type=float("inf"))
        elif clip == "norm1":
            norm = nn.utils.clip_grad_norm_(params, max_norm, norm_type=1.0)
        elif clip == "norm_gen":
            norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        elif clip == "value":
            nn.utils.clip_grad_value_(params, 0.05)
        elif clip == "value_gen":
            nn.utils.clip_grad_value_(model.parameters(), 0.05)
        if opt is not None:
            opt.step()
            if opt2 is not None:
                opt2.step()
        elif o == "manual_isub":
            with jitgrad.no_grad():
                for p in params:
                    if p.grad is not None:
                        p -= lr * p.grad
        elif o == "manual_sub_":
            with jitgrad.no_grad():
                for p in params:
                    if p.grad is not None:
                        if isinstance(lr, jitgrad.Tensor):
                            p.sub_(lr * p.grad)
                        else:
                            p.sub_(p.grad, alpha=lr)
        elif o == "manual_data":
            for p in params:
                if p.grad is not None:
                    p.data.sub_(lr * p.grad)
        if sched_inside:
            step_scheduler(sched, loss.detach())
        if ema is not None:
            with jitgrad.no_grad():
                for e, p in zip(averages, params):
                    if ema == "isub":
                        e -= 0.1 * (e - p)
                    elif ema == "mul_add":
                        e.mul_(0.9).add_(p, alpha=0.1)
                    else:
                        e.copy_(0.9 * e + 0.1 * p)
        if zero_at == "last":
            clear()
        if mode_inside == "validate" and ret in ("loss", "detach"):
            return loss.detach(), validation
        if ret == "loss":
            return loss
        if ret == "detach":
            return loss.detach()
        if ret == "tuple":
            return loss, out
        if ret == "out_detach":
            return loss.detach(), out.detach()
        if ret == "none":
            return None
        if ret == "grad":
            return loss.detach(), params[0].grad
        if ret == "arg":
            return loss.detach(), X
        if ret == "norm":
            return norm if norm is not None else loss
        if ret == "item":
            return loss.item()
        if ret == "twice":
            d = loss.detach()
            return d, d
        if ret == "view":
            return out.detach()[0], out.detach().t()
        if ret == "lr":          # (Python floats from the optimizer: read after the step)
            return loss.detach(), [g["lr"] for g in opt.param_groups] if opt else None
        return loss.detach(), 3
    s.step = step
    return s


def between(c, s, k):
    """The action before call k (the same on both copies)."""
    global GLOBAL_SCALE
    act = c["between"].get(k)
    opt = s.opt
    if act == "eval":
        s.model.eval()
    elif act == "train":
        s.model.train()
    elif act == "set_lr" and opt is not None:
        opt.param_groups[0]["lr"] *= 0.5
    elif act == "hyper" and opt is not None:
        g = opt.param_groups[-1]
        for key, value in (("momentum", 0.5), ("betas", (0.8, 0.99)), ("alpha", 0.9),
                           ("lr_decay", 0.1), ("rho", 0.8), ("lambd", 1e-3),
                           ("etas", (0.4, 1.1))):
            if key in g:
                g[key] = value
        g["weight_decay"] = 0.05
    elif act == "sched_outside" and s.sched is not None:
        step_scheduler(s.sched, 1.0)
    elif act == "freeze":
        s.params[0].requires_grad_(False)
    elif act == "unfreeze":
        s.params[0].requires_grad_(True)
    elif act == "scale_param":
        with jitgrad.no_grad():
            s.params[-1].mul_(0.75)
    elif act == "replace_data":
        s.params[0].data = s.params[0].data.clone() * 0.5
    elif act == "replace_param":         # (the optimizer keeps the old one)
        head = s.layers["head"]
        head.weight = nn.Parameter(head.weight.detach().clone() * 0.5)
    elif act == "dropout_p" and "drop" in s.layers:
        s.layers["drop"].p = 0.3
    elif act == "grad_none_outside":
        for p in s.params:
            p.grad = None
    elif act == "zero_outside":
        s.model.zero_grad(set_to_none=False)
    elif act == "scale_grad":
        for p in s.params:
            if p.grad is not None:
                p.grad.mul_(0.5)
    elif act == "mutate_arg":
        with jitgrad.no_grad():
            s.args[k][0].mul_(1.25)
    elif act == "mutate_captured":
        s.class_weight.mul_(1.5)
        if s.y_captured.dtype != jitgrad.int64:
            s.y_captured.mul_(0.5)
    elif act == "global":
        GLOBAL_SCALE = 0.5
    elif act == "add_group" and opt is not None and s.extra is not None and \
            all(p is not s.extra for g in opt.param_groups for p in g["params"]):
        opt.add_param_group({"params": [s.extra]})
    elif act == "load_state" and opt is not None:
        opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    elif act == "reseed":
        jitgrad.manual_seed(1000 + k)
    elif act == "mutate_index":
        s.index[0] = 4
    elif act == "load_model":
        s.model.load_state_dict({name: v * 0.5 if v.dtype.is_floating_point else v
                                 for name, v in s.model.state_dict().items()})
    elif act == "norm_setting" and "norm" in s.layers:
        norm = s.layers["norm"]
        norm.eps = 0.1
        if hasattr(norm, "momentum") and norm.momentum is not None:
            norm.momentum = 0.5
    elif act == "reset_stats":
        for bn in s.bns:
            bn.reset_running_stats()


# ----------------------------------------------------------------------------- observing

def _plain(v):
    """A comparable copy of v (a tensor as ('T', dtype, shape, values))."""
    if isinstance(v, jitgrad.Tensor):
        return ("T", str(v.dtype), tuple(v.shape), np.array(v.detach().numpy(), copy=True))
    if isinstance(v, dict):
        return {"dict": [(k, _plain(x)) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))]}
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [_plain(x) for x in v])
    if isinstance(v, (int, float, str, bool, type(None))):
        return v
    return repr(v)


def _index(v, seq):
    return next((j for j, t in enumerate(seq) if v is t), None)


def observe(s, result, held, prev_grads):
    """Everything a caller can see after a call, as (name, value) pairs."""
    obs = []
    params = list(s.params)
    for p in list(s.model.parameters()) + ([s.extra] if s.extra is not None else []):
        if _index(p, params) is None:
            params.append(p)
    args = [a for a in s.cur_args[0] + tuple(s.cur_args[1].values())]
    if isinstance(result, BaseException):
        obs.append(("raised", (type(result).__name__, str(result))))
        outs = []
    else:
        outs = list(result) if isinstance(result, tuple) else [result]
        obs.append(("result.type", type(result).__name__))
    for i, v in enumerate(outs):
        obs.append((f"out{i}", _plain(v)))
        if isinstance(v, jitgrad.Tensor):
            who = [f"arg{_index(v, args)}", f"grad{_index(v, [p.grad for p in params])}",
                   f"held{_index(v, held)}", f"out{_index(v, outs)}"]
            obs.append((f"out{i}.is", [w for w in who if not w.endswith("None")]))
    for j, p in enumerate(params):
        obs.append((f"param{j}", _plain(p)))
        obs.append((f"param{j}.requires_grad", p.requires_grad))
        obs.append((f"param{j}._version", p._version))
        obs.append((f"param{j}.grad", _plain(p.grad)))
        obs.append((f"param{j}.grad.same_object",
                    p.grad is not None and j < len(prev_grads) and p.grad is prev_grads[j]))
    for j, a in enumerate(args):
        if isinstance(a, jitgrad.Tensor):
            obs.append((f"arg{j}.grad", _plain(a.grad)))
    for j, e in enumerate(s.averages):
        obs.append((f"average{j}", _plain(e)))
        obs.append((f"average{j}._version", e._version))
    for j, bn in enumerate(s.bns):
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            obs.append((f"bn{j}.{name}", _plain(getattr(bn, name))))
    if s.opt is not None:
        obs.append(("opt.state_dict", _plain(s.opt.state_dict())))
    if s.opt2 is not None:
        obs.append(("opt2.state_dict", _plain(s.opt2.state_dict())))
    obs.append(("training", [m.training for m in s.model.modules()]))
    if s.sched is not None:
        obs.append(("sched.state_dict", _plain(s.sched.state_dict())))
    for j, h in enumerate(held):
        obs.append((f"held{j}", _plain(h)))
    return obs, outs, [p.grad for p in params]


def run(c, compiled):
    """The observations after each call; and the compiled function (None if eager)."""
    s = build(c)
    fn = jitgrad.compile(s.step) if compiled else s.step
    jitgrad.manual_seed(c["seed"] + 1)       # (dropout's masks: the same draws both ways)
    held, seen = [], []
    prev_grads = [p.grad for p in s.params]
    no_grad_call = c["bad"][0] if c["bad"] and c["bad"][1] == "no_grad" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # (the eager fallback's warning)
        for k in range(c["n_calls"]):
            between(c, s, k)
            s.cur_args = s.call_args[k]
            try:
                with jitgrad.set_grad_enabled(k != no_grad_call):
                    result = fn(*s.cur_args[0], **s.cur_args[1])
                if s.sched is not None and c["sched_at"] == "outside":
                    step_scheduler(s.sched, 1.0)
            except Exception as e:            # noqa: BLE001 (compared with eager's)
                result = e
            obs, outs, prev_grads = observe(s, result, held, prev_grads)
            seen.append(obs)
            if c["hold"]:
                for v in outs + prev_grads:
                    if isinstance(v, jitgrad.Tensor) and _index(v, held) is None:
                        held.append(v)
    return seen, (fn if compiled else None)


def compare_arrays(a, b, where, loose, rtols, floor):
    """Raise unless b equals a bit for bit, or, where rtols (a dtype name -> tolerance) is
    given and a is float, within its tolerance times the larger of a's largest magnitude and
    floor (loose then gets (where, error))."""
    if np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
        return
    tol = None if not rtols or a.dtype.kind != "f" else rtols[str(a.dtype)]
    err = np.inf
    if tol is not None and (np.isnan(a) == np.isnan(b)).all():
        ok = ~np.isnan(a)
        scale = max(np.max(np.abs(a[ok]), initial=0.0), floor, 1e-300)
        err = np.max(np.abs(b[ok].astype(np.float64) - a[ok]), initial=0.0) / scale
    if not err <= (tol or 0):
        raise AssertionError(
            f"{where}: values differ ("
            f"{'bit for bit required' if tol is None else f'rel err {err:.3g} > {tol}'})\n"
            f"eager:    {a!r}\ncompiled: {b!r}")
    loose.append((where, err))


def _compare(want, got, where, loose, rtol, floor):
    """Raise AssertionError at the first difference. rtol None: bit for bit. Else an array
    may differ by rtol times the larger of its own largest magnitude and floor (the call's
    largest parameter magnitude): an ulp of an exp or tanh carried through a sum that cancels
    (a bias's gradient, a momentum buffer near zero) is relative to the terms, not to their
    small sum. loose gets (name, error) of the values that needed it."""
    if isinstance(want, tuple) and len(want) == 4 and want[0] == "T":
        assert isinstance(got, tuple) and len(got) == 4 and got[0] == "T", \
            f"{where}: eager {want!r}, compiled {got!r}"
        assert want[1:3] == got[1:3], \
            f"{where}: dtype, shape: eager {want[1:3]}, compiled {got[1:3]}"
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
    if isinstance(want, float) and isinstance(got, float) and want != got:
        if not (np.isnan(want) and np.isnan(got)):
            # a Python float (loss.item(), a group's lr)
            err = abs(got - want) / max(abs(want), 1e-300)
            assert rtol is not None and err <= rtol, f"{where}: eager {want!r}, compiled {got!r}"
            loose.append((where, err))
        return
    assert type(want) is type(got) and want == got, f"{where}: eager {want!r}, compiled {got!r}"


def check(seed):
    """Run the seed's case eagerly and compiled; returns (loose, traces), or raises
    AssertionError listing the differences (the first few, and the names of all)."""
    c = draw(seed)
    want, _ = run(c, compiled=False)
    got, fn = run(c, compiled=True)
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
                    if n.startswith("param") and "." not in n and isinstance(v, tuple))
        for (name, a), (_, b) in zip(w, g):
            try:
                _compare(a, b, f"call {k}: {name}", loose, rtol, floor)
            except AssertionError as e:
                errors.append(str(e))
    if errors:
        names = sorted({e.split(":")[1].strip().split("[")[0] for e in errors})
        raise AssertionError(f"{len(errors)} differences, in {names}; the first:\n" +
                             "\n".join(e[:700] for e in errors[:4]))
    return loose, fn.traces


KEYS = ["dtype", "arch", "bn", "start_eval", "stop", "act", "second", "mid_twice", "dropout",
        "inplace", "extra", "loss", "reduction", "loss_opt", "micro", "opt", "groups",
        "maximize", "sched", "clip", "zero", "zero_at", "penalty", "lr_arg", "scale_arg",
        "target_arg", "kwargs", "ret", "hold", "reuse_args", "batches", "lengths", "between",
        "bad", "norm", "pool_layer", "drop_kind", "decoupled", "sched_at", "accum", "ema",
        "grad_op", "retain", "two_opts", "mode_inside", "embed"]


def describe(seed):
    c = draw(seed)
    return ", ".join(f"{k}={c[k]}" for k in KEYS)


@pytest.mark.parametrize("seed", SEEDS)
def test_compiled_step_matches_eager(seed):
    try:
        check(seed)
    except AssertionError as e:
        raise AssertionError(f"seed {seed} ({describe(seed)}):\n{e}") from None


# (the differences it found are cases in tests/test_compile.py)


def summary(check, describe, seeds, argv):
    """The main mode of a differential tester: check each seed (argv: seeds, or -FIRST LAST;
    none: seeds) and print the failing ones, which needed RTOL, how many replayed, and why the
    others ran eagerly."""
    import collections
    import time

    import jitgrad.compiler.program as program      # (what tests/conftest.py sets)
    program._unwritten = lambda n, dtype: np.full(n, np.nan, dtype)
    program._CHECK_PLANS[:] = [True]
    t0 = time.perf_counter()
    status, reasons = collections.Counter(), collections.Counter()
    if argv:
        seeds = [int(a) for a in argv]
    if len(argv) == 2 and argv[0].startswith("-"):
        seeds = range(-int(argv[0]), int(argv[1]))   # a range: -FIRST LAST
    for seed in seeds:
        try:
            loose, traces = check(seed)
        except Exception as e:  # noqa: BLE001
            status["fail"] += 1
            print(f"FAIL {seed}: {describe(seed)}\n   {type(e).__name__}: {str(e)[:1500]}\n",
                  flush=True)
            continue
        kinds = ["eager" if isinstance(v, str) else "replay" for v in traces.values()]
        status["replayed" if "replay" in kinds else "eager"] += 1
        for v in traces.values():
            if isinstance(v, str):
                reasons[v[:90]] += 1
        if loose:
            status["needed RTOL"] += 1
            worst = max(loose, key=lambda x: x[1])
            print(f"RTOL {seed}: worst {worst[1]:.2g} at {worst[0]}; "
                  f"{len(set(n.split(': ')[1].split('[')[0] for n, _ in loose))} values")
    print(dict(status), f"{time.perf_counter() - t0:.1f}s")
    for r, n in reasons.most_common():
        print(f"  {n:4d} eager: {r}")


if __name__ == "__main__":              # a summary: failing seeds, RTOL used, replays
    summary(check, describe, SEEDS, sys.argv[1:])

"""python -m jitgrad: train micrograd's moons MLP and compare its speed with PyTorch eager.

The model is the micrograd demo's: an MLP 2-H-H-1 with ReLU, scored with the SVM hinge loss
mean(relu(1 - y * score)) plus 1e-4 * L2 (or BCE-with-logits), trained full batch. The training
step runs through jitgrad.compile (traced once, then replayed as compiled calls; --eager runs it
op by op). The first run compiles the kernels (Numba, cached on disk afterwards); a timer shows
that this is happening. The summary times the same step eagerly, compiled and, with torch
installed, in PyTorch eager, in the same process.
"""
import argparse
import copy
import gc
import sys
import threading
import time

import numpy as np

import jitgrad
from jitgrad.data import make_moons
from jitgrad.demo import OPTIMIZERS, as_tensors, make_model, make_step

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m jitgrad",
        description="Train an MLP on the two-moons dataset with jitgrad (micrograd's demo model), "
                    "then compare steps per second with PyTorch eager if it is installed.",
        epilog="python -m jitgrad sweep --help: train a grid of these MLPs on Dask (needs the "
               "distributed extra).")
    p.add_argument("--epochs", type=int, default=300, help="training steps over the whole data set "
                   "(default: 300)")
    p.add_argument("--hidden", type=int, default=16, help="width of the two hidden layers (default: 16)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the data and of the weights (default: 1)")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd",
                   help="sgd (momentum 0.9), adam, adamw or rmsprop (default: sgd)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: 0.1 for sgd, "
                   "0.01 for adam/adamw, 0.005 for rmsprop)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64",
                   help="dtype of data and weights (default: float64)")
    p.add_argument("--batch-size", type=int, default=None, help="minibatch size (default: the whole "
                   "data set, as micrograd)")
    p.add_argument("--samples", type=int, default=100, help="number of points (default: 100)")
    p.add_argument("--noise", type=float, default=0.1, help="noise of make_moons (default: 0.1)")
    p.add_argument("--loss", choices=["hinge", "bce"], default="hinge",
                   help="hinge: SVM max-margin loss + 1e-4 L2 (micrograd); bce: BCE with logits")
    p.add_argument("--plot", metavar="PATH", help="save the decision boundary and the loss curve to "
                   "this image (needs matplotlib)")
    p.add_argument("--eager", action="store_true",
                   help="train op by op instead of through jitgrad.compile")
    p.add_argument("--no-compare", action="store_true",
                   help="skip the timing of eager, compiled and PyTorch eager steps")
    p.add_argument("--profile", action="store_true", help="after training, profile 20 more steps "
                   "(jitgrad.profiler) and print the table of ops and backward nodes")
    return p.parse_args(argv)


# ---- the model and one training step, written as a PyTorch user would -------------------------------
def _batches(n, batch_size, rng):
    if batch_size is None or batch_size >= n:
        return [None]
    order = rng.permutation(n)
    return [order[i: i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


# ---- compile feedback ------------------------------------------------------------------------
class Ticker:
    """Prints message, then an elapsed-time counter while the main thread is busy compiling."""

    def __init__(self, message, stream=sys.stderr):
        self.message, self.stream = message, stream
        self.stop = threading.Event()
        self.tty = stream.isatty()

    def _run(self):
        t0 = time.perf_counter()
        spin = "|/-\\"
        k = 0
        while not self.stop.wait(0.25 if self.tty else 5.0):
            el = time.perf_counter() - t0
            if self.tty:
                self.stream.write(f"\r  working {spin[k % 4]} {el:4.0f} s")
            else:
                self.stream.write(f"  still working, {el:.0f} s\n")
            self.stream.flush()
            k += 1

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.stream.write(self.message + "\n")
        self.stream.flush()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.elapsed = time.perf_counter() - self.t0
        if self.tty:
            self.stream.write("\r" + " " * 24 + "\r")
        self.stream.flush()


def warm_up(model, opt_cls, opt_kw, step_factory, data, loss_kind, compiled):
    """Steps on a copy of the model: compiles (or loads from the cache) everything the training
    loop runs, without touching the model that gets trained."""
    clone = copy.deepcopy(model)
    opt = opt_cls(clone.parameters(), **opt_kw)
    step = step_factory(jitgrad, clone, opt, loss_kind)
    if compiled:
        step = jitgrad.compile(step)
    for _ in range(2 if compiled else 1):      # the second call replays: its kernels compile
        step(*data)


# ---- the run ---------------------------------------------------------------------------------
def train(args, progress=True, out=sys.stdout):
    """Train per args; returns a dict with the model, per-step losses and accuracies, timings."""
    dtype = getattr(jitgrad, args.dtype)
    X, y = make_moons(args.samples, noise=args.noise, random_state=args.seed)
    jitgrad.manual_seed(args.seed)
    model = make_model(jitgrad, args.hidden, dtype)
    name, kw = OPTIMIZERS[args.optimizer]
    kw = dict(kw, **({"lr": args.lr} if args.lr is not None else {}))
    opt_cls = getattr(jitgrad.optim, name)
    Xt, ypm, y01 = as_tensors(jitgrad, X, y, dtype)

    t0 = time.perf_counter()
    msg = (f"jitgrad: preparing the compiled kernels (forward, backward, optimizer) for "
           f"{args.dtype}\n  (the first run compiles them, up to a minute; later runs load "
           "the cache in ~1 s)")
    with Ticker(msg, out) as tick:
        warm_up(model, opt_cls, kw, make_step, (Xt, ypm, y01), args.loss, not args.eager)
    compile_s = tick.elapsed
    # compiling leaves a large heap of Numba objects: move them out of the collector's sight, or
    # every full collection in the training loop walks them (hundreds of ms after a cold compile)
    gc.collect()
    gc.freeze()
    print(f"jitgrad: kernels ready in {compile_s:.1f} s", file=out)

    opt = opt_cls(model.parameters(), **kw)
    step = make_step(jitgrad, model, opt, args.loss)
    if not args.eager:
        step = jitgrad.compile(step)
    rng = np.random.default_rng(args.seed)
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm
            bar = tqdm(total=args.epochs, desc="training", unit="step", file=out, mininterval=0.1,
                       dynamic_ncols=True)
        except ImportError:
            pass
    losses, accs = [], []
    every = max(1, args.epochs // 20)
    t_train = time.perf_counter()
    for epoch in range(args.epochs):
        for idx in _batches(len(X), args.batch_size, rng):
            if idx is None:
                loss, score = step(Xt, ypm, y01)
                acc = float(((score._a[:, 0] > 0) == (y > 0)).mean())
            else:
                loss, score = step(Xt[idx], ypm[idx], y01[idx])
                acc = float(((score._a[:, 0] > 0) == (y[idx] > 0)).mean())
        losses.append(loss.item())
        accs.append(acc)
        if bar is not None:
            bar.update(1)
            if epoch % 10 == 0 or epoch == args.epochs - 1:
                bar.set_postfix(loss=f"{losses[-1]:.4f}", acc=f"{acc:.1%}", refresh=False)
        elif progress and (epoch % every == 0 or epoch == args.epochs - 1):
            print(f"step {epoch + 1:5d}/{args.epochs}  loss {losses[-1]:.4f}  acc {acc:.1%}", file=out)
    train_s = time.perf_counter() - t_train
    if bar is not None:
        bar.close()
    with jitgrad.no_grad():
        final_acc = float(((model(Xt)._a[:, 0] > 0) == (y > 0)).mean())
    n_steps = args.epochs * len(_batches(len(X), args.batch_size, np.random.default_rng(0)))
    return dict(model=model, X=X, y=y, losses=losses, accs=accs, accuracy=final_acc,
                compile_s=compile_s, train_s=train_s, steps=n_steps, total_s=time.perf_counter() - t0)


def profile_steps(args, model, steps=20):
    """The profiler's table of `steps` more training steps of model (on a copy: the trained model
    is left as it is): forward ops, backward nodes from the compiled loop, optimizer steps."""
    model = copy.deepcopy(model)
    dtype = getattr(jitgrad, args.dtype)
    X, y = make_moons(args.samples, noise=args.noise, random_state=args.seed)
    name, kw = OPTIMIZERS[args.optimizer]
    kw = dict(kw, **({"lr": args.lr} if args.lr is not None else {}))
    step = make_step(jitgrad, model, getattr(jitgrad.optim, name)(model.parameters(), **kw),
                     args.loss)
    data = as_tensors(jitgrad, X, y, dtype)
    step(*data)        # (compiles what a new optimizer needs, outside the profile)
    with jitgrad.profiler.profile() as prof:
        for _ in range(steps):
            with jitgrad.profiler.record_function("train_step"):
                step(*data)
    return (f"\nprofile of {steps} training steps (jitgrad.profiler; backward node times are read "
            "inside the compiled loop):\n" + prof.key_averages().table(sort_by="self_cpu_time_total",
                                                                      row_limit=25))


def compare(args, model, rounds=5, steps=100):
    """Steps per second of the same full-batch step (forward, backward, optimizer step) in jitgrad
    eager, jitgrad compiled and, if installed, PyTorch eager (one thread), interleaved in rounds;
    returns {name: median}."""
    libs = [("jitgrad eager", jitgrad, False), ("jitgrad compiled", jitgrad, True)]
    try:
        import torch
        torch.set_num_threads(1)
        libs.append(("torch eager", torch, False))
    except ImportError:
        pass
    name, kw = OPTIMIZERS[args.optimizer]
    kw = dict(kw, **({"lr": args.lr} if args.lr is not None else {}))
    X, y = make_moons(args.samples, noise=args.noise, random_state=args.seed)
    rates = {}
    for key, lib, compiled in libs:
        dtype = getattr(lib, args.dtype)
        m = make_model(lib, args.hidden, dtype)
        m.load_state_dict({k: lib.tensor(v.numpy().copy()) for k, v in model.state_dict().items()})
        opt = getattr(lib.optim, name)(m.parameters(), **kw)
        step = make_step(lib, m, opt, args.loss)
        rates[key] = (jitgrad.compile(step) if compiled else step, as_tensors(lib, X, y, dtype), [])
    for _ in range(rounds):
        for key, (step, data, times) in rates.items():
            step(*data)
            t = time.perf_counter()
            for _ in range(steps):
                step(*data)
            times.append(steps / (time.perf_counter() - t))
    return {k: float(np.median(v[2])) for k, v in rates.items()}


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    X, y, model = result["X"], result["y"], result["model"]
    pad = 0.5
    xx, yy = np.meshgrid(np.linspace(X[:, 0].min() - pad, X[:, 0].max() + pad, 200),
                         np.linspace(X[:, 1].min() - pad, X[:, 1].max() + pad, 200))
    dtype = model[0].weight.dtype
    with jitgrad.no_grad():
        zz = model(jitgrad.tensor(np.c_[xx.ravel(), yy.ravel()], dtype=dtype))._a.reshape(xx.shape)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    a1.contourf(xx, yy, zz > 0, levels=[-0.5, 0.5, 1.5], colors=["#b6cdf4", "#f4b6b6"], alpha=0.8)
    a1.contour(xx, yy, zz, levels=[0], colors="k", linewidths=1)
    a1.scatter(X[:, 0], X[:, 1], c=y, cmap="bwr", s=18, edgecolors="k", linewidths=0.5)
    a1.set_title(f"decision boundary (training accuracy {result['accuracy']:.1%})")
    a2.plot(np.arange(1, len(result["losses"]) + 1), result["losses"])
    a2.set_yscale("log")
    a2.set_xlabel("step")
    a2.set_ylabel("loss")
    a2.set_title("training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["sweep"]:
        return sweep_main(argv[1:])
    args = parse_args(argv)
    if args.epochs < 1 or args.hidden < 1 or args.samples < 2:
        print("epochs, hidden and samples must be positive", file=sys.stderr)
        return 2
    wall0 = time.perf_counter()
    print(f"jitgrad {jitgrad.__version__}: MLP 2-{args.hidden}-{args.hidden}-1 on {args.samples} "
          f"moons points, {args.loss} loss, {args.optimizer}, {args.dtype}, seed {args.seed}")
    res = train(args)
    rate = res["steps"] / res["train_s"]
    print(f"\ntraining accuracy {res['accuracy']:.1%}, final loss {res['losses'][-1]:.4f}")
    print(f"{res['steps']} steps in {res['train_s']:.2f} s: {rate:,.0f} steps/s with the progress "
          f"bar (kernels ready in {res['compile_s']:.1f} s)")
    if not args.no_compare:
        cmp = compare(args, res["model"])
        base = cmp.get("torch eager")
        print("same step timed side by side (steps/s, one thread):")
        for key, rate in cmp.items():
            vs = f" ({rate / base:.2f}x torch eager)" if base and key != "torch eager" else ""
            print(f"  {key:17s} {rate:10,.0f}{vs}")
        if base is None:
            print("  (PyTorch is not installed: pip install torch to compare with it)")
    if args.profile:
        print(profile_steps(args, res["model"]))
    if args.plot:
        try:
            plot(res, args.plot)
            print(f"saved the decision boundary and loss curve to {args.plot}")
        except ImportError:
            print("--plot needs matplotlib: pip install 'jitgrad[plot]'", file=sys.stderr)
            return 1
    print(f"wall time {time.perf_counter() - wall0:.1f} s")
    return 0


def sweep_main(argv):
    """python -m jitgrad sweep: the grid on Dask (jitgrad.distributed), an optional extra."""
    try:
        from jitgrad.distributed import main as run_sweep
    except ImportError as e:
        print(f"python -m jitgrad sweep: {e}", file=sys.stderr)
        return 2
    return run_sweep(argv)


if __name__ == "__main__":
    sys.exit(main())

"""Full training step (forward, loss, backward, optimizer.step()) and optimizer step alone,
jitgrad against torch eager (one thread), on the guide's workloads:

    W1: MLP 2-16-16-1, ReLU, batch 100 (moons), float64, hinge loss + 1e-4 * L2, SGD
    W2: MLP 784-128-10, ReLU, batch 64, float32, cross-entropy, SGD

    python benchmarks/bench_train_step.py            # table of medians and ratios (interleaved)
    pytest benchmarks/bench_train_step.py -o python_files='bench_*.py' --benchmark-only

The same torch-style code runs on both libraries (``lib`` is jitgrad or torch), the loss of W2
being ``nn.functional.cross_entropy`` (for a jitgrad without it, log-softmax + NLL written with
primitives; the printed table says which one ran).
"""
import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jitgrad  # noqa: E402
from jitgrad.data import make_moons  # noqa: E402

try:
    import torch
    torch.set_num_threads(1)
except ImportError:     # the jitgrad cases still run
    torch = None

try:
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
except ImportError:
    pass


def _cross_entropy(lib, logits, target, onehot):
    fn = getattr(lib.nn.functional, "cross_entropy", None)
    if fn is not None:
        return fn(logits, target)
    z = logits - jitgrad.tensor(logits.detach().numpy().max(axis=1, keepdims=True))
    logp = z - z.exp().sum(1, keepdim=True).log()
    return -(logp * onehot).sum() / logits.shape[0]


def ce_kind():
    return "F.cross_entropy" if hasattr(jitgrad.nn.functional, "cross_entropy") else \
        "log-softmax + NLL from primitives"


class Case:
    """One workload on one library: a model, a batch, an optimizer and the step functions."""

    def __init__(self, lib, workload, optimizer="SGD"):
        self.lib = lib
        rng = np.random.default_rng(0)
        lib.manual_seed(0)
        nn = lib.nn
        if workload == "W1":
            dtype = lib.float64
            self.model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                                       nn.Linear(16, 1)).to(dtype)
            X, y = make_moons(100, noise=0.1, random_state=1)
            self.x = lib.tensor(X, dtype=dtype)
            self.y = lib.tensor((y * 2 - 1).astype(np.float64), dtype=dtype).reshape(-1, 1)
            params = list(self.model.parameters())

            def loss():
                score = self.model(self.x)
                return (lib.relu(1 - self.y * score).mean()
                        + 1e-4 * sum((p * p).sum() for p in params))
        else:
            dtype = lib.float32
            self.model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
            self.x = lib.tensor(rng.standard_normal((64, 784)), dtype=dtype)
            target = rng.integers(0, 10, 64)
            self.t = lib.tensor(target)
            self.onehot = lib.tensor(np.eye(10)[target], dtype=dtype)

            def loss():
                return _cross_entropy(lib, self.model(self.x), self.t, self.onehot)
        lr = 0.05 if workload == "W1" else 0.01
        self.opt = getattr(lib.optim, optimizer)(self.model.parameters(), lr=lr)
        self.loss = loss
        self.full_step()          # gradients exist for optimizer_step; compiles/loads kernels

    def full_step(self):
        self.opt.zero_grad()
        loss = self.loss()
        loss.backward()
        self.opt.step()
        return loss

    def optimizer_step(self):
        self.opt.step()

    def n_params(self):
        return sum(p.numel() for p in self.model.parameters())


LIBS = {"jitgrad": jitgrad, "torch": torch}
CASES = [(w, what, opt) for w in ("W1", "W2") for what, opt in
         (("full_step", "SGD"), ("optimizer_step", "SGD"), ("optimizer_step", "Adam"))]


# ---- pytest-benchmark ----------------------------------------------------------------------------
@pytest.mark.parametrize("lib_name", list(LIBS))
@pytest.mark.parametrize("workload,what,optimizer", CASES,
                         ids=[f"{w}-{what}-{opt}" for w, what, opt in CASES])
def test_train_step(benchmark, lib_name, workload, what, optimizer):
    lib = LIBS[lib_name]
    if lib is None:
        pytest.skip("torch is not installed")
    case = Case(lib, workload, optimizer)
    fn = getattr(case, what)
    for _ in range(20):
        fn()
    benchmark.group = f"{workload} {what} {optimizer}"
    benchmark.extra_info.update(workload=workload, what=what, optimizer=optimizer,
                                loss=ce_kind() if workload == "W2" and lib is jitgrad else None)
    benchmark(fn)


# ---- standalone: interleaved rounds, medians, ratios -----------------------------------------------
def measure(rounds=15, seconds_per_round=0.2):
    """{(workload, what, optimizer): {lib: median seconds per call}}, libraries interleaved."""
    results = {}
    for key in CASES:
        cases = {n: Case(lib, *[key[0], key[2]]) for n, lib in LIBS.items() if lib is not None}
        fns = {n: getattr(c, key[1]) for n, c in cases.items()}
        n_calls = {}
        for n, fn in fns.items():      # calls per round: about seconds_per_round each
            t = time.perf_counter()
            k = 0
            while time.perf_counter() - t < 0.05:
                fn()
                k += 1
            n_calls[n] = max(5, int(k * seconds_per_round / 0.05))
        times = {n: [] for n in fns}
        for _ in range(rounds):
            for n, fn in fns.items():
                m = n_calls[n]
                t = time.perf_counter()
                for _ in range(m):
                    fn()
                times[n].append((time.perf_counter() - t) / m)
        results[key] = {n: statistics.median(v) for n, v in times.items()}
        results[key]["params"] = cases["jitgrad"].n_params()
    return results


def main():
    rounds = int(os.environ.get("BENCH_ROUNDS", "15"))
    res = measure(rounds)
    print(f"jitgrad {jitgrad.__version__}, torch {torch.__version__ if torch else '(not installed)'}, "
          f"one thread, median of {rounds} interleaved rounds; W2 jitgrad loss: {ce_kind()}")
    print(f"{'case':34s} {'params':>7s} {'jitgrad':>12s} {'torch':>12s} {'jitgrad/torch speed':>20s}")
    for (w, what, opt), r in res.items():
        j = r["jitgrad"]
        t = r.get("torch")
        ratio = f"{t / j:.2f}x" if t else "-"
        tt = f"{t * 1e6:9.1f} us" if t else "-"
        print(f"{w + ' ' + what + ' ' + opt:34s} {r['params']:7d} {j * 1e6:9.1f} us {tt:>12s} "
              f"{ratio:>20s}   ({1 / j:,.0f} vs {1 / t if t else 0:,.0f} per s)")


if __name__ == "__main__":
    main()

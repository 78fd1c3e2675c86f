"""The profiler: op names and counts match the program (forward ops, backward nodes counted inside
the compiled loop, Python nodes), the table, the Chrome trace, and the entry points restored."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import jitgrad as torch
from jitgrad import _methods
from jitgrad.autograd import Function
from jitgrad.engine.tape import TAPE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return 3 * g * x ** 2


def _program(lib, x, w):
    with lib.autograd.profiler.record_function("block"):
        h = (x @ w).relu()
        y = h * h + h * 2
        z = y.sum()
    return z


def _counts(prof):
    return {e.key: e.count for e in prof.key_averages()}


def test_op_names_and_counts_match_the_program():
    x = torch.randn(8, 4, requires_grad=True)
    w = torch.randn(4, 3, requires_grad=True)
    with torch.autograd.profiler.profile() as prof:
        z = _program(torch, x, w)
        c = Cube.apply(z)
        c.backward()
    counts = _counts(prof)
    # mul: 2 in the block, 2 in Cube's backward (3 * g * x ** 2); pow: 1 in each of Cube's passes
    for name, n in {"block": 1, "aten::matmul": 1, "aten::relu": 1, "aten::mul": 4, "aten::add": 1,
                    "aten::pow": 2, "aten::sum": 1, "jitgrad::backward (compiled replay)": 1,
                    "CubeBackward": 1,
                    # backward nodes, counted inside the compiled loop
                    "MmBackward0": 1, "ReluBackward0": 1, "MulBackward0": 2, "AddBackward0": 1,
                    "SumBackward0": 1}.items():
        assert counts.get(name) == n, (name, counts)
    events = prof.function_events
    block = next(e for e in events if e.name == "block")
    inside = [e for e in events if e.name.startswith("aten::") and e.start_us < block.end_us]
    assert len(inside) == 6 and all(block.start_us <= e.start_us and e.end_us <= block.end_us for e in inside)
    assert block.cpu_time_total >= sum(e.cpu_time_total for e in inside) - 1e-6
    assert all(e.self_cpu_time_total >= -1e-6 for e in events)
    np.testing.assert_allclose(x.grad.numpy(), _reference_grad(x, w), rtol=1e-4)   # unchanged


def _reference_grad(x, w):
    xa, wa = x.detach().numpy().astype(np.float64), w.detach().numpy().astype(np.float64)
    pre = xa @ wa
    h = np.maximum(pre, 0)
    z = (h * h + 2 * h).sum()
    dh = (2 * h + 2) * 3 * z ** 2
    return (dh * (pre > 0)) @ wa.T


def test_forward_names_and_counts_match_torch():
    pt = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    found = []
    for lib in (torch, pt):
        with lib.no_grad(), lib.autograd.profiler.profile() as prof:
            x, w = lib.tensor(a), lib.tensor(b)
            y = (x @ w).relu()
            (y * y + y * 2).sum()
        found.append({k: v for k, v in _counts(prof).items()
                      if k in ("aten::mul", "aten::add", "aten::sum", "aten::relu", "aten::matmul")})
    assert found[0] == found[1]


def test_table_sorting_row_limit_shapes_and_trace(tmp_path):
    x = torch.randn(8, 4, requires_grad=True)
    w = torch.randn(4, 3, requires_grad=True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                record_shapes=True) as prof:
        _program(torch, x, w).backward()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=5)
    lines = table.splitlines()
    assert lines[1].split() == ["Name", "Self", "CPU", "%", "Self", "CPU", "CPU", "total", "%", "CPU",
                                "total", "CPU", "time", "avg", "#", "of", "Calls"]
    assert len(lines) == 3 + 5 + 2 and lines[-1].startswith("Self CPU time total: ")
    selfs = [e.self_cpu_time_total for e in sorted(prof.key_averages(),
                                                   key=lambda e: -e.self_cpu_time_total)[:5]]
    assert selfs == sorted(selfs, reverse=True)
    by_shape = prof.key_averages(group_by_input_shape=True).table(sort_by="count", row_limit=50)
    assert "Input Shapes" in by_shape and "[[8, 4], [4, 3]]" in by_shape
    with pytest.raises(AttributeError):
        prof.key_averages().table(sort_by="no_such_key")
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    trace = json.loads(path.read_text())
    names = [e["name"] for e in trace["traceEvents"] if e["ph"] == "X"]
    assert {"block", "aten::matmul", "MulBackward0"} <= set(names)
    assert all(e["dur"] >= 0 and "ts" in e for e in trace["traceEvents"] if e["ph"] == "X")


def test_entry_points_are_restored_and_nothing_is_recorded_outside():
    originals = (torch.mul, torch.Tensor.__mul__, torch.nn.functional.relu, TAPE.__dict__.get("backward"))
    with torch.autograd.profiler.profile() as prof:
        assert torch.mul is not _methods.FUNCTIONS["mul"]
        assert TAPE.stats is not None
    assert (torch.mul, torch.Tensor.__mul__, torch.nn.functional.relu,
            TAPE.__dict__.get("backward")) == originals
    assert torch.mul is _methods.FUNCTIONS["mul"] and TAPE.stats is None
    x = torch.ones(2, requires_grad=True)
    (x * 2).sum().backward()
    assert len(prof.function_events) == 0
    with torch.autograd.profiler.profile(enabled=False) as off:
        (x * 2).sum()
    assert len(off.function_events) == 0


def test_optimizer_steps_and_hooks_are_events():
    lin = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    x = torch.ones(4, 3)
    with torch.profiler.profile() as prof:
        for _ in range(3):
            opt.zero_grad()
            out = lin(x)
            out.register_hook(lambda g: g * 1)
            out.sum().backward()
            opt.step()
    counts = _counts(prof)
    assert counts["Optimizer.step#SGD.step"] == 3 and counts["aten::linear"] == 3
    assert counts["jitgrad::tensor hooks"] == 3 and counts["AddmmBackward0"] == 3


def test_python_m_jitgrad_profile_prints_the_table():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-m", "jitgrad", "--epochs", "3", "--no-compare", "--profile"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "profile of 20 training steps" in r.stdout
    for name in ("train_step", "aten::linear", "AddmmBackward0", "Optimizer.step#SGD.step",
                 "Self CPU time total"):
        assert name in r.stdout
    row = next(line for line in r.stdout.splitlines() if line.strip().startswith("train_step"))
    assert row.split()[-1] == "20"


def test_profile_memory_counts_the_bytes_ops_return():
    x = torch.ones(100, 10)                       # float32: 4000 bytes
    with torch.profiler.profile(profile_memory=True) as prof:
        with torch.profiler.record_function("outer"):
            y = x * 2                             # 4000
            y.sum(0)                              # 40
    avg = {e.key: e for e in prof.key_averages()}
    assert avg["aten::mul"].cpu_memory_usage == 4000 and avg["aten::sum"].cpu_memory_usage == 40
    assert avg["outer"].cpu_memory_usage == 4040 and avg["outer"].self_cpu_memory_usage == 0
    table = prof.key_averages().table(sort_by="self_cpu_memory_usage", row_limit=3)
    assert "CPU Mem" in table and "Self CPU Mem" in table and "3.91 Kb" in table
    assert table.splitlines()[3].split()[0] == "aten::mul"


def test_a_schedule_records_only_its_active_steps(tmp_path):
    cycles = []

    def on_ready(p):
        cycles.append((p.step_num, _counts(p).get("aten::mul", 0)))

    sched = torch.profiler.schedule(skip_first=1, wait=1, warmup=1, active=2, repeat=2)
    # steps 0: skip, 1: wait, 2: warmup, 3-4: active (saved after 4), 5: wait, 6: warmup,
    # 7-8: active (saved after 8), then nothing
    assert [sched(s).name for s in range(10)] == [
        "NONE", "NONE", "WARMUP", "RECORD", "RECORD_AND_SAVE", "NONE", "WARMUP", "RECORD",
        "RECORD_AND_SAVE", "NONE"]
    x = torch.ones(3, requires_grad=True)
    with torch.profiler.profile(schedule=sched, on_trace_ready=on_ready) as prof:
        for step in range(10):
            for _ in range(step + 1):          # step k does k + 1 muls
                (x * 2).sum().backward()
            prof.step()
    assert cycles == [(5, 4 + 5), (9, 8 + 9)]
    handler = torch.profiler.tensorboard_trace_handler(str(tmp_path), worker_name="w")
    with torch.profiler.profile(on_trace_ready=handler):
        x * 2
    (trace,) = list(tmp_path.iterdir())
    assert trace.name.startswith("w.") and trace.name.endswith(".pt.trace.json")
    assert "aten::mul" in trace.read_text()
    table = prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=2)   # zeros here
    assert "Self CPU time total" in table

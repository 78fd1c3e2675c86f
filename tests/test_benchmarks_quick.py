"""The benchmark suite (benchmarks/) stays runnable and honest: every installed system computes the
same gradients for one step of every workload (float64, tiny sizes), and the whole report runs
once in quick mode. No timing is asserted. Peers that are not installed are skipped.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import workloads as W  # noqa: E402
from benchmarks.adapters import build  # noqa: E402
from benchmarks.cases import CASES  # noqa: E402

PACKAGE = {"jitgrad": "jitgrad", "torch": "torch", "jax": "jax", "autograd": "autograd",
           "micrograd": "micrograd", "fused": "numba", "jitgrad-compiled": "jitgrad"}
# torch.compile's first call takes about a minute here (inductor compiles C++): it is measured by
# the report, not in this quick check
SKIPPED_PEERS = ("torch-compiled",)
FLOAT64 = {"dtype": "float64"}          # every workload in float64, so 1e-6 is a fair tolerance
# cases that compute gradients (not the forward-only W4 ones); W6 once (quick sizes cap T anyway)
GRAD_CASES = [c for c in CASES if c not in ("W4-forward", "W4-forward-nograd", "W6-T100", "W6-T1000")]


def one_step_grads(system, case_id, steps=1):
    pytest.importorskip(PACKAGE[system])
    spec = CASES[case_id]
    case = build(system, spec.builder, spec.make(quick=True, **FLOAT64))
    case.once()
    for _ in range(steps - 1):
        case.run(case.setup() if case.setup else None)
    return case.grads()


@pytest.mark.parametrize("case_id,system", [(c, s) for c in GRAD_CASES for s in CASES[c].systems
                                            if s != "jitgrad" and s not in SKIPPED_PEERS])
def test_peer_gradients_agree_with_jitgrad(case_id, system):
    steps = 3 if system == "jitgrad-compiled" else 1     # the first call traces, later ones replay
    got = one_step_grads(system, case_id, steps)
    ref = one_step_grads("jitgrad", case_id, steps)
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert np.shape(g) == np.shape(r)
        np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-6)


def test_jitgrad_jacobians_match_the_closed_form():
    wl = W.W5(quick=True)
    for case_id in ("W5", "W5-batched"):
        np.testing.assert_allclose(one_step_grads("jitgrad", case_id)[0], wl.reference(),
                                   rtol=1e-6, atol=1e-6)


def test_jitgrad_scalar_graph_matches_the_recurrence():
    wl = W.W4(quick=True)
    w, b = (float(p) for p in wl.params())
    y, dw, db = float(wl.data()), 0.0, 0.0
    for _ in range(wl.nodes // 2):               # y' = y*w + b
        y, dw, db = y * w + b, dw * w + y, db * w + 1
    gw, gb = one_step_grads("jitgrad", "W4-backward")
    np.testing.assert_allclose([gw, gb], [dw, db], rtol=1e-9)


def test_report_runs_in_quick_mode(tmp_path):
    pytest.importorskip("pytest_benchmark")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    out = subprocess.run([sys.executable, "-m", "benchmarks.report", "--quick", "--out",
                          str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    md = (tmp_path / "report.md").read_text()
    for needle in ("| W1 |", "| W3 |", "| W4-backward |", "W4 backward per node", "warm start",
                   "## Targets"):
        assert needle in md

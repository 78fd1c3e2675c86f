"""The tape inspection API: tape_rows, format_tape, to_dot, tape_stats, trace_backward, draw."""
import sys

import numpy as np
import pytest

import jitgrad as torch
from jitgrad.autograd import (ROW_COLUMNS, draw, format_tape, tape_rows, tape_stats, to_dot,
                              trace_backward)
from jitgrad.engine import loop


def seed_graph():
    x = torch.ones(2, 2, requires_grad=True)
    y = x + 2
    out = (y * y * 3).mean()
    return x, out


def test_tape_rows_and_format_tape_list_the_seed_example():
    x, out = seed_graph()
    rows = tape_rows(out)
    assert [r["op"] for r in rows] == ["Leaf", "AddBackward0", "MulBackward0", "MulBackward0",
                                       "MeanBackward0"]
    leaf, add, sq, scale, mean = rows
    assert add["inputs"] == [leaf["row"]] and sq["inputs"] == [add["row"], add["row"]]
    np.testing.assert_array_equal(sq["saved"], np.full(8, 3.0))      # y for each factor
    assert sq["flags"] == ["saved"] and mean["shape"] == ()
    assert scale["saved"].tolist() == [3.0] and scale["flags"] == []   # a constant, not a tensor
    cols = dict(zip(ROW_COLUMNS, sq["raw"]))
    assert (cols["op"], cols["a"], cols["b"]) == (sq["code"], add["row"], add["row"])
    assert cols["flags"] == 1 and cols["saved_at"] >= 0 and cols["serial"] > add["raw"][-1]
    assert tuple(scale["raw"][5:7]) == scale["attrs"]
    text = format_tape(out)
    assert "MeanBackward0" in text and "[3, 3, 3, 3, ...]" in text
    dot = to_dot(out)
    assert dot.startswith("digraph tape {") and f"n{add['row']} -> n{sq['row']};" in dot


def test_row_columns_name_the_engine_columns():
    """One vocabulary: each column constant is its ROW_COLUMNS name in capitals."""
    assert len(ROW_COLUMNS) == loop.WIDTH
    for col, name in enumerate(ROW_COLUMNS):
        assert getattr(loop, name.upper()) == col


def test_tape_stats_counts_rows_and_saved_values():
    before = tape_stats()
    assert set(before) == {"rows", "saved_values", "arena_dtype"}
    x = torch.ones(3, requires_grad=True)
    with torch.no_grad():
        x * x
    assert tape_stats()["rows"] == before["rows"]
    keep = x * x                                                    # noqa: F841  (keeps its row)
    after = tape_stats()
    assert after["rows"] >= before["rows"] + 1
    assert after["saved_values"] >= before["saved_values"] + 6


def test_trace_backward_steps_through_the_seed_example():
    x, out = seed_graph()
    steps = trace_backward(out)
    assert [s["op"] for s in steps] == ["MeanBackward0", "MulBackward0", "MulBackward0",
                                        "AddBackward0", "Leaf"]
    grads = [float(s["grad"].reshape(-1)[0]) for s in steps]
    assert grads == [1.0, 0.25, 0.75, 4.5, 4.5]
    assert steps[0]["grad"].shape == () and steps[-1]["grad"].shape == (2, 2)
    assert steps[2]["sends"].keys() == {steps[3]["row"]}               # y * y: one input, twice
    np.testing.assert_array_equal(steps[2]["sends"][steps[3]["row"]], np.full((2, 2), 4.5))
    # nothing was accumulated or freed: the real backward still runs and agrees
    assert x.grad is None
    out.backward()
    np.testing.assert_array_equal(x.grad.numpy(), steps[-1]["grad"])
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        trace_backward(out)


@pytest.mark.parametrize("case", ["broadcast", "bce", "vjp", "two_roots", "float64"])
def test_trace_backward_matches_the_compiled_interpreter(case):
    torch.manual_seed(0)
    a = torch.randn(3, requires_grad=True)
    c = torch.randn(2, 3, requires_grad=True)
    grads = None
    if case == "broadcast":
        outs = ((a * c).exp() + c.sigmoid() / a).sum(0).mean()
    elif case == "bce":
        w = torch.randn(5, 3, requires_grad=True)
        outs = torch.nn.functional.binary_cross_entropy_with_logits(
            torch.ones(4, 5) @ w + a, torch.zeros(4, 3))
        c = w
    elif case == "vjp":
        outs = (a * 2).tanh() * c
        grads = torch.rand(2, 3)
    elif case == "two_roots":
        outs = [(a * c).sum(), (c ** 3).mean()]
        grads = [None, None]
    else:
        a = torch.randn(3, dtype=torch.float64, requires_grad=True)
        outs = (a.t() * c).relu().norm()
    steps = trace_backward(outs, grads)
    leaf = {s["row"]: s["grad"] for s in steps if s["op"] == "Leaf"}
    expect = torch.autograd.grad(outs, [a, c], grads)
    for t, g in zip((a, c), expect):
        np.testing.assert_allclose(leaf[t._leafvar], g.numpy(), rtol=1e-6, atol=1e-7)
    ops = [s for s in steps if s["op"] != "Leaf"]
    assert [s["row"] for s in ops] == sorted((s["row"] for s in ops), reverse=True)


def test_trace_backward_checks_its_arguments_as_backward_does():
    x = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar"):
        trace_backward(x * 2)
    with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
        trace_backward(torch.ones(3).sum())
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        trace_backward(x * 2, torch.ones(2))


def test_draw_makes_one_box_per_row_and_one_arrow_per_use():
    plt = pytest.importorskip("matplotlib.pyplot")
    import matplotlib
    matplotlib.use("Agg")
    x, out = seed_graph()
    ax = draw(out)
    texts = [t.get_text() for t in ax.texts]
    assert [t.split("\n")[0].split(": ")[1] for t in texts] == [r["op"] for r in tape_rows(out)]
    arrows = [p for p in ax.patches if type(p).__name__ == "FancyArrowPatch"]
    assert len(arrows) == sum(len(r["inputs"]) for r in tape_rows(out))    # y * y: two arrows
    assert not ax.lines                              # every edge joins neighbouring columns
    a = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    h = (a * 2).tanh()
    two = draw(h.sum(), (h * a).exp().mean())        # a also feeds the product two columns on
    assert len(two.texts) == len(tape_rows(h.sum(), (h * a).exp().mean())) == 7
    assert len(two.lines) == 1 and len(two.lines[0].get_xdata()) == 5   # via 2 columns
    fig, given = plt.subplots()
    assert draw(out, ax=given) is given
    plt.close("all")


def test_draw_without_matplotlib_says_what_to_use_instead(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    _, out = seed_graph()
    with pytest.raises(ImportError, match="format_tape"):
        draw(out)

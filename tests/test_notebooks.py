"""Run every notebook in notebooks/ top to bottom in a fresh kernel, and check what it prints.

A notebook that raises fails here. Outputs that do not depend on randomness are compared with the
numbers the seed tutorials print (../shared/seeds); random ones are checked by the identity they
illustrate. The same checks run on the committed notebooks, so their stored outputs stay true.

The kernel runs this interpreter (sys.executable) with this checkout first on PYTHONPATH, so it
imports the jitgrad under test.

    python tests/test_notebooks.py [NAME ...]

re-executes the notebooks the same way and stores them with their new outputs (after a change
that alters what they print; then check the new outputs and commit them).
"""
import functools
import json
import os
import re
import sys
import tempfile
import time

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NB_DIR = os.path.join(ROOT, "notebooks")
NOTEBOOKS = ("01_autograd_tutorial.ipynb", "02_the_tape.ipynb", "03_training_and_speed.ipynb",
             "04_cnn_and_transformer.ipynb")
CELL_TIMEOUT = 600        # seconds per cell; a cold Numba compile of the interpreter takes ~30 s
NOTEBOOK_LIMIT = 900      # seconds for a whole notebook


@functools.lru_cache(maxsize=None)
def executed(name, without_matplotlib=False):
    """(the notebook executed from a clean kernel, seconds it took). without_matplotlib: the
    kernel cannot import matplotlib, as for a user who has not installed it."""
    nb = nbformat.read(os.path.join(NB_DIR, name), as_version=4)
    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as tmp:
        path = [ROOT, os.environ.get("PYTHONPATH")]
        if without_matplotlib:
            os.makedirs(os.path.join(tmp, "hide", "matplotlib"))
            with open(os.path.join(tmp, "hide", "matplotlib", "__init__.py"), "w") as f:
                f.write("raise ImportError('matplotlib is hidden by tests/test_notebooks.py')\n")
            path.insert(0, os.path.join(tmp, "hide"))
        # a kernelspec of our own, found first, so no user-level "python3" kernel can stand in
        spec = os.path.join(tmp, "kernels", "python3")
        os.makedirs(spec)
        with open(os.path.join(spec, "kernel.json"), "w") as f:
            json.dump({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                       "display_name": "Python 3 (jitgrad tests)", "language": "python"}, f)
        mp.setenv("JUPYTER_PATH", tmp)
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, path)))
        mp.setenv("OMP_NUM_THREADS", "1")
        mp.delenv("MPLBACKEND", raising=False)       # keep the inline backend: figures are outputs
        client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", record_timing=False,
                                resources={"metadata": {"path": NB_DIR}})
        start = time.perf_counter()
        client.execute()
        return nb, time.perf_counter() - start


def committed(name):
    return nbformat.read(os.path.join(NB_DIR, name), as_version=4)


def cell(nb, cell_id):
    for c in nb.cells:
        if c.get("id") == cell_id:
            return c
    raise AssertionError(f"no cell with id {cell_id!r}")


def text(nb, cell_id, stream="stdout"):
    """What the cell printed on stream, followed by its result's text/plain."""
    parts = []
    for o in cell(nb, cell_id).get("outputs", []):
        if o.output_type == "stream" and o.name == stream:
            parts.append(o.text)
        elif o.output_type == "execute_result" and stream == "stdout":
            parts.append(o.data.get("text/plain", "") + "\n")
    return "".join(parts)


def has_png(nb, cell_id):
    return any("image/png" in o.get("data", {}) for o in cell(nb, cell_id).get("outputs", []))


def m22(v, w=""):
    """PyTorch's print of a 2x2 tensor filled with v (w: the suffix after the data)."""
    return f"tensor([[{v}, {v}],\n        [{v}, {v}]]{w})"


# ---- 01: the seeds' examples -------------------------------------------------------------------
SEED_VALUES_01 = {
    "tensor-x": m22("1.", ", requires_grad=True") + "\nNone\n",
    "tensor-z": m22("27.", ", grad_fn=<MulBackward0>") + " tensor(27., grad_fn=<MeanBackward0>)\n",
    "tensor-48": m22("48.", ", grad_fn=<MulBackward0>") + " tensor(48., grad_fn=<MeanBackward0>)\n",
    "scalar-backward": m22("4.5000") + "\n",
    "scalar-math": m22("4.5000") + "\n",
    "accumulate": m22("9.") + "\n" + m22("0.") + "\n",
    "vjp-ones": "tensor([1., 1., 1.], requires_grad=True)\n"
                "tensor([1024., 1024., 1024.], grad_fn=<MulBackward0>)\n"
                "tensor([1.0240e+02, 1.0240e+03, 1.0240e-01])\n",
    "vjp-scalar": "tensor([1., 1., 1.], requires_grad=True)\n"
                  "tensor([1024., 1024., 1024.], grad_fn=<MulBackward0>)\n"
                  "tensor([341.3333, 341.3333, 341.3333])\n",
    "no-grad": "True\nTrue\nFalse\n",
    "detach": "False\ntensor(True)\n",
    "variable-decl": ("tensor([[0., 0., 0., 0.],\n        [0., 0., 0., 0.],\n"
                      "        [0., 0., 0., 0.]])\n") * 2,
    "variable-grad": "None\nFalse\nTrue\n",
    "graph-vars": "(True, True, True)\n",
    "abc-a": m22("1.") + "\n" + m22("1.", ", requires_grad=True") + "\n" + m22("1.") + "\nNone\nNone\n",
    "abc-forward": m22("3.", ", grad_fn=<AddBackward0>") + "\n" + m22("9.", ", grad_fn=<PowBackward0>")
                   + "\ntensor(36., grad_fn=<SumBackward0>)\n",
    "retain-graph": m22("6.") + "\n" + m22("12.") + "\n",
    "make-grads-errors":
        "RuntimeError: Mismatch in shape: grad_output[0] has a shape of jitgrad.Size([2]) and "
        "output[0] has a shape of jitgrad.Size([3]).\n"
        "RuntimeError: grad can be implicitly created only for scalar outputs\n"
        "TypeError: gradients can be either Tensors or None, but got float\n",
    "no-grad-fn-error": "RuntimeError: element 0 of tensors does not require grad and does not "
                        "have a grad_fn\n",
    "dynamic-graph": "1.0 tensor([1024., 1024., 1024.])\n100.0 tensor([8., 8., 8.])\n",
}


def check_01(nb, live=True):
    for cell_id, expected in SEED_VALUES_01.items():
        assert text(nb, cell_id) == expected, cell_id
    y = text(nb, "tensor-y").splitlines()
    assert "\n".join(y[:2]) == m22("3.", ", grad_fn=<AddBackward0>")
    assert y[2].startswith("<AddBackward0 object at 0x")
    walk = text(nb, "next-functions").splitlines()
    assert walk[0].startswith("((<MulBackward0 object at 0x") and walk[1] == "MeanBackward0"
    assert walk[-1].strip() == "AccumulateGrad"
    # the vector-Jacobian product from random x: x.grad == v * 2**k; the seed's printed x
    assert re.search(r"k = \d+ doublings; x.grad == v \* 2\*\*k: True\n$", text(nb, "vjp-randn"))
    seed_x = text(nb, "vjp-seed-x").splitlines()
    assert seed_x[0] == "x : tensor([ 0.3164, -1.1508,  1.5400], requires_grad=True)"
    assert seed_x[-1] == "tensor([1.0240e+02, 1.0240e+03, 1.0240e-01])"
    shares = text(nb, "detach-shares").splitlines()
    assert shares == ["tensor([  3.1640, -11.5080,  15.4000], requires_grad=True)",
                      "tensor([ 0.3164, -1.1508,  1.5400], requires_grad=True)"]
    rg = text(nb, "requires-grad-").splitlines()
    assert rg[2:5] == ["False", "-------requires_grad_ to True--------", "True"]
    assert re.fullmatch(r"tensor\(-?\d+\.\d{4}, grad_fn=<SumBackward0>\)", rg[5])
    assert rg[6].startswith("<SumBackward0 object at 0x") and rg[7] == rg[5].split(",")[0] + ")"
    assert text(nb, "graph-backward").endswith("x.grad == 8 * loss: True\n")
    assert text(nb, "retain-grad").endswith("y.grad == 2 * loss: True\n")
    assert text(nb, "non-leaf-grad") == "(None, None)\n"
    assert "is not a leaf Tensor is being accessed" in text(nb, "non-leaf-grad", "stderr")
    back = text(nb, "abc-backward").splitlines()
    assert "\n".join(back[:2]) == m22("6.") and back[2] == "None"
    assert back[3].startswith("<AddBackward0 object") and back[4].startswith("<PowBackward0 object")
    assert back[5] == "True False False"
    assert text(nb, "twice-shape") == (
        "RuntimeError: Mismatch in shape: grad_output[0] has a shape of jitgrad.Size([3]) and "
        "output[0] has a shape of jitgrad.Size([]).\n")
    assert text(nb, "twice-error").startswith(
        "RuntimeError: Trying to backward through the graph a second time")
    ag = text(nb, "autograd-grad")
    assert ag.startswith(m22("4.5000") + "\nNone\nRuntimeError: The differentiated Tensor at index 1 "
                         "appears to not have been used in the graph.")
    assert ag.endswith("(" + m22("2.") + ", None)\n")
    setup = text(nb, "bce-setup").splitlines()
    assert setup[0].startswith("Gradient function for z = <AddBackward0 object at 0x")
    assert setup[1].startswith(
        "Gradient function for loss = <BinaryCrossEntropyWithLogitsBackward0 object at 0x")
    wb = text(nb, "bce-backward").splitlines()
    b_values = wb[-1][len("tensor(["):-2]
    assert len(wb) == 6 and all(b_values in line for line in wb[:5])   # each row of w.grad is b.grad
    assert text(nb, "bce-check").endswith("True True\n")
    assert text(nb, "bce-no-grad") == "True\nFalse\n" and text(nb, "bce-detach") == "False\n"


# ---- 02: the tape ------------------------------------------------------------------------------
def tape_table(listing):
    """format_tape's text as [(row, op name, inputs, shape, saved, flags)], op codes dropped."""
    out = []
    for line in listing.strip("\n").splitlines()[1:]:
        cols = re.split(r"\s{2,}", line.strip())
        cols[1] = cols[1].rsplit(" (", 1)[0]
        out.append(tuple(cols) + ("",) * (6 - len(cols)))
    return out


def check_02(nb, live=True):
    assert tape_table(text(nb, "tape-listing")) == [
        ("0", "Leaf", "-", "[2, 2]", "-", ""),
        ("1", "AddBackward0", "0", "[2, 2]", "-", ""),
        ("2", "MulBackward0", "1,1", "[2, 2]", "[3, 3, 3, 3, ...]", "saved"),
        ("3", "MulBackward0", "2", "[2, 2]", "[3]", ""),   # the constant 3, not a tensor
        ("4", "MeanBackward0", "3", "[]", "-", "")]
    raw = [line.split() for line in text(nb, "raw-rows").splitlines()]
    assert raw[0] == ["row", "op", "a", "b", "saved_at", "shape_id", "i0", "i1", "flags", "serial"]
    assert [r[2:4] for r in raw[1:]] == [["-1", "-1"], ["0", "-1"], ["1", "1"], ["2", "-1"], ["3", "-1"]]
    assert raw[5][6] == "3"                                          # the mean's dims, 0b11
    decode = text(nb, "decode-i0").splitlines()
    assert decode[0] == "MulBackward0 constant: [3.] flags: []"
    assert decode[1] == "saved by row 2: [3. 3. 3. 3. 3. 3. 3. 3.]"
    assert text(nb, "by-hand") == (
        "row 4 MeanBackward0  received 1     -> row 3 += 0.25\n"
        "row 3 MulBackward0   received 0.25  -> row 2 += 0.75\n"
        "row 2 MulBackward0   received 0.75  -> row 1 += 2.25, row 1 += 2.25\n"
        "row 1 AddBackward0   received 4.5   -> row 0 += 4.5\n"
        "by hand: [[4.5, 4.5], [4.5, 4.5]]\n")
    assert text(nb, "compare-compiled") == m22("4.5000") + "\nsame as by hand: True\n"
    trace = [line.split()[2] for line in text(nb, "trace-seed").splitlines()]
    assert trace == ["MeanBackward0", "MulBackward0", "MulBackward0", "AddBackward0", "Leaf"]
    assert [r[1] for r in tape_table(text(nb, "bce-tape"))] == [
        "Leaf", "MmBackward0", "Leaf", "Unbroadcast", "AddBackward0",
        "BinaryCrossEntropyWithLogitsBackward0"]
    bce = [line.split()[2] for line in text(nb, "bce-trace").splitlines()]
    assert bce == ["BinaryCrossEntropyWithLogitsBackward0", "AddBackward0", "Unbroadcast",
                   "MmBackward0", "Leaf", "Leaf"]
    diffs = [float(d) for d in re.findall(r"differ by at most (\S+)\n", text(nb, "bce-compare"))]
    assert len(diffs) == 2 and max(diffs) < 1e-6
    freed = tape_table(text(nb, "freed").split("\n\n")[0])
    assert [r[5] for r in freed] == ["", "freed", "saved freed", "freed", "freed"]
    assert "RuntimeError: Trying to backward through the graph a second time" in text(nb, "freed")
    ng = re.search(r"under no_grad: (\d+) -> (\d+) rows; c.requires_grad = False ; rows behind c: \[\]",
                   text(nb, "no-grad-tape"))
    assert ng and ng.group(1) == ng.group(2)
    rec = re.search(r"recording: +(\d+) -> (\d+) rows", text(nb, "no-grad-tape"))
    assert int(rec.group(2)) - int(rec.group(1)) == 4                   # x's leaf, *, +, exp
    det = text(nb, "detach-tape")
    one = tape_table(det.split("\n\n")[1])
    assert one[2][1:] == ("MulBackward0", one[1][0], "[2, 2]", "[3, 3, 3, 3]", "saved")
    assert "rows behind y.detach(): []" in det
    assert "d/dx sum(y * y)          = [[6.0, 6.0], [6.0, 6.0]]" in det
    assert "d/dx sum(y.detach() * y) = [[3.0, 3.0], [3.0, 3.0]]" in det
    assert text(nb, "dot").startswith("digraph tape {")
    for cell_id in ("draw-seed", "draw-bce", "draw-two"):
        assert has_png(nb, cell_id), cell_id


# ---- 03: training and speed -------------------------------------------------------------------
def torch_installed():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def check_03(nb, figures=True, live=True):
    """live: nb was executed here, so it has a torch row exactly when torch is installed; a
    committed notebook keeps the rows of the machine that stored it."""
    assert text(nb, "data") == ("(100, 2) (100,) points per class: [50 50]\n"
                                "jitgrad.Size([100, 2]) jitgrad.float32 jitgrad.Size([100, 1])\n")
    assert text(nb, "model") == (
        "Sequential(\n  (0): Linear(in_features=2, out_features=16, bias=True)\n  (1): ReLU()\n"
        "  (2): Linear(in_features=16, out_features=16, bias=True)\n  (3): ReLU()\n"
        "  (4): Linear(in_features=16, out_features=1, bias=True)\n)\n337 parameters\n")
    train = text(nb, "train")
    losses = [float(v) for v in re.findall(r"^step +\d+  loss (\S+)", train, re.M)]
    assert len(losses) == 7 and losses[-1] < 0.05 and losses[-1] < losses[0] / 10
    assert float(re.search(r"training accuracy (\d+)%", train).group(1)) >= 97
    assert "rows recorded while scoring the grid: 0\n" in text(nb, "plots")
    bare = re.search(r"bare tensors: loss (\S+) -> (\S+), training accuracy (\d+)%", text(nb, "bare"))
    assert float(bare.group(2)) < float(bare.group(1)) / 10 and int(bare.group(3)) >= 97
    table = {line.split()[0]: [float(v.replace(",", "")) for v in line.split()[1:]]
             for line in text(nb, "speed").splitlines() if line.split()[:1] in (["jitgrad"], ["torch"])}
    libs = sorted(table)
    assert libs in (["jitgrad"], ["jitgrad", "torch"])
    if live:
        assert ("torch" in libs) == torch_installed()
    for name, (fwd, bwd, opt, total, rate) in table.items():
        assert min(fwd, bwd, opt) > 0 and abs(fwd + bwd + opt - total) <= 2, name
    assert ("jitgrad runs at" in text(nb, "speed")) == ("torch" in libs)
    assert len(text(nb, "sweep").splitlines()) == 4
    compiled = text(nb, "compiled")
    assert re.search(r"^jitgrad compiled +[\d,]+$", compiled, re.M)
    assert float(re.search(r"compiled / eager: (\S+)x", compiled).group(1)) > 1
    if figures:
        assert has_png(nb, "plots") and has_png(nb, "speed-plot")
    else:
        assert text(nb, "plots").count("\n") > 20 and "loss every 25 steps" in text(nb, "plots")


# ---- 04: a small CNN ----------------------------------------------------------------------------
def check_04(nb, figures=True, live=True):
    shapes, counts = text(nb, "data").split(" digits per class: ")
    assert shapes == "(600, 1, 8, 8) (100, 1, 8, 8)"
    counts = [int(v) for v in counts.strip("[]\n").split()]
    assert len(counts) == 10 and sum(counts) == 600 and min(counts) > 40
    model = text(nb, "model")
    assert model.startswith("Sequential(\n  (0): Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), "
                            "padding=(1, 1))\n  (1): ReLU()\n  (2): MaxPool2d(kernel_size=2, stride=2, "
                            "padding=0, dilation=1, ceil_mode=False)\n")
    assert model.endswith("1898 parameters\n(2, 10) AddmmBackward0 <- ConvolutionBackward0\n")
    train = text(nb, "train")
    losses = [float(v) for v in re.findall(r"^epoch +\d+  loss (\S+)", train, re.M)]
    assert len(losses) == 4 and losses[-1] < losses[0] / 3
    acc = re.search(r"training accuracy (\d+)%, held-out accuracy (\d+)%", train)
    assert int(acc.group(1)) >= 90 and int(acc.group(2)) >= 80
    if figures:
        assert has_png(nb, "plots")
    else:
        assert text(nb, "plots").startswith("loss every 24 steps:")
    lm = re.search(r"loss (\S+) -> (\S+) \(uniform guessing: (\S+)\)", text(nb, "transformer"))
    first, last, uniform = (float(v) for v in lm.groups())
    assert first > 0.9 * uniform and last < 0.25 * first
    assert re.search(r"greedy continuation: 'the quick.{24}'", text(nb, "transformer"))


CHECKS = {"01_autograd_tutorial.ipynb": check_01, "02_the_tape.ipynb": check_02,
          "03_training_and_speed.ipynb": check_03, "04_cnn_and_transformer.ipynb": check_04}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_prints_the_seeds_numbers(name):
    nb, seconds = executed(name)
    assert seconds < NOTEBOOK_LIMIT, f"{name} took {seconds:.0f} s"
    CHECKS[name](nb)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_executed_in_order_with_current_outputs(name):
    nb = committed(name)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    CHECKS[name](nb, live=False)


def test_notebooks_fall_back_to_text_without_matplotlib():
    tape, _ = executed("02_the_tape.ipynb", without_matplotlib=True)
    for cell_id in ("draw-seed", "draw-bce", "draw-two"):
        assert not has_png(tape, cell_id) and text(tape, cell_id).startswith("row  op"), cell_id
    train, _ = executed("03_training_and_speed.ipynb", without_matplotlib=True)
    assert text(train, "setup").startswith("matplotlib is not installed")
    check_03(train, figures=False)


def test_readme_links_every_notebook():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    for name in NOTEBOOKS:
        assert f"](notebooks/{name})" in readme, name


if __name__ == "__main__":
    for name in sys.argv[1:] or NOTEBOOKS:
        nb, seconds = executed(os.path.basename(name))
        nbformat.write(nb, os.path.join(NB_DIR, os.path.basename(name)))
        print(f"{name}: executed in {seconds:.1f} s and stored")

"""Run every script in examples/ and check what it prints: each is a PyTorch script whose only
change is `import jitgrad as torch`. With PyTorch installed, the same file with `import torch`
runs alongside and the two must agree: exactly where nothing random is involved, else both must
reach a good result (the random streams differ, so the numbers do too)."""
import functools
import os
import re
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
IMPORT = "import jitgrad as torch\n"
TIMEOUT = 600       # seconds: a cold Numba cache compiles the interpreter first

try:
    import torch  # noqa: F401
    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False

SCRIPTS = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py"))


def _start(path):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    return subprocess.Popen([sys.executable, path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _finish(proc, what):
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, f"{what} failed:\n{err}"
    return out


@functools.lru_cache(maxsize=None)
def outputs(name):
    """(what the script prints under jitgrad, and under torch or None), run side by side."""
    path = os.path.join(EXAMPLES, name)
    runs = [_start(path)]
    with tempfile.TemporaryDirectory() as tmp:
        if HAVE_TORCH:
            with open(path) as f:
                source = f.read()
            torch_path = os.path.join(tmp, name)
            with open(torch_path, "w") as f:
                f.write(source.replace(IMPORT, "import torch\n", 1))
            runs.append(_start(torch_path))
        printed = [_finish(p, f"{name} under {lib}") for p, lib in zip(runs, ("jitgrad", "torch"))]
    return printed[0], (printed[1] if HAVE_TORCH else None)


def values(printed):
    """The `label: value` lines a script prints, as {label: value (a float when it is one)}."""
    found = {}
    for line in printed.splitlines():
        m = re.match(r"^([^:]+):\s*(.+)$", line)
        if m:
            v = m.group(2).strip()
            try:
                v = float(v)
            except ValueError:
                pass
            found[m.group(1).strip()] = v
    return found


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_is_a_torch_script_with_one_changed_line(name):
    with open(os.path.join(EXAMPLES, name)) as f:
        source = f.read()
    assert source.count(IMPORT) == 1
    assert "jitgrad" not in source.replace(IMPORT, "").replace("jitgrad as torch", "")


# what each script must print under jitgrad (and under torch), and what must equal torch's
CHECKS = {
    "polynomial_regression.py": dict(
        good=lambda v: v["final loss"] < 12.0,
        exact=("final loss", "Result")),
    "mlp_classifier.py": dict(
        good=lambda v: v["accuracy"] >= 0.95 and v["final loss"] < 0.2),
    "training_checkpoint.py": dict(
        good=lambda v: v["final loss"] < 0.03
        and v["restored model gives the same outputs"] == "True",
        exact=("after 400 steps",)),
    "physics_informed.py": dict(
        good=lambda v: v["max |u - cos t| on [0, 3]"] < 1e-2 and v["residual loss"] < 1e-3
        and v["Hessian symmetric"] == "True" and v["Hessian equals 2 h^T h / n"] == "True"),
}


def test_every_example_is_checked():
    assert set(CHECKS) == set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs_and_learns(name):
    printed, torch_printed = outputs(name)
    check = CHECKS[name]
    got = values(printed)
    assert check["good"](got), printed
    if torch_printed is None:
        return
    expected = values(torch_printed)
    assert check["good"](expected), torch_printed         # the bar is one torch clears too
    for key in check.get("exact", ()):
        if isinstance(got[key], float):
            assert got[key] == pytest.approx(expected[key], rel=1e-4), key
        else:
            assert got[key] == expected[key], key

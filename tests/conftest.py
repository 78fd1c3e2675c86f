import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _unwritten_slots_hold_nan(monkeypatch):
    """A compiled program's value buffer is not zeroed (compiler/program.py, _unwritten): in
    the tests it holds nan, so a replay that read a slot before writing it gives nan, not a
    zero that happens to be right."""
    import jitgrad.compiler.program as program
    monkeypatch.setattr(program, "_unwritten", lambda n, dtype: np.full(n, np.nan, dtype))


@pytest.fixture(autouse=True)
def _reused_plans_are_checked(monkeypatch):
    """A new program of a structure seen before takes the first one's analysis (compiler/
    program.py, _plan_key): in the tests each such program is analysed again as well, and
    differing raises, so a key missing something the analysis reads shows."""
    import jitgrad.compiler.program as program
    monkeypatch.setattr(program, "_CHECK_PLANS", [True])

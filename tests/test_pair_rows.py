"""record_pair packs its rows itself (I0 and I1 as zero pad bytes): they must read as the row
record() would append for the same op, column by column."""
import jitgrad as torch
from jitgrad.engine.loop import A, B, FLAGS, I0, I1, OP, SERIAL, SHAPE_ID, WIDTH
from jitgrad.engine.tape import TAPE
from jitgrad.ops._core import record


def test_pair_row_columns_match_record():
    x = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    w = torch.tensor(-2.0, dtype=torch.float64, requires_grad=True)
    pair = x * w                                        # record_pair's row
    general = record(TAPE.row(pair._node)[OP], pair._a.copy(), x, w, saves=[w, x])
    rp, rg = list(TAPE.row(pair._node)), list(TAPE.row(general._node))
    assert len(rp) == WIDTH
    assert rp[I0] == rp[I1] == 0
    for c in (OP, A, B, SHAPE_ID, I0, I1, FLAGS):
        assert rp[c] == rg[c], c
    assert rg[SERIAL] == rp[SERIAL] + 1
    (pair + general).backward()
    assert x.grad.item() == -4.0 and w.grad.item() == 3.0

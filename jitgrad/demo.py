"""The demo model shared by ``python -m jitgrad`` and the Dask sweep (jitgrad.distributed): the
micrograd moons MLP 2-H-H-1 with ReLU, its optimizers and one training step, written against a
torch-like module passed in (jitgrad, or torch for the comparison)."""
import numpy as np

OPTIMIZERS = {"sgd": ("SGD", dict(lr=0.1, momentum=0.9)), "adam": ("Adam", dict(lr=0.01)),
              "adamw": ("AdamW", dict(lr=0.01)), "rmsprop": ("RMSprop", dict(lr=0.005))}


def make_model(torch, hidden, dtype):
    m = torch.nn.Sequential(torch.nn.Linear(2, hidden), torch.nn.ReLU(),
                            torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                            torch.nn.Linear(hidden, 1))
    return m.to(dtype)


def make_step(torch, model, opt, loss_kind):
    params = list(model.parameters())
    bce = torch.nn.BCEWithLogitsLoss()

    def step(X, y_pm, y01):
        opt.zero_grad()
        score = model(X)
        if loss_kind == "hinge":
            loss = torch.relu(1 - y_pm * score).mean() + 1e-4 * sum((p * p).sum() for p in params)
        else:
            loss = bce(score, y01)
        loss.backward()
        opt.step()
        return loss, score
    return step


def as_tensors(torch, X, y, dtype):
    X = torch.tensor(X, dtype=dtype)
    y01 = torch.tensor(y.astype(np.float64), dtype=dtype).reshape(-1, 1)
    return X, y01 * 2 - 1, y01

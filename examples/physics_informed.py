"""A physics-informed network: learn u(t) with u'' + u = 0, u(0) = 1, u'(0) = 0 (so u = cos t)
from the equation alone, derivatives of the network by autograd.grad with create_graph=True;
then the Hessian of a least-squares loss in the output layer's weights by
torch.autograd.functional.hessian.

A torch script: `import jitgrad as torch` is its only change (run it with `import torch` too).
"""
import jitgrad as torch

nn = torch.nn

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)

net = nn.Sequential(nn.Linear(1, 20), nn.Tanh(), nn.Linear(20, 20), nn.Tanh(), nn.Linear(20, 1))
t = torch.linspace(0, 3, 40).unsqueeze(1).requires_grad_(True)
t0 = torch.zeros(1, 1, requires_grad=True)


def residual_loss():
    u = net(t)
    du = torch.autograd.grad(u.sum(), t, create_graph=True)[0]
    d2u = torch.autograd.grad(du.sum(), t, create_graph=True)[0]
    u0 = net(t0)
    du0 = torch.autograd.grad(u0.sum(), t0, create_graph=True)[0]
    return ((d2u + u) ** 2).mean() + (u0 - 1).pow(2).sum() + du0.pow(2).sum()


optimizer = torch.optim.LBFGS(net.parameters(), lr=1.0, max_iter=20,
                              line_search_fn="strong_wolfe")


def closure():
    optimizer.zero_grad()
    loss = residual_loss()
    loss.backward()
    return loss


for step in range(8):
    loss = optimizer.step(closure)
print(f"residual loss: {residual_loss().item():.3e}")

with torch.no_grad():
    grid = torch.linspace(0, 3, 7).unsqueeze(1)
    error = (net(grid) - torch.cos(grid)).abs().max().item()
print(f"max |u - cos t| on [0, 3]: {error:.2e}")

# a least-squares fit of cos t in the last layer's weights: its Hessian is 2 h^T h / n, with h
# the hidden features
last = net[4]
with torch.no_grad():
    hidden = net[:4](t)


def loss_of(weight):
    return ((hidden @ weight.T + last.bias - torch.cos(t)) ** 2).mean()


H = torch.autograd.functional.hessian(loss_of, last.weight.detach()).reshape(20, 20)
print(f"Hessian symmetric: {torch.allclose(H, H.T)}")
print(f"Hessian equals 2 h^T h / n: {torch.allclose(H, 2 * hidden.T @ hidden / len(t))}")
print(f"final loss: {residual_loss().item():.6e}")

"""Fit y = sin(x) on [-pi, pi] with a cubic polynomial, gradients by autograd and the update by
hand, as in PyTorch's "Learning PyTorch with Examples" tutorial.

A torch script: `import jitgrad as torch` is its only change (run it with `import torch` too).
"""
import math

import jitgrad as torch

dtype = torch.float
device = torch.device("cpu")

x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
y = torch.sin(x)

# the coefficients start at fixed values, so every run (and torch's) takes the same path
a = torch.full((), 0.1, device=device, dtype=dtype, requires_grad=True)
b = torch.full((), -0.2, device=device, dtype=dtype, requires_grad=True)
c = torch.full((), 0.3, device=device, dtype=dtype, requires_grad=True)
d = torch.full((), -0.1, device=device, dtype=dtype, requires_grad=True)

learning_rate = 1e-6
for t in range(2000):
    y_pred = a + b * x + c * x ** 2 + d * x ** 3
    loss = (y_pred - y).pow(2).sum()
    if t % 500 == 499:
        print(t, loss.item())
    loss.backward()
    with torch.no_grad():
        for p in (a, b, c, d):
            p -= learning_rate * p.grad
            p.grad = None

print(f"Result: y = {a.item():.4f} + {b.item():.4f} x + {c.item():.4f} x^2 + {d.item():.4f} x^3")
print(f"final loss: {loss.item():.6f}")

"""Classify two interleaved half-moons with a small nn.Module MLP, DataLoader batches and Adam, in
the style of PyTorch's "Build the Neural Network" and "Optimizing Model Parameters" tutorials.

A torch script: `import jitgrad as torch` is its only change (run it with `import torch` too).
"""
import math

import jitgrad as torch

nn = torch.nn
DataLoader, TensorDataset = torch.utils.data.DataLoader, torch.utils.data.TensorDataset

device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)


def make_moons(n, noise=0.1, generator=None):
    """Two half circles, one shifted and flipped, with Gaussian noise."""
    angle = torch.rand(n, generator=generator) * math.pi
    label = torch.randint(0, 2, (n,), generator=generator)
    x = torch.where(label == 0, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(label == 0, torch.sin(angle), 0.5 - torch.sin(angle))
    points = torch.stack([x, y], dim=1) + noise * torch.randn(n, 2, generator=generator)
    return points, label


class MLP(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.flatten = nn.Flatten()
        self.layers = nn.Sequential(
            nn.Linear(2, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 2),
        )

    def forward(self, x):
        return self.layers(self.flatten(x))


generator = torch.Generator().manual_seed(42)
points, labels = make_moons(600, generator=generator)
dataset = TensorDataset(points, labels)
train_set, test_set = torch.utils.data.random_split(dataset, [0.8, 0.2], generator=generator)
train_loader = DataLoader(train_set, batch_size=64, shuffle=True, generator=generator)
test_loader = DataLoader(test_set, batch_size=100)

model = MLP().to(device)
loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

for epoch in range(20):
    model.train()
    for xb, yb in train_loader:
        xb, yb = xb.to(device), yb.to(device)
        loss = loss_fn(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if epoch % 5 == 4:
        print(f"epoch {epoch + 1}: train loss {loss.item():.4f}")

model.eval()
correct, total, test_loss = 0, 0, 0.0
with torch.no_grad():
    for xb, yb in test_loader:
        logits = model(xb)
        test_loss += loss_fn(logits, yb).item() * len(yb)
        correct += (logits.argmax(dim=1) == yb).sum().item()
        total += len(yb)
print(f"final loss: {test_loss / total:.6f}")
print(f"accuracy: {correct / total:.4f}")

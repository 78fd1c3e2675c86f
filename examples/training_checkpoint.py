"""A custom training loop with a learning-rate schedule and checkpointing: train half-way, save
model, optimizer and scheduler state_dicts with torch.save, load them into fresh objects and
finish training, in the style of PyTorch's "Saving and Loading Models" recipe.

A torch script: `import jitgrad as torch` is its only change (run it with `import torch` too).
"""
import os
import tempfile

import jitgrad as torch

nn, F = torch.nn, torch.nn.functional

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)

# noisy samples of a smooth function of three inputs
inputs = torch.randn(512, 3)
targets = (inputs[:, :1] * inputs[:, 1:2] + torch.sin(inputs[:, 2:])).detach()
targets += 0.05 * torch.randn_like(targets)


def build():
    model = nn.Sequential(nn.Linear(3, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                          nn.Linear(64, 1)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=100, gamma=0.5)
    return model, optimizer, scheduler


def train(model, optimizer, scheduler, steps):
    for _ in range(steps):
        loss = F.mse_loss(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return loss.item()


model, optimizer, scheduler = build()
half_loss = train(model, optimizer, scheduler, 200)
print(f"after 200 steps: loss {half_loss:.5f}, lr {scheduler.get_last_lr()[0]:.2e}")

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "checkpoint.pt")
    torch.save({"step": 200, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict()}, path)
    checkpoint = torch.load(path)

resumed, resumed_optimizer, resumed_scheduler = build()
resumed.load_state_dict(checkpoint["model"])
resumed_optimizer.load_state_dict(checkpoint["optimizer"])
resumed_scheduler.load_state_dict(checkpoint["scheduler"])
with torch.no_grad():
    same = torch.equal(resumed(inputs), model(inputs))
print(f"restored model gives the same outputs: {same}")

final_loss = train(resumed, resumed_optimizer, resumed_scheduler, 200)
print(f"after 400 steps: lr {resumed_scheduler.get_last_lr()[0]:.2e}")
print(f"final loss: {final_loss:.6f}")

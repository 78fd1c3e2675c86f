"""A short tour: the seed example, its printed tensors and grad_fn, and the tape behind it.

    python -m jitgrad.tour
"""
import jitgrad as torch


def main():
    print("x = torch.ones(2, 2, requires_grad=True)")
    x = torch.ones(2, 2, requires_grad=True)
    print(x, end="\n\n")
    y = x + 2
    print("y = x + 2\n", y, "\ny.grad_fn =", y.grad_fn, end="\n\n")
    out = (3 * y ** 2).mean()
    print("out = (3 * y ** 2).mean()\n", out, end="\n\n")
    print("The tape behind out (one row per op; saved values live in a flat arena):")
    print(torch.autograd.format_tape(out), end="\n\n")
    print("out.backward()   # one call into the compiled interpreter (compiles on first use)")
    out.backward()
    print("x.grad =", x.grad)
    print("d(out)/dx = 3/2 (x + 2) = 4.5 at x = 1")


if __name__ == "__main__":
    main()

"""Grad-mode switches. The mode is thread-local; when it is off, ops simply do not record."""
import functools

from ..engine.tape import is_grad_enabled, set_grad_enabled_flag


class _GradMode:
    """A context manager and a decorator that sets grad mode and restores it on exit."""
    mode = True

    def __enter__(self):
        self._prev = is_grad_enabled()
        set_grad_enabled_flag(self.mode)
        return self

    def __exit__(self, *exc):
        set_grad_enabled_flag(self._prev)
        return False

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = is_grad_enabled()
            set_grad_enabled_flag(mode)
            try:
                return fn(*args, **kwargs)
            finally:
                set_grad_enabled_flag(prev)
        return wrapper


class no_grad(_GradMode):
    mode = False


class enable_grad(_GradMode):
    mode = True


class inference_mode(_GradMode):
    def __init__(self, mode=True):
        self.mode = not mode


class set_grad_enabled(_GradMode):
    """Sets the mode on construction, so a plain call works too, as in PyTorch."""

    def __init__(self, mode):
        self._prev = is_grad_enabled()
        self.mode = bool(mode)
        set_grad_enabled_flag(self.mode)

    def __enter__(self):
        return self

    def __call__(self, fn):
        set_grad_enabled_flag(self._prev)   # used as a decorator: undo the eager switch
        return super().__call__(fn)

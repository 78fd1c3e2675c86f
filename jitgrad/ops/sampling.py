"""F.grid_sample and F.affine_grid (issue 14), written as compositions of recorded ops.

grid_sample unnormalises the grid, applies the padding mode (clip, reflect) with where() so the
gradient is torch's piecewise one (none at or beyond a border), floors the coordinates in numpy,
gathers the corner values with take() and weights them with differentiable functions of the
fractional parts. Gradients of any order and the input's and grid's gradients are those of the
ops it runs, so the grad_fn names are theirs (torch records GridSampler2DBackward0,
GridSampler3DBackward0 and AffineGridGeneratorBackward0). The arithmetic follows torch's CPU
kernels (aten/src/ATen/native/cpu/GridSamplerKernel.cpp) step by step, so sampling positions and
the kinks of the gradient (pixel centres, borders) fall where torch's do.

The sampling positions are read from the grid's values in Python: jitgrad.compile cannot replay
grid_sample (the trace fails with that reason and the function runs eagerly).
"""
import builtins
import itertools
import math
import warnings

import numpy as np

from ..engine import hook
from ..tensor import Tensor, _type_name, _wrap
from ._core import quiet
from .elementwise import fmod, where
from .indexing import TAKE, _gathered, select
from .linalg import matmul
from .reductions import sum
from .shape import cat, reshape, stack, transpose, unsqueeze

_ALIGN_WARNING = ("Default grid_sample and affine_grid behavior has changed to align_corners=False since "
                  "1.3.0. Please specify align_corners=True if the old behavior is desired. See the "
                  "documentation of grid_sample for details.")
_MODES = ("bilinear", "nearest", "bicubic")
_PADDINGS = ("zeros", "border", "reflection")


class _Axis:
    """One spatial axis of the input and torch's constants for it. 2-d sampling follows torch's
    vectorised kernel (ComputeLocationBase), 3-d its scalar one (GridSampler.h), whose rounding,
    reflection and nan clipping differ slightly."""

    def __init__(self, size, align, dt, scalar):
        self.size, self.dt, self.align, self.scalar = size, dt, align, scalar
        self.max = float(size - 1)
        self.scale = (size - 1) / 2 if align else size / 2
        self.low = 0.0 if align else -0.5
        self.twice_span = float(2 * (size - 1) if align else 2 * size)
        self.empty = align and size <= 1


def _unnormalize(coord, ax):
    """[-1, 1] to pixel positions: [0, size - 1] (align_corners) or [-0.5, size - 0.5]."""
    if ax.scalar:
        return (coord + 1) / 2 * ax.max if ax.align else ((coord + 1) * ax.size - 1) / 2
    ix = (coord + 1) * ax.scale
    return ix if ax.align else ix - 0.5


def _clip(ix, ax):
    """ix clipped to [0, size - 1]; nan goes to 0 (torch's vectorised kernel) or to size - 1 (its
    scalar one). The gradient is zero on and beyond the borders, as torch's."""
    v = ix._a
    inside = (v > 0) & (v < ax.max)
    clipped = np.minimum(np.where(v > 0, v, 0), ax.max)
    if ax.scalar:
        clipped[np.isnan(v)] = ax.max
    return where(inside, ix, clipped.astype(ax.dt))


def _reflect(ix, ax):
    """ix reflected by the borders low and low + span, each step as torch computes it: the
    vectorised kernel folds |ix - low| by twice the span, then flips once more if past the span;
    the scalar one takes fmod by the span and flips on odd floor(|ix - low| / span), an int32 that
    overflows to an even number on x86."""
    if ax.empty:
        return where(np.zeros(ix.shape, np.bool_), ix, np.zeros(ix.shape, ax.dt))
    t = ix - ax.low if ax.low else ix
    twice, span = ax.dt(ax.twice_span), ax.dt(ax.twice_span / 2)
    a = t * np.where(t._a < 0, -1, 1).astype(ax.dt)       # |t|, its gradient +-1 (+1 at 0)
    if ax.scalar:
        extra = fmod(a, float(span))
        flips = np.floor(a._a / span)
        odd = (np.abs(flips) < 2 ** 31) & (np.fmod(flips, 2) != 0)
        r = where(odd, float(span) - extra, extra)
    else:
        extra = a - np.trunc(a._a / twice) * twice
        r = where(extra._a > twice - extra._a, float(twice) - extra, extra)
    return r + ax.low if ax.low else r


def _source(coord, ax, padding):
    ix = _unnormalize(coord, ax)
    if padding == "border":
        return _clip(ix, ax)
    if padding == "reflection":
        return _clip(_reflect(ix, ax), ax)
    return ix


def _in_bounds(positions, axes):
    valid = True
    for p, ax in zip(positions, axes):
        valid = valid & (p > -1) & (p < ax.size)
    return valid


def _gather(input, positions, valid):
    """input's values at integer spatial positions (one float array per spatial dim, outer dim
    first, each (K, N, *out)), zero where not valid: a (K, N, C, *out) tensor. Invalid positions
    read a zero appended to the flattened input (cheaper than masking the K-times larger result)."""
    n, c = input.shape[:2]
    spatial = tuple(input.shape[2:])
    flat = np.zeros(valid.shape, np.int64)
    for p, size in zip(positions, spatial):
        flat = flat * size + np.where(valid, p, 0).astype(np.int64)
    out = flat.shape[2:]
    numel = n * c * math.prod(spatial)
    base = (np.arange(n, dtype=np.int64)[:, None] * c + np.arange(c, dtype=np.int64)) * math.prod(spatial)
    pos = base.reshape((1, n, c) + (1,) * len(out)) + flat[:, :, None]
    if not valid.all():
        pos = np.where(valid[:, :, None], pos, numel)
        input = cat([reshape(input, (-1,)), _wrap(np.zeros(1, input._a.dtype))])
    return _gathered(TAKE, input, pos, pos.shape)        # take(), without re-checking the positions


def _weighted(values, weights, dim):
    """sum over dim of values * weights, the terms added in order (as torch's kernels)."""
    return sum(values * weights, dim)


def _linear(input, coords, axes):
    """(Bi/tri)linear: the 2^d corners around each position, each weighted by the product of its
    per-axis distances to the opposite corner (torch's nw = s * e, ...); corners in torch's order."""
    floors, weights = [], []
    for c, ax in zip(coords, axes):
        f = np.floor(c._a)
        frac = c - f
        if ax.scalar and not np.isfinite(frac._a).all():
            # torch's scalar kernel skips corners out of range, so a nan or inf position gives 0
            # (the vectorised one multiplies its nan weights by zeros: nan)
            frac = where(np.isfinite(frac._a), frac, 0.0)
        floors.append(f)
        weights.append((1 - frac, frac))
    positions, ws = [], []
    for bits in itertools.product((0, 1), repeat=len(coords)):
        positions.append([f + b for f, b in zip(floors, bits)])
        w = weights[0][bits[0]]
        for k in range(1, len(bits)):
            w = w * weights[k][bits[k]]
        ws.append(w)
    positions = [np.stack(p) for p in zip(*positions)]
    values = _gather(input, positions, _in_bounds(positions, axes))
    return _weighted(values, unsqueeze(stack(ws), 2), 0)


def _nearest(input, coords, axes, grid):
    positions = [np.rint(c._a)[None] for c in coords]
    out = select(_gather(input, positions, _in_bounds(positions, axes)), 0, 0)
    if grid.requires_grad:          # torch's grid gradient is zeros, not None
        out = where(np.ones((), np.bool_), out, unsqueeze(select(grid, -1, 0), 1))
    return out


def _cubic_coefficients(t):
    """torch's cubic convolution weights (A = -0.75) of the taps at -1, 0, 1, 2 from t."""
    A = -0.75
    x = t + 1
    c0 = ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
    c1 = ((A + 2) * t - (A + 3)) * t * t + 1
    x = 1 - t
    c2 = ((A + 2) * x - (A + 3)) * x * x + 1
    x = 2 - t
    c3 = ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
    return stack([c0, c1, c2, c3])


def _bicubic(input, x, y, axes, padding):
    """4x4 taps around each position, the padding mode applied to the taps' integer positions
    (not to the sampling position), interpolated along x, then y (torch's order)."""
    ay, ax = axes
    ix, iy = _unnormalize(x, ax), _unnormalize(y, ay)
    fx, fy = np.floor(ix._a), np.floor(iy._a)
    cx, cy = _cubic_coefficients(ix - fx), _cubic_coefficients(iy - fy)
    px = [_pad_positions(fx + (i - 1), ax, padding) for i in range(4)]
    py = [_pad_positions(fy + (j - 1), ay, padding) for j in range(4)]
    positions = [np.stack([py[j] for j in range(4) for i in range(4)]),
                 np.stack([px[i] for j in range(4) for i in range(4)])]
    positions = [np.trunc(p) for p in positions]
    values = _gather(input, positions, _in_bounds(positions, axes))
    values = reshape(values, (4, 4) + tuple(values.shape[1:]))
    along_x = _weighted(values, unsqueeze(unsqueeze(cx, 2), 0), 1)
    return _weighted(along_x, unsqueeze(cy, 2), 0)


def _pad_positions(p, ax, padding):
    if padding == "zeros":
        return p
    return _source_padding(_wrap(p), ax, padding)._a


def _source_padding(ix, ax, padding):
    return _clip(ix, ax) if padding == "border" else _clip(_reflect(ix, ax), ax)


def _check_tensor_arg(t, name, position):
    if not isinstance(t, Tensor):
        raise TypeError(f"grid_sampler(): argument '{name}' (position {position}) must be Tensor, not "
                        f"{_type_name(t)}")


def _sizes(t):
    return list(t.shape)


def _check_grid_sampler(input, grid, mode):
    if input.dim() == 0 or grid.dim() == 0:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    if input.shape[0] != grid.shape[0]:
        raise RuntimeError(f"grid_sampler(): expected grid and input to have same batch size, but got input "
                           f"with sizes {_sizes(input)} and grid with sizes {_sizes(grid)}")
    if grid.shape[-1] != input.dim() - 2:
        raise RuntimeError(f"grid_sampler(): expected grid to have size {input.dim() - 2} in last dimension, "
                           f"but got grid with sizes {_sizes(grid)}")
    for i in range(2, input.dim()):
        if input.shape[i] <= 0:
            raise RuntimeError(f"grid_sampler(): expected input to have non-empty spatial dimensions, but "
                               f"input has sizes {_sizes(input)} with dimension {i} being empty")
    nd = 4 if input.dim() == 4 else 5
    if not (input.dim() == nd and grid.dim() == nd):
        raise RuntimeError(f"grid_sampler(): expected {nd}D input and grid with same number of dimensions, "
                           f"but got input with sizes {_sizes(input)} and grid with sizes {_sizes(grid)}")
    if nd == 5 and mode == "bicubic":
        raise RuntimeError("grid_sampler(): bicubic interpolation only supports 4D input")
    name = input.dtype.tensor_type[:-6]
    if input.dtype.name not in ("float32", "float64"):
        kernel = "grid_sampler_2d_cpu_kernel_impl" if nd == 4 else "grid_sampler3d_cpu"
        raise NotImplementedError(f'"{kernel}" not implemented for \'{name}\'')
    if grid.dtype != input.dtype:
        raise RuntimeError(f"expected scalar type {name} but found {grid.dtype.tensor_type[:-6]}")


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """input (N, C, H, W) or (N, C, D, H, W) sampled at the grid's positions (N, Ho, Wo, 2) or
    (N, Do, Ho, Wo, 3), in [-1, 1] (x first); out (N, C, Ho, Wo) or (N, C, Do, Ho, Wo)."""
    if mode not in _MODES:
        raise ValueError(f"nn.functional.grid_sample(): expected mode to be 'bilinear', 'nearest' or "
                         f"'bicubic', but got: '{mode}'")
    if padding_mode not in _PADDINGS:
        raise ValueError(f"nn.functional.grid_sample(): expected padding_mode to be 'zeros', 'border', or "
                         f"'reflection', but got: '{padding_mode}'")
    if align_corners is None:
        warnings.warn(_ALIGN_WARNING, stacklevel=2)
        align_corners = False
    _check_tensor_arg(input, "input", 1)
    _check_tensor_arg(grid, "grid", 2)
    if not isinstance(align_corners, (bool, np.bool_)):
        raise TypeError(f"grid_sampler(): argument 'align_corners' (position 5) must be bool, not "
                        f"{_type_name(align_corners)}")
    _check_grid_sampler(input, grid, mode)
    if hook.tracer is not None:
        hook.tracer.reads_value("grid_sample() (its sampling positions)")
    dt = input._a.dtype.type
    axes = [_Axis(s, bool(align_corners), dt, input.dim() == 5) for s in input.shape[2:]]
    with quiet():           # nan and inf coordinates give nan and inf silently, as torch
        return _sample(input, grid, mode, padding_mode, axes)


def _sample(input, grid, mode, padding, axes):
    components = [select(grid, -1, k) for k in range(grid.shape[-1])][::-1]   # outer dim first
    if mode == "bicubic":
        return _bicubic(input, components[1], components[0], axes, padding)
    if mode == "nearest":
        coords = [_source(c.detach(), ax, padding) for c, ax in zip(components, axes)]
        out = _nearest(input, coords, axes, grid)
    else:
        coords = [_source(c, ax, padding) for c, ax in zip(components, axes)]
        out = _linear(input, coords, axes)
    if axes[0].scalar and padding != "zeros":
        # torch's scalar backward keeps a nan position nan (and reflects inf to nan) where its
        # forward clipped it to a border, then skips it: no gradient from those outputs
        g = grid._a
        lost = (np.isnan(g) if padding == "border" else ~np.isfinite(g)).any(-1)
        if lost.any():
            out = where(np.expand_dims(lost, 1), out.detach(), out)
    return out


# ---- affine_grid ----------------------------------------------------------------------------
def _linspace_from_neg_one(steps, align, dt):
    """torch's base-grid axis: linspace(-1, 1, steps) (its two-sided formula, in the dtype),
    scaled by (steps - 1) / steps unless align_corners; 0 for one step."""
    if steps <= 1:
        return np.zeros(builtins.max(steps, 0), dt)
    step = (dt(1) - dt(-1)) / dt(steps - 1)
    i = np.arange(steps)
    half = steps // 2
    r = np.where(i < half, dt(-1) + step * i.astype(dt), dt(1) - step * (steps - 1 - i).astype(dt)).astype(dt)
    if not align:
        r = (r * dt(steps - 1) / dt(steps)).astype(dt)
    return r


def _base_grid(spatial, align, dt):
    """(*spatial, d + 1): x along the last dim, then y, z; the last column ones."""
    axes = [_linspace_from_neg_one(s, align, dt) for s in spatial[::-1]]          # x, y, z
    mesh = np.meshgrid(*[a for a in axes[::-1]], indexing="ij")                      # z, y, x
    return np.stack(list(mesh[::-1]) + [np.ones(tuple(spatial), dt)], -1)


def affine_grid(theta, size, align_corners=None):
    """The sampling grid (N, H, W, 2) or (N, D, H, W, 3) of the affine maps theta (N, 2, 3) or
    (N, 3, 4) for an output of this size: the base grid of pixel positions times theta^T."""
    if align_corners is None:
        warnings.warn(_ALIGN_WARNING, stacklevel=2)
        align_corners = False
    if not theta.is_floating_point():
        raise ValueError(f"Expected theta to have floating point type, but got {theta.dtype}")
    if len(size) == 4:
        if theta.dim() != 3 or theta.shape[-2] != 2 or theta.shape[-1] != 3:
            raise ValueError(f"Expected a batch of 2D affine matrices of shape Nx2x3 for size {size}. "
                             f"Got {theta.shape}.")
        spatial = size[-2:]
    elif len(size) == 5:
        if theta.dim() != 3 or theta.shape[-2] != 3 or theta.shape[-1] != 4:
            raise ValueError(f"Expected a batch of 3D affine matrices of shape Nx3x4 for size {size}. "
                             f"Got {theta.shape}.")
        spatial = size[-3:]
    else:
        raise NotImplementedError(f"affine_grid only supports 4D and 5D sizes, for 2D and 3D affine "
                                  f"transforms, respectively. Got size {size}.")
    if align_corners and builtins.min(spatial) == 1:
        warnings.warn("Since version 1.3.0, affine_grid behavior has changed for unit-size grids when "
                      "align_corners=True. This is not an intended use case of affine_grid. See the "
                      "documentation of affine_grid for details.", stacklevel=2)
    elif builtins.min(size) <= 0:
        raise ValueError(f"Expected non-zero, positive output size. Got {size}")
    n, d = int(size[0]), len(size) - 2
    if theta.shape[0] != n:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: [{n}, {d + 1}] "
                           f"but got: [{theta.shape[0]}, {d + 1}].")
    spatial = tuple(builtins.max(int(s), 0) for s in spatial)
    base = _base_grid(spatial, bool(align_corners), theta._a.dtype.type).reshape(1, -1, d + 1)
    base = _wrap(np.ascontiguousarray(np.broadcast_to(base, (n,) + base.shape[1:])))
    return reshape(matmul(base, transpose(theta, 1, 2)), (n,) + spatial + (d,))

"""The op table, one module per family. Each op is one block: its backward rule, its registration,
its forward, its samples (see _samples.py). Families import the shared machinery from _core.py and
each other in the order below; this package re-exports their public names, so ``ops.X`` works.

A backward rule is plain Python over flat arrays, compiled by engine/codegen.py, in one of two
styles (codegen tells them apart by the first parameter's name):

    rule(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb)    offsets: fast, for cheap ops
    rule(go, ga, gb, sv, iv, do, da, db, row)                         views: for shape-heavy ops

Offsets style: g is the one flat gradient buffer; the output's gradient is g[o:o+n] and the
inputs' are at offsets a and b (-1 when that input needs no gradient; va/vb are their rows);
the node's saved values start at sv[s]; its integer data at ints[k] (k = -1: none); rows[i] is
its tape row (rows[i, I0], rows[i, I1] are its attributes; the column names are engine/loop.py's).
Views style: go/ga/gb are the output's and inputs' gradients (empty when not needed), sv the
arena from the saved values on, iv the int data, do/da/db the dims, row the tape row. A generated
shim builds the views (~50 ns per node), which matters only for ops whose work is tiny.
Broadcasting never reaches a rule: record() un-broadcasts through hidden EXPAND nodes, so an
elementwise rule sees inputs of the output's size. Rules must not allocate per element.
Every index a rule reads is checked in Python before recording. A multi-input node
(record_multi) calls its rule once per input, with that input's gradient (ga, or offset a) and
its role and parameter in the int data (iv[1], iv[2], or ints[k + 1], ints[k + 2]).

Each distinct rule costs ~0.3 s of Numba compile per dtype, on first use only. An op declared
saves_reads (engine/registry.py) saves the values its formulas read, and its rule computes the
derivative from them, as the formulas do (mul, exp, pow, the unary math, the reductions,
scatter_reduce...); the others' forwards save positions, intermediates PyTorch also saves, or a
factor computed with numpy (embedding's, which _scatter multiplies by).
"""
from .. import dtypes
from ..tensor import _wrap
from ._samples import (BINARY, Given, KINKS, NonZero, Pos, SAMPLES, SAMPLE_EPS, Seq, UNARY, Unit, kinks,
                       samples)
from ._core import (NAMES, _arr, _check_bcast, _needs_grad, quiet, record, record_multi, result_dtype,
                    return_types)
from .comparison import all, allclose, any, eq, equal, ge, gt, isclose, le, lt, ne
from .elementwise import (ABS, ADD, ADDCDIV, ADDCMUL, CLAMP_T, DIV, DIV_SCALAR, DIV_SCALAR1, EXP, LOG,
                          MASKED_FILL, MASKED_FILL_T, MAXIMUM, MINIMUM, MUL, MUL_SCALAR, NEG, POW,
                          POW_SCALAR, RECIPROCAL, RELU, RPOW, RSUB, SIGMOID, SIGMOID_BACKWARD, SQRT, SUB,
                          TANH, TANH_BACKWARD, WHERE, _erf, _float_input, _mul, _rpow_fn, abs, acos, add, addcdiv, addcmul, asin, atan, ceil,
                          clamp, clip, cos, cosh, div, erf, exp, exp2, expm1, floor, lerp, log, log10, log1p,
                          log2, masked_fill, maximum, minimum, mul, neg, pow, rdiv, reciprocal, relu, round,
                          rsqrt, rsub, sigmoid, sign, sin, sinh, sqrt, square, sub, tan, tanh, trunc,
                          unary_op, where)
from .shape import (CAT, CLONE, EXPAND_USER, PERMUTE, SQUEEZE, SQUEEZE_DIM, STACK, T, TO_COPY, TRANSPOSE, T_,
                    UNSQUEEZE, VIEW, cat, clone, expand, flatten, hstack, permute, reshape, squeeze, stack,
                    t, to, transpose, unsqueeze, view, vstack)
from .indexing import (ALIAS, EMBEDDING, FLIP, GATHER, INDEX, INDEX_SELECT, PAD, REPEAT, ROLL, SELECT, SLICE,
                       SORT, SPLIT, SPLIT_SIZES, TOPK, UNBIND, UNSQUEEZE_INDEX, _scatter, _with_count,
                       argsort, chunk, contiguous, embedding, flip, gather, getitem, index_select, narrow,
                       pad, put, repeat, roll, select, sort, split, take, topk, tril, triu, unbind)
from .reductions import (AMAX, AMIN, CUMSUM, LOGSUMEXP, MAX_ALL, MAX_DIM, MEAN, MEAN_DIM, MIN_ALL, MIN_DIM,
                         NORM, PROD, PROD_DIM, REDUCE, STD, SUM, SUM_DIM, VAR, amax, amin, argmax, argmin,
                         cumsum, logsumexp, max, mean, min, norm, prod, std, sum, var)
from .linalg import (ADDMM, BMM, DOT, LINEAR_MM, MM, MV, UNSAFE_VIEW, VM, addmm, bmm, dot, einsum, linear,
                     matmul, mm, mv, outer)
from .losses import (BCE, BCE_LOGITS, HUBER_LOSS, LOG_SOFTMAX, MSE_LOSS, NLL_LOSS, NLL_LOSS2D, SMOOTH_L1_LOSS,
                     SOFTMAX, binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,
                     huber_loss, l1_loss, log_softmax, mse_loss, nll_loss, smooth_l1_loss, softmax)
from .inplace import (AS_STRIDED, COPY, COPY_SLICES, COPY_WHOLE, FILL, FILL_WHOLE, INDEX_PUT, SAME_IN_TORCH,
                      ZERO, _check_no_overlap, _inplace, _inplace_method, abs_, add_, addcdiv_, addcmul_,
                      clamp_, copy_, copy_into_copy, div_, exp_, fill_, log_, masked_fill_, mul_, neg_,
                      rebase_views, reciprocal_, relu_, setitem, sigmoid_, sqrt_, sub_, tanh_, zero_)
from .random import (BERNOULLI, BERNOULLI_P, EXPONENTIAL, NORMAL, UNIFORM, bernoulli, bernoulli_,
                     exponential_, normal, normal_, uniform_)
from .random import RANDOM, random_
from .counting import (bincount, bucketize, histc, histogram, searchsorted, unique,
                       unique_consecutive)
from .composite import cdist, cross, std_mean, var_mean
from .statistics import (addbmm, addmv, addr, aminmax, argwhere, baddbmm, block_diag, cartesian_prod,
                         chain_matmul, combinations, corrcoef, count_nonzero, cov, cumulative_trapezoid, dist,
                         inner, isin, kron, kthvalue, logspace, median, mode, msort, nanmean, nanmedian, nanquantile,
                         nansum, quantile, take_along_dim, trapezoid, trapz, tril_indices, triu_indices,
                         unravel_index, vdot)
# issue 14: the peer suite's missing ops
from .comparison import (bitwise_and, bitwise_left_shift, bitwise_not, bitwise_or, bitwise_right_shift,
                         bitwise_xor, invert, isfinite, isinf, isnan, logical_and, logical_not, logical_or,
                         logical_xor, rbitwise_and, rbitwise_left_shift, rbitwise_or, rbitwise_right_shift,
                         rbitwise_xor)
from .elementwise import (COPYSIGN, FMOD, LOGADDEXP, REMAINDER, acosh, asinh, atanh, copysign, floor_divide,
                          fmod, logaddexp, nan_to_num, remainder, rfloor_divide, rremainder)
from .reductions import CUMMAX, CUMMIN, CUMPROD, LOGCUMSUMEXP, cummax, cummin, cumprod, logcumsumexp
from .indexing import (CIRCULAR_PAD, DIAGONAL, DIAG_COPY, DIAG_EMBED, MASKED_SELECT, REFLECTION_PAD,
                       REPLICATION_PAD, SCATTER, SCATTER_ADD, SCATTER_REDUCE, SCATTER_VALUE, UNFOLD, diag, diagonal,
                       masked_select, nonzero, repeat_interleave, scatter, scatter_add, scatter_reduce, unfold)
from .shape import meshgrid, unflatten
from .pooling import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d, adaptive_max_pool1d,
                      adaptive_max_pool2d, adaptive_max_pool3d, avg_pool1d, avg_pool2d, avg_pool3d, fold,
                      interpolate, lp_pool1d, lp_pool2d, max_pool1d, max_pool2d, max_pool3d, max_unpool1d,
                      max_unpool2d, max_unpool3d, pixel_shuffle, pixel_unshuffle, upsample)   # (unfold: F.unfold; ops.unfold is Tensor.unfold)
from .conv import conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d
from .normalization import layer_norm as native_layer_norm
from .decompositions import (LinAlgError, logdet, linalg_cholesky, linalg_det, linalg_eigh, linalg_eigvalsh,
                             linalg_inv, linalg_lstsq, linalg_matrix_exp, linalg_pinv, linalg_qr, linalg_slogdet, linalg_solve, linalg_solve_triangular,
                             linalg_svd, linalg_svdvals)
from .decompositions import SAME_IN_TORCH as _LINALG_SAME_IN_TORCH
from .elementwise import SAME_IN_TORCH as _ELEMENTWISE_SAME_IN_TORCH
SAME_IN_TORCH = SAME_IN_TORCH + _LINALG_SAME_IN_TORCH + _ELEMENTWISE_SAME_IN_TORCH

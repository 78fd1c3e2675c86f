"""Matrix products for the compiled kernels, through the OpenBLAS that numpy itself links.

Numba's ``np.dot`` calls the BLAS that scipy bundles, a different OpenBLAS build whose sgemm is
up to 2x slower on the shapes small models run (measured, one thread: a 16x150 @ 150x6400
product 870 us vs numpy's 443; 64x784 @ 784x128 195 vs 149 us), allocates its result, and
cannot accumulate into a gradient. ``gemm`` calls numpy's cblas functions directly, with beta,
so a kernel writes or accumulates a product in place; and it picks the routine numpy's matmul
picks for the shape (dot for 1x1, gemv when a side is 1), so a compiled forward computes a
product bit for bit as the eager forward (np.matmul) does.

The C functions are reached by symbols that LLVM resolves when the code is linked or loaded from
Numba's cache (``ExternalFunction``), so the cached kernels stay valid across processes. Where
numpy's OpenBLAS is not found (a numpy built against another BLAS) the symbols point to compiled
C callbacks over Numba's own ``np.dot`` and plain loops instead: the same products, at Numba's
speed. codegen.py copies ``gemm`` into the generated module, next to the kernels that call it.
"""
import ctypes
import glob
import os

import numpy as np
from numba import config, types

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
_I32, _I64 = types.int32, types.int64


def _signatures(real, ptr):
    """cblas ?gemm, ?gemv and ?dot with 64-bit ints; ptr: how the pointers are typed (int64 for
    the kernels' calls, which pass addresses: the same registers as a pointer)."""
    return {"gemm": types.void(_I32, _I32, _I32, _I64, _I64, _I64, real, ptr, _I64, ptr, _I64, real, ptr, _I64),
            "gemv": types.void(_I32, _I32, _I64, _I64, real, ptr, _I64, ptr, _I64, real, ptr, _I64),
            "dot": real(_I64, ptr, _I64, ptr, _I64)}


# numpy >= 2 wheels bundle scipy-openblas64, numpy 1.26's a plain OpenBLAS built with ILP64 and
# the suffix 64_: (file name pattern, symbol prefix)
_LIBRARIES = (("libscipy_openblas64_*", "scipy_cblas_"), ("libopenblas64_*", "cblas_"))


def _numpy_openblas():
    """(ctypes handle, symbol prefix) of the OpenBLAS bundled in numpy's wheel, or (None, None)."""
    root = os.path.dirname(np.__file__)
    for name, prefix in _LIBRARIES:
        for folder in (os.path.join(root, os.pardir, "numpy.libs"), os.path.join(root, ".dylibs")):
            for path in sorted(glob.glob(os.path.join(folder, name))):
                try:
                    lib = ctypes.CDLL(path)
                except OSError:
                    continue
                if all(hasattr(lib, f"{prefix}{p}{f}64_") for p in "sd" for f in ("gemm", "gemv", "dot")):
                    return lib, prefix
    return None, None


def _ctypes_function(lib, symbols, prefix, name, ctype):
    fn = getattr(lib, f"{symbols}{prefix}{name}64_")
    i32, i64 = ctypes.c_int32, ctypes.c_int64
    fn.argtypes = {"gemm": [i32, i32, i32, i64, i64, i64, ctype, i64, i64, i64, i64, ctype, i64, i64],
                   "gemv": [i32, i32, i64, i64, ctype, i64, i64, i64, i64, ctype, i64, i64],
                   "dot": [i64, i64, i64, i64, i64]}[name]
    fn.restype = ctype if name == "dot" else None
    return fn


def _matrix(address, rows, cols, ld, dtype):
    """The (rows, cols) matrix with leading dimension ld at a raw address, as a numpy view."""
    size = ((rows - 1) * ld + cols) * dtype.itemsize if rows and cols else 0
    buf = (ctypes.c_char * int(size)).from_address(int(address))
    return np.lib.stride_tricks.as_strided(np.frombuffer(buf, dtype), (rows, cols), (ld * dtype.itemsize, dtype.itemsize))


def _python_fallbacks(dtype):
    """The three routines with numpy over raw addresses: without the JIT and numpy's OpenBLAS.
    (Row-major only: the only order gemm below uses.)"""
    def gemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        av = _matrix(a, k, m, lda, dtype).T if ta == TRANS else _matrix(a, m, k, lda, dtype)
        bv = _matrix(b, n, k, ldb, dtype).T if tb == TRANS else _matrix(b, k, n, ldb, dtype)
        cv = _matrix(c, m, n, ldc, dtype)
        prod = alpha * np.dot(av, bv)
        cv[...] = prod if beta == 0 else prod + beta * cv

    def gemv(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy):
        av = _matrix(a, m, n, lda, dtype)
        av = av.T if trans == TRANS else av
        prod = alpha * np.dot(av, _matrix(x, av.shape[1], 1, incx, dtype)[:, 0])
        yv = _matrix(y, av.shape[0], 1, incy, dtype)[:, 0]
        yv[...] = prod if beta == 0 else prod + beta * yv

    def dot(n, x, incx, y, incy):
        return np.dot(_matrix(x, n, 1, incx, dtype)[:, 0], _matrix(y, n, 1, incy, dtype)[:, 0])
    return {"gemm": gemm, "gemv": gemv, "dot": dot}


def _numba_fallbacks(dtype):
    """The three routines as C callbacks over Numba (its np.dot: scipy's BLAS), for the symbols
    when numpy's OpenBLAS is not found. (Row-major only, as above.)"""
    from numba import carray, cfunc, from_dtype
    real = from_dtype(dtype)
    sigs = _signatures(real, types.CPointer(real))

    @cfunc(sigs["gemm"], cache=True)
    def gemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        av = carray(a, (k, lda))[:, :m].T if ta == TRANS else carray(a, (m, lda))[:, :k]
        bv = carray(b, (n, ldb))[:, :k].T if tb == TRANS else carray(b, (k, ldb))[:, :n]
        cv = carray(c, (m, ldc))
        prod = np.dot(np.ascontiguousarray(av), np.ascontiguousarray(bv))
        for i in range(m):
            for j in range(n):
                cv[i, j] = alpha * prod[i, j] if beta == 0 else alpha * prod[i, j] + beta * cv[i, j]

    @cfunc(sigs["gemv"], cache=True)
    def gemv(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy):
        av = carray(a, (m, lda))
        rows, cols = (n, m) if trans == TRANS else (m, n)
        xv = carray(x, (cols - 1) * incx + 1)
        yv = carray(y, (rows - 1) * incy + 1)
        for i in range(rows):
            acc = av[0, 0] * 0
            for q in range(cols):
                acc += (av[q, i] if trans == TRANS else av[i, q]) * xv[q * incx]
            yv[i * incy] = alpha * acc if beta == 0 else alpha * acc + beta * yv[i * incy]

    @cfunc(sigs["dot"], cache=True)
    def dot(n, x, incx, y, incy):
        xv = carray(x, (n - 1) * incx + 1)
        yv = carray(y, (n - 1) * incy + 1)
        acc = xv[0] * 0
        for q in range(n):
            acc += xv[q * incx] * yv[q * incy]
        return acc
    return {"gemm": gemm, "gemv": gemv, "dot": dot}


def _bind():
    """({(routine, prefix): callable from Python}, {(routine, prefix): what compiled code calls},
    whether it is numpy's OpenBLAS). Under the JIT, registers each compiled-code routine's address
    as the symbol jitgrad_<prefix><routine>; without it, both are the Python callables."""
    lib, symbols = _numpy_openblas()
    python, compiled = {}, {}
    for prefix, dtype in (("s", np.dtype(np.float32)), ("d", np.dtype(np.float64))):
        ctype = ctypes.c_float if prefix == "s" else ctypes.c_double
        native = {name: _ctypes_function(lib, symbols, prefix, name, ctype) for name in ("gemm", "gemv", "dot")} \
            if lib is not None else None
        python.update({(name, prefix): fn for name, fn in (native or _python_fallbacks(dtype)).items()})
        if config.DISABLE_JIT:
            continue
        import llvmlite.binding as ll
        real = types.float32 if prefix == "s" else types.float64
        addresses = {name: ctypes.cast(fn, ctypes.c_void_p).value for name, fn in native.items()} if native \
            else {name: fn.address for name, fn in _numba_fallbacks(dtype).items()}
        for name, sig in _signatures(real, _I64).items():
            ll.add_symbol(f"jitgrad_{prefix}{name}", addresses[name])
            compiled[name, prefix] = types.ExternalFunction(f"jitgrad_{prefix}{name}", sig)
    return python, compiled or python, lib is not None


_python_routines, _compiled_routines, NUMPY_BLAS = _bind()
# gemm below, run as Python (autograd.inspect steps through kernels that way), calls these;
# the generated module binds the same names to compiled_routines()
sgemm, sgemv, sdot = (_python_routines[n, "s"] for n in ("gemm", "gemv", "dot"))
dgemm, dgemv, ddot = (_python_routines[n, "d"] for n in ("gemm", "gemv", "dot"))


def compiled_routines():
    """(sgemm, sgemv, sdot, dgemm, dgemv, ddot) as compiled code calls them (the symbols)."""
    return tuple(_compiled_routines[n, p] for p in "sd" for n in ("gemm", "gemv", "dot"))


def gemm(ta, tb, m, n, k, alpha, a, ao, b, bo, beta, c, co):
    """c[co:co + m*n] as an (m, n) row-major matrix = alpha op(a) @ op(b) + beta c, where op(a)
    is the (m, k) matrix at a[ao:] (stored (k, m) when ta) and op(b) the (k, n) one at b[bo:]
    (stored (n, k) when tb). beta 0 overwrites c (nan and inf in it too). a, b, c of one float
    dtype; float32 and float64 go to BLAS, through the routine numpy's matmul would use."""
    if m == 0 or n == 0:
        return
    if k == 0:
        for e in range(m * n):
            c[co + e] = 0 if beta == 0 else c[co + e] * beta
        return
    size = c.itemsize
    pa = a.ctypes.data + ao * size
    pb = b.ctypes.data + bo * size
    pc = c.ctypes.data + co * size
    if size != 4 and size != 8:         # (float16: no BLAS) the product, summed in order
        for i in range(m):
            for j in range(n):
                acc = 0.0
                for q in range(k):
                    acc += (a[ao + q * m + i] if ta else a[ao + i * k + q]) * \
                        (b[bo + j * k + q] if tb else b[bo + q * n + j])
                c[co + i * n + j] = alpha * acc if beta == 0 else alpha * acc + beta * c[co + i * n + j]
    elif m == 1 and n == 1:             # a row by a column: dot, as numpy
        r = sdot(k, pa, 1, pb, 1) if size == 4 else ddot(k, pa, 1, pb, 1)
        c[co] = alpha * r if beta == 0 else alpha * r + beta * c[co]
    elif n == 1 or m == 1:              # matrix @ vector (or vector @ matrix, as B.T @ a): gemv
        if n == 1:
            mat, tr, vec, rows = pa, ta, pb, m
        else:
            mat, tr, vec, rows = pb, not tb, pa, n
        # the matrix, (rows, k) as op() stores it: (k, rows) when transposed
        if size == 4:
            sgemv(101, 112 if tr else 111, k if tr else rows, rows if tr else k, np.float32(alpha),
                  mat, rows if tr else k, vec, 1, np.float32(beta), pc, 1)
        else:
            dgemv(101, 112 if tr else 111, k if tr else rows, rows if tr else k, np.float64(alpha),
                  mat, rows if tr else k, vec, 1, np.float64(beta), pc, 1)
    else:
        op_a = 112 if ta else 111
        op_b = 112 if tb else 111
        if size == 4:
            sgemm(101, op_a, op_b, m, n, k, np.float32(alpha), pa, m if ta else k, pb, k if tb else n,
                  np.float32(beta), pc, n)
        else:
            dgemm(101, op_a, op_b, m, n, k, np.float64(alpha), pa, m if ta else k, pb, k if tb else n,
                  np.float64(beta), pc, n)

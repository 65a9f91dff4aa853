"""Independent NumPy references used by several test files."""

from __future__ import annotations

import itertools

import numpy as np


def np_conv(x, kernel, *, strides=None, pads=None, input_dilation=None, kernel_dilation=None, groups=1):
    """Channels-last N-d convolution by explicit loops over kernel offsets, in float64.

    x: (N, *spatial, C_in); kernel: (*k, C_in/groups, C_out); pads: ((lo, hi), ...) >= 0.
    """
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    nsp = kernel.ndim - 2
    strides = strides or (1,) * nsp
    pads = pads or ((0, 0),) * nsp
    input_dilation = input_dilation or (1,) * nsp
    kernel_dilation = kernel_dilation or (1,) * nsp
    n, c_in = x.shape[0], x.shape[-1]
    if any(u > 1 for u in input_dilation):
        dil_shape = tuple((s - 1) * u + 1 for s, u in zip(x.shape[1:-1], input_dilation))
        xd = np.zeros((n, *dil_shape, c_in))
        xd[(slice(None), *(slice(None, None, u) for u in input_dilation))] = x
        x = xd
    x = np.pad(x, ((0, 0), *pads, (0, 0)))
    ksize = kernel.shape[:nsp]
    eff = [(k - 1) * d + 1 for k, d in zip(ksize, kernel_dilation)]
    out_sp = [(s - e) // st + 1 for s, e, st in zip(x.shape[1:-1], eff, strides)]
    c_out = kernel.shape[-1]
    cg_in, cg_out = c_in // groups, c_out // groups
    y = np.zeros((n, *out_sp, c_out))
    for kidx in itertools.product(*(range(k) for k in ksize)):
        sl = tuple(
            slice(i * d, i * d + st * (o - 1) + 1, st)
            for i, d, st, o in zip(kidx, kernel_dilation, strides, out_sp)
        )
        patch = x[(slice(None), *sl, slice(None))]
        w = kernel[kidx]
        for g in range(groups):
            y[..., g * cg_out : (g + 1) * cg_out] += patch[..., g * cg_in : (g + 1) * cg_in] @ w[:, g * cg_out : (g + 1) * cg_out]
    return y

"""Straightforward per-image NumPy/SciPy implementations of the ``cddfuse``-preset definitions.

These are written from the definitions (docs/metrics.md), one image at a time, the way the reference
evaluator is written: direct ``scipy.signal.convolve2d`` for VIF, Qabf and MS-SSIM, ``scipy.ndimage``
box filters for SSIM, NumPy histograms. They serve two purposes and are not used by the metrics:

* an independent cross-check of the vectorised torch code (tests/test_metrics_numpy.py), including the
  metrics the reference CSVs do not cover (FMI, Nabf, MS-SSIM);
* the speed baseline of ``benchmarks/metrics.py``.

Every function takes H×W float arrays on the 0–255 scale (F = fused, A = ir, B = vi) and returns a float.
SSIM here is float64 throughout (the definition), not scikit-image's float32 arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import uniform_filter
from scipy.signal import convolve2d


def en(f: np.ndarray) -> float:
    counts = np.bincount(np.uint8(np.round(f)).ravel(), minlength=256)
    p = counts / counts.sum()
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def sd(f: np.ndarray) -> float:
    return float(np.std(f.astype(np.float64)))


def sf(f: np.ndarray) -> float:
    f = f.astype(np.float64)
    return float(np.sqrt(np.mean(np.diff(f, axis=1) ** 2) + np.mean(np.diff(f, axis=0) ** 2)))


def ag(f: np.ndarray) -> float:
    gy, gx = np.gradient(f.astype(np.float64))
    return float(np.mean(np.sqrt((gx**2 + gy**2) / 2)))


def _mi_nats(x: np.ndarray, y: np.ndarray) -> float:
    joint = np.histogram2d(x.ravel(), y.ravel(), bins=256, range=[[-0.5, 255.5], [-0.5, 255.5]])[0]
    p = joint / joint.sum()
    px = p.sum(axis=1, keepdims=True)
    py = p.sum(axis=0, keepdims=True)
    nz = p > 0
    return max(0.0, float((p[nz] * np.log(p[nz] / (px @ py)[nz])).sum()))


def mi(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return _mi_nats(np.round(f), np.round(a)) + _mi_nats(np.round(f), np.round(b))


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x.ravel().astype(np.float64), y.ravel().astype(np.float64))[0, 1])


def scd(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    f, a, b = (v.astype(np.float64) for v in (f, a, b))
    return _corr(a, f - b) + _corr(b, f - a)


def cc(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return 0.5 * (_corr(a, f) + _corr(b, f))


def mse(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    f, a, b = (v.astype(np.float64) for v in (f, a, b))
    return float(0.5 * (np.mean((a - f) ** 2) + np.mean((b - f) ** 2)))


def psnr(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(float(np.max(f)) ** 2 / mse(f, a, b)))


def _gaussian_2d(size: int, sigma: float) -> np.ndarray:
    half = (size - 1) / 2
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h / h.sum()


def _vifp(ref: np.ndarray, dist: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    dist = dist.astype(np.float64)
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = _gaussian_2d(n, n / 5.0)
        if scale > 1:
            ref = convolve2d(ref, win, mode="valid")[::2, ::2]
            dist = convolve2d(dist, win, mode="valid")[::2, ::2]
        mu1 = convolve2d(ref, win, mode="valid")
        mu2 = convolve2d(dist, win, mode="valid")
        s1 = np.maximum(convolve2d(ref * ref, win, mode="valid") - mu1 * mu1, 0)
        s2 = np.maximum(convolve2d(dist * dist, win, mode="valid") - mu2 * mu2, 0)
        s12 = convolve2d(ref * dist, win, mode="valid") - mu1 * mu2
        g = s12 / (s1 + 1e-10)
        sv = s2 - g * s12
        low1 = s1 < 1e-10
        g[low1] = 0
        sv[low1] = s2[low1]
        s1[low1] = 0
        low2 = s2 < 1e-10
        g[low2] = 0
        sv[low2] = 0
        neg = g < 0
        sv[neg] = s2[neg]
        g[neg] = 0
        sv[sv <= 1e-10] = 1e-10
        num += np.sum(np.log10(1 + g * g * s1 / (sv + 2.0)))
        den += np.sum(np.log10(1 + s1 / 2.0))
    ratio = num / den
    return 1.0 if np.isnan(ratio) else float(ratio)


def vif(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return _vifp(a, f) + _vifp(b, f)


def _sobel_qabf(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=np.float64)
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
    sx = convolve2d(img, h3, mode="same")
    sy = convolve2d(img, h1, mode="same")
    g = np.sqrt(sx * sx + sy * sy)
    alpha = np.full_like(img, math.pi / 2, dtype=np.float64)
    nz = sx != 0
    alpha[nz] = np.arctan(sy[nz] / sx[nz])
    return g, alpha


def _qabf_q(ga: np.ndarray, aa: np.ndarray, gf: np.ndarray, af: np.ndarray) -> np.ndarray:
    ratio = np.zeros_like(ga)
    gt, eq, lt = ga > gf, ga == gf, ga < gf
    ratio[gt] = gf[gt] / ga[gt]
    ratio[eq] = gf[eq]
    ratio[lt] = ga[lt] / gf[lt]
    agree = 1 - np.abs(aa - af) / (math.pi / 2)
    return 0.9994 / (1 + np.exp(-15 * (ratio - 0.5))) * 0.9879 / (1 + np.exp(-22 * (agree - 0.8)))


def qabf(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ga, aa = _sobel_qabf(a.astype(np.float64))
    gb, ab = _sobel_qabf(b.astype(np.float64))
    gf, af = _sobel_qabf(f.astype(np.float64))
    q = _qabf_q(ga, aa, gf, af) * ga + _qabf_q(gb, ab, gf, af) * gb
    return float(q.sum() / (ga + gb).sum())


def _sobel_kumar(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ext = np.pad(img.astype(np.float64), 1, mode="reflect")
    h, w = img.shape
    vt = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8
    ht = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]) / 8
    gv = np.zeros((h, w))
    gh = np.zeros((h, w))
    for du in range(3):
        for dv in range(3):
            patch = ext[du : du + h, dv : dv + w]
            gv += vt[du, dv] * patch
            gh += ht[du, dv] * patch
    return gv, gh


def nabf(f: np.ndarray, a: np.ndarray, b: np.ndarray, scale: float = 1.0) -> float:
    """Kumar's N^{AB/F}; ``scale`` = 1/255 reproduces evaluation on 0–1 data (Tang)."""
    grads = [_sobel_kumar(x) for x in (a, b, f)]
    g = [np.sqrt(gh**2 + gv**2) for gv, gh in grads]
    alpha = []
    for gv, gh in grads:
        al = np.zeros_like(gv)
        nz = ~((gv == 0) & (gh == 0))
        with np.errstate(divide="ignore"):
            al[nz] = np.arctan(gv[nz] / gh[nz])
        alpha.append(al)

    def q(gs: np.ndarray, as_: np.ndarray) -> np.ndarray:
        gf, af = g[2], alpha[2]
        r = np.zeros_like(gs)
        ok = (gs != 0) & (gf != 0)
        big = ok & (gs > gf)
        small = ok & ~(gs > gf)
        r[big] = gf[big] / gs[big]
        r[small] = gs[small] / gf[small]
        agree = np.abs(np.abs(as_ - af) - math.pi / 2) * 2 / math.pi
        qg = 0.9999 / (1 + np.exp(-19 * (r - 0.5)))
        qa = 0.9995 / (1 + np.exp(-22 * (agree - 0.5)))
        return np.sqrt(qg * qa)

    qa_, qb_ = q(g[0], alpha[0]), q(g[1], alpha[1])
    wa = np.where(g[0] * scale >= 2, (g[0] * scale) ** 1.5, 0.001)
    wb = np.where(g[1] * scale >= 2, (g[1] * scale) ** 1.5, 0.001)
    na = (g[2] > g[0]) & (g[2] > g[1])
    return float(np.sum(na * ((1 - qa_) * wa + (1 - qb_) * wb)) / np.sum(wa + wb))


def _ssim_one(x: np.ndarray, y: np.ndarray) -> float:
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    ux, uy = uniform_filter(x, 7), uniform_filter(y, 7)
    uxx, uyy, uxy = uniform_filter(x * x, 7), uniform_filter(y * y, 7), uniform_filter(x * y, 7)
    k = 49 / 48
    vx, vy, vxy = k * (uxx - ux * ux), k * (uyy - uy * uy), k * (uxy - ux * uy)
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return float(s[3:-3, 3:-3].mean())


def ssim(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return _ssim_one(f, a) + _ssim_one(f, b)


def _ms_ssim_one(x: np.ndarray, y: np.ndarray) -> float:
    win = _gaussian_2d(11, 1.5)
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    result = 1.0
    for level, weight in enumerate(weights):
        mx, my = convolve2d(x, win, "valid"), convolve2d(y, win, "valid")
        vx = convolve2d(x * x, win, "valid") - mx * mx
        vy = convolve2d(y * y, win, "valid") - my * my
        vxy = convolve2d(x * y, win, "valid") - mx * my
        cs = (2 * vxy + c2) / (vx + vy + c2)
        if level == len(weights) - 1:
            term = np.mean((2 * mx * my + c1) / (mx * mx + my * my + c1) * cs)
        else:
            term = np.mean(cs)
            x = np.pad(x, ((0, x.shape[0] % 2), (0, x.shape[1] % 2)), mode="symmetric")
            y = np.pad(y, ((0, y.shape[0] % 2), (0, y.shape[1] % 2)), mode="symmetric")
            x = (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) / 4
            y = (y[0::2, 0::2] + y[1::2, 0::2] + y[0::2, 1::2] + y[1::2, 1::2]) / 4
        result *= term**weight
    return float(result)


def ms_ssim(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return _ms_ssim_one(f, a) + _ms_ssim_one(f, b)


def _fmi_window(s: np.ndarray, f: np.ndarray) -> float:
    """Haghighat's fast FMI of one pair of 9-element windows (column order), as in ``fmi.m``."""
    if np.array_equal(s, f):
        return 1.0

    def normalise(v: np.ndarray) -> np.ndarray:
        lo, hi = v.min(), v.max()
        return np.ones_like(v) if hi == lo else (v - lo) / (hi - lo)

    sp = normalise(s)
    sp = sp / sp.sum()
    fp = normalise(f)
    fp = fp / fp.sum()
    sc, fc = np.cumsum(sp), np.cumsum(fp)
    st, ft = sp - sp.mean(), fp - fp.mean()
    num = float(np.sum(st * ft))
    c = 0.0 if num == 0 else num / math.sqrt(float(np.sum(st * st) * np.sum(ft * ft)))
    idx = np.arange(1, 10)
    s_sd = math.sqrt(max(float(np.sum(idx**2 * sp) - np.sum(idx * sp) ** 2), 0.0))
    f_sd = math.sqrt(max(float(np.sum(idx**2 * fp) - np.sum(idx * fp) ** 2), 0.0))
    if c >= 0:
        bound = np.minimum.outer(fc, sc)
        weight = 0.0
        if c != 0 and s_sd != 0 and f_sd != 0:
            weight = c / (float(np.sum(bound - np.outer(fc, sc))) / (f_sd * s_sd))
    else:
        bound = np.maximum(np.add.outer(fc, sc) - 1, 0)
        weight = 0.0
        if s_sd != 0 and f_sd != 0:
            weight = c / (float(np.sum(bound - np.outer(fc, sc))) / (f_sd * s_sd))
    mass = np.diff(np.diff(np.pad(bound, ((1, 0), (1, 0))), axis=0), axis=1)
    joint = weight * mass + (1 - weight) * np.outer(fp, sp)
    nz = joint != 0
    h_joint = float(-np.sum(joint[nz] * np.log2(np.abs(joint[nz]))))
    h_s = float(-np.sum(sp[sp > 0] * np.log2(sp[sp > 0])))
    h_f = float(-np.sum(fp[fp > 0] * np.log2(fp[fp > 0])))
    mutual = h_s + h_f - h_joint
    return 0.0 if mutual == 0 else 2 * mutual / (h_s + h_f)


def fmi(f: np.ndarray, a: np.ndarray, b: np.ndarray, feature: str = "pixel") -> float:
    """Fast-FMI over 3×3 windows, one window at a time (slow: use small images)."""
    if feature == "gradient":
        f, a, b = (np.gradient(x.astype(np.float64), axis=1) for x in (f, a, b))
    elif feature != "pixel":
        raise ValueError(f"unknown FMI feature {feature!r}")
    h, w = f.shape
    values = []
    for i in range(h - 2):
        for j in range(w - 2):
            fw = f[i : i + 3, j : j + 3].T.ravel()
            aw = a[i : i + 3, j : j + 3].T.ravel()
            bw = b[i : i + 3, j : j + 3].T.ravel()
            values.append(0.5 * (_fmi_window(aw, fw) + _fmi_window(bw, fw)))
    return float(np.mean(values))


def _fmi_pair_vectorised(s: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``_fmi_window`` for many windows at once (rows of 9), the straightforward 81-cell way."""

    def distribution(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        lo, hi = v.min(axis=1, keepdims=True), v.max(axis=1, keepdims=True)
        const = hi == lo
        norm = np.where(const, 1.0, (v - lo) / np.where(const, 1.0, hi - lo))
        pdf = norm / norm.sum(axis=1, keepdims=True)
        idx = np.arange(1, 10)
        sd_ = np.sqrt(np.maximum((pdf * idx**2).sum(1) - (pdf * idx).sum(1) ** 2, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -np.where(pdf > 0, pdf * np.log2(pdf), 0.0).sum(1)
        return pdf, np.cumsum(pdf, axis=1), sd_, ent

    sp, sc, ssd, sh = distribution(s)
    fp, fc, fsd, fh = distribution(f)
    st, ft = sp - sp.mean(1, keepdims=True), fp - fp.mean(1, keepdims=True)
    num = (st * ft).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(num == 0, 0.0, num / np.sqrt((st * st).sum(1) * (ft * ft).sum(1)))
    outer = fc[:, :, None] * sc[:, None, :]
    upper = np.minimum(fc[:, :, None], sc[:, None, :])
    lower = np.maximum(fc[:, :, None] + sc[:, None, :] - 1, 0)
    bound = np.where((c >= 0)[:, None, None], upper, lower)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = (bound - outer).sum((1, 2)) / (fsd * ssd)
        weight = np.where((fsd * ssd == 0) | ((c >= 0) & (c == 0)), 0.0, c / corr)
    mass = np.diff(np.diff(np.pad(bound, ((0, 0), (1, 0), (1, 0))), axis=1), axis=2)
    joint = weight[:, None, None] * mass + (1 - weight[:, None, None]) * fp[:, :, None] * sp[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        hj = -np.where(joint != 0, joint * np.log2(np.abs(joint)), 0.0).sum((1, 2))
    mutual = sh + fh - hj
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(mutual == 0, 0.0, 2 * mutual / (sh + fh))
    return np.where((s == f).all(axis=1), 1.0, value)


def fmi_vectorised(
    f: np.ndarray, a: np.ndarray, b: np.ndarray, feature: str = "pixel", chunk: int = 8192
) -> float:
    """:func:`fmi` with all windows of a chunk processed together in NumPy (the benchmark baseline)."""
    if feature == "gradient":
        f, a, b = (np.gradient(x.astype(np.float64), axis=1) for x in (f, a, b))
    elif feature != "pixel":
        raise ValueError(f"unknown FMI feature {feature!r}")

    def windows(x: np.ndarray) -> np.ndarray:
        v = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), (3, 3))
        return v.transpose(0, 1, 3, 2).reshape(-1, 9)

    wf, wa, wb = windows(f), windows(a), windows(b)
    total = 0.0
    for start in range(0, wf.shape[0], chunk):
        sl = slice(start, start + chunk)
        total += float(
            (0.5 * (_fmi_pair_vectorised(wa[sl], wf[sl]) + _fmi_pair_vectorised(wb[sl], wf[sl]))).sum()
        )
    return total / wf.shape[0]


#: name → function(F, A, B), the ``cddfuse`` definitions; EN/SD/SF/AG ignore the sources.
REFERENCE_FUNCTIONS = {
    "EN": lambda f, a, b: en(f),
    "SD": lambda f, a, b: sd(f),
    "SF": lambda f, a, b: sf(f),
    "AG": lambda f, a, b: ag(f),
    "MI": mi,
    "SCD": scd,
    "VIF": vif,
    "Qabf": qabf,
    "Nabf": nabf,
    "SSIM": ssim,
    "MS_SSIM": ms_ssim,
    "MSE": mse,
    "CC": cc,
    "PSNR": psnr,
    "FMI_pixel": lambda f, a, b: fmi(f, a, b, "pixel"),
    "FMI_gradient": lambda f, a, b: fmi(f, a, b, "gradient"),
}

"""Accuracy metrics of reconstructed fields against the truth, as plain JSON-able dicts.

Every function takes observer-centred cubes (docs/DESIGN.md: axes SGX, SGY, SGZ, voxel
centres x_i = −L/2 + (i + ½) L/N, observer at the centre), either one cube (N, N, N) or a
stack of mocks (n, N, N, N); vector fields carry a trailing axis of 3 (km/s).

* Pearson r, least-squares slope / intercept / scatter of prediction against truth
  (pred ≈ slope · truth + intercept; scatter = rms of the residual about that line), MSE —
  pooled over every voxel of every mock in a region, plus the per-mock mean and spread of r
  and per-mock arrays (``*_per_mock``: r, MSE, MSE with each mock's mean removed over the
  region) for :func:`paired_bootstrap`; :func:`pearson_r_per_mock`, :func:`pearson_r_in_shells`
  and :func:`remove_mock_mean` for plots that must not pool a constant per mock (φ).
* Regions: ``cube`` (every voxel), ``survey`` (r ≤ r_max), ``zoa`` (survey voxels whose
  centre has Galactic latitude |b| < zoa_b) and ``outside_zoa`` (the other survey voxels);
  distance shells and SGZ slabs.
* Fourier: measured power spectrum P(k) (Mpc/h)³ in spherical k bins, cross-correlation
  coefficient r(k) = P_pt / √(P_pp P_tt) and transfer function T(k) = √(P_pred / P_true).
* One-point PDFs (histograms on common edges), velocity residual rms (km/s) per component
  and in 3D, bulk-flow error against radius R.
* :func:`paired_bootstrap`: the 68 % interval of a mean difference between two methods'
  per-mock metrics, resampling parent boxes (groups of mocks) with replacement.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft

from zoa_lib.errors import ZoaError
from zoa_lib.survey.sky import sample_shell, zoa_mask
from zoa_lib.universe import fourier
from zoa_lib.universe import velocity as vel
from zoa_lib.universe.grid import check_cube, voxel_centres


class MetricsError(ZoaError, ValueError):
    """Prediction and truth do not match in shape, or a metric argument is invalid."""


# --------------------------------------------------------------------------- helpers
def _f(x):
    """A JSON-able float (NaN and inf → None)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _stack(a, vector=False):
    """A field or a stack of fields as a float64 stack (n, N, N, N[, 3])."""
    return check_cube(np.asarray(a, dtype=float), vector=vector, stacked=True, error=MetricsError)


def _pair(pred, truth, vector=False):
    p, t = _stack(pred, vector), _stack(truth, vector)
    if p.shape != t.shape:
        raise MetricsError(f"prediction has shape {p.shape} but truth has shape {t.shape}")
    return p, t


# --------------------------------------------------------------------------- point statistics
def pearson_r(a, b, mask=None) -> float:
    """Pearson correlation coefficient of two arrays (over ``mask`` if given)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if mask is not None:
        m = np.broadcast_to(mask, a.shape)
        a, b = a[m], b[m]
    a = a.ravel() - a.mean() if a.size else a.ravel()
    b = b.ravel() - b.mean() if b.size else b.ravel()
    den = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / den) if den > 0 else float("nan")


def remove_mock_mean(a, mask=None) -> np.ndarray:
    """``a`` (one cube (N, N, N) or a stack (n, N, N, N)) with each mock's mean over ``mask``
    (default: the whole cube) subtracted, as float64. φ is defined up to a constant per mock
    that velocities cannot measure (docs/DESIGN.md, evaluation protocol): maps, scatter plots
    and PDFs of φ compare truth and prediction with it removed."""
    a = np.asarray(a, dtype=float)
    s = a[None] if a.ndim == 3 else a
    if s.ndim != 4:
        raise MetricsError(f"remove_mock_mean: expected a cube (N, N, N) or a stack of them, got shape {a.shape}")
    m = np.ones(s.shape[1:], bool) if mask is None else np.broadcast_to(mask, s.shape[1:])
    if not m.any():
        raise MetricsError("remove_mock_mean: the mask selects no voxel")
    out = s - s[:, m].mean(axis=1)[:, None, None, None]
    return out[0] if a.ndim == 3 else out


def pearson_r_per_mock(pred, truth, mask=None) -> np.ndarray:
    """Pearson r of each mock of two stacks (n, N, N, N) (or one cube each) over ``mask``
    (default: the whole cube), as an (n,) array (NaN where a mock's field is constant). Blind
    to a constant per mock, unlike r pooled over the mocks."""
    p, t = _pair(pred, truth)
    m = np.ones(p.shape[1:], bool) if mask is None else np.broadcast_to(mask, p.shape[1:])
    return np.array([pearson_r(p[i][m], t[i][m]) for i in range(len(p))], dtype=float)


def pearson_r_in_shells(pred, truth, size: float, shells, mask=None) -> dict:
    """Per-mock Pearson r in distance shells about the observer (edges ``shells``, Mpc/h),
    optionally restricted to ``mask`` (e.g. the ZOA): {"centres", "mean", "std", "n_voxels"},
    one entry per shell, mean and standard deviation over the mocks of each mock's r (NaN
    for a shell without voxels)."""
    p, t = _pair(pred, truth)
    r = vel.radius_grid(p.shape[1], size)
    edges = [float(e) for e in shells]
    keep = np.ones(p.shape[1:], bool) if mask is None else np.broadcast_to(mask, p.shape[1:])
    mean, std, nvox = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = keep & (r >= lo) & (r < hi)
        nvox.append(int(m.sum()))
        per = pearson_r_per_mock(p, t, m) if m.any() else np.array([np.nan])
        ok = np.isfinite(per)
        mean.append(float(per[ok].mean()) if ok.any() else float("nan"))
        std.append(float(per[ok].std()) if ok.any() else float("nan"))
    return {"centres": np.array([0.5 * (lo + hi) for lo, hi in zip(edges[:-1], edges[1:])]),
            "mean": np.array(mean), "std": np.array(std), "n_voxels": nvox}


def linear_fit(pred, truth, mask=None) -> dict:
    """Least-squares line pred = slope · truth + intercept; ``scatter`` is the rms residual
    about it (units of the field)."""
    p = np.asarray(pred, dtype=float)
    t = np.asarray(truth, dtype=float)
    if mask is not None:
        m = np.broadcast_to(mask, p.shape)
        p, t = p[m], t[m]
    p, t = p.ravel(), t.ravel()
    if p.size < 2 or np.var(t) == 0:
        return {"slope": None, "intercept": None, "scatter": None}
    tc = t - t.mean()
    slope = np.dot(tc, p - p.mean()) / np.dot(tc, tc)
    intercept = p.mean() - slope * t.mean()
    resid = p - slope * t - intercept
    return {"slope": _f(slope), "intercept": _f(intercept), "scatter": _f(np.sqrt(np.mean(resid ** 2)))}


def mse(pred, truth, mask=None) -> float:
    """Mean squared error (units of the field squared)."""
    d = np.asarray(pred, dtype=float) - np.asarray(truth, dtype=float)
    if mask is not None:
        d = d[np.broadcast_to(mask, d.shape)]
    return float(np.mean(d ** 2)) if d.size else float("nan")


def _point_stats(p, t, mask):
    """Pooled statistics of stacks p, t (n, N, N, N) over a (N, N, N) mask."""
    n_vox = int(mask.sum())
    if n_vox == 0:
        return {"n_voxels": 0}
    pm, tm = p[:, mask], t[:, mask]
    per = [pearson_r(pm[i], tm[i]) for i in range(len(pm))]
    # the mean of each mock's field is unknown to a reconstruction from data in the cube
    # (e.g. φ's constant); the "demeaned" MSE removes it per mock.
    dm = (pm - pm.mean(axis=1, keepdims=True)) - (tm - tm.mean(axis=1, keepdims=True))
    out = {
        "n_voxels": n_vox,
        "pearson_r": _f(pearson_r(pm, tm)),
        "pearson_r_mock_mean": _f(np.nanmean(per)) if np.any(np.isfinite(per)) else None,
        "pearson_r_mock_std": _f(np.nanstd(per)) if np.any(np.isfinite(per)) else None,
        "pearson_r_per_mock": [_f(x) for x in per],
        "mse": _f(mse(pm, tm)),
        "rmse": _f(np.sqrt(mse(pm, tm))),
        "mse_per_mock": [_f(x) for x in np.mean((pm - tm) ** 2, axis=1)],
        "mse_demeaned": _f(np.mean(dm ** 2)),
        "mse_demeaned_per_mock": [_f(x) for x in np.mean(dm ** 2, axis=1)],
        "truth_std": _f(np.std(tm)),
        "pred_std": _f(np.std(pm)),
    }
    out.update(linear_fit(pm, tm))
    return out


# --------------------------------------------------------------------------- sky geometry


def regions(n: int, size: float, zoa_b: float, r_max: float | None = None) -> dict:
    """Named boolean masks: cube, survey (r ≤ r_max, default L/2), zoa, outside_zoa."""
    r = vel.radius_grid(n, size)
    r_max = 0.5 * size if r_max is None else r_max
    survey = r <= r_max
    z = zoa_mask(n, size, zoa_b)
    return {"cube": np.ones((n, n, n), bool), "survey": survey,
            "zoa": survey & z, "outside_zoa": survey & ~z}


# --------------------------------------------------------------------------- Fourier statistics
def _k_bins(n, size, nbins):
    kf = 2 * np.pi / size
    knyq = np.pi * n / size
    nbins = int(nbins or n // 2)
    return np.linspace(0.5 * kf, knyq, nbins + 1)


def _binned_cross(a, b, size, nbins):
    """Σ over mocks of the binned cross power of stacks a, b: (k_mean, P_ab, modes)."""
    n = a.shape[1]
    edges = _k_bins(n, size, nbins)
    kmag = np.sqrt(fourier.k_squared(n, size))
    # rfftn keeps half the modes: weight 2 for kz planes that stand for their conjugate
    w = np.broadcast_to(fourier.half_spectrum_weights(n), kmag.shape)
    idx = np.digitize(kmag.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    nb = len(edges) - 1
    modes = np.bincount(idx[ok], weights=w.ravel()[ok], minlength=nb)
    ksum = np.bincount(idx[ok], weights=(w * kmag).ravel()[ok], minlength=nb)
    vol = size ** 3
    norm = vol / float(n) ** 6
    pab = np.zeros(nb)
    workers = fourier.fft_workers()
    for i in range(a.shape[0]):
        fa = sfft.rfftn(a[i], workers=workers)
        fb = fa if b is a else sfft.rfftn(b[i], workers=workers)
        cross = (fa * np.conj(fb)).real * w * norm
        pab += np.bincount(idx[ok], weights=cross.ravel()[ok], minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        kmean = ksum / modes
        pab = pab / modes / a.shape[0]
    return kmean, pab, modes, edges


def power_spectrum(field, size: float, nbins: int | None = None) -> dict:
    """Measured power spectrum of a cube (or the mean over a stack of cubes).

    P(k) = ⟨|δ_k|²⟩ / V with δ_k = Δ³ Σ_x δ(x) e^{−ik·x} (the FFT times the voxel volume
    Δ³ = (L/N)³), averaged in ``nbins`` (default N/2) linear spherical shells from k_f/2 to
    the Nyquist frequency πN/L. Returns {"k": mean |k| per bin (h/Mpc), "power": (Mpc/h)³,
    "modes": modes per bin, "edges"}. No window deconvolution or shot-noise subtraction: it
    measures the field as gridded."""
    a = _stack(field)
    k, p, modes, edges = _binned_cross(a, a, size, nbins)
    return {"k": k, "power": p, "modes": modes, "edges": edges}


def cross_correlation(pred, truth, size: float, nbins: int | None = None) -> dict:
    """Cross-correlation coefficient r(k) = P_pt / √(P_pp P_tt) and transfer function
    T(k) = √(P_pred / P_true) in spherical k bins (powers summed over the mocks of a stack)."""
    p, t = _pair(pred, truth)
    k, ppt, modes, _ = _binned_cross(p, t, size, nbins)
    _, ppp, _, _ = _binned_cross(p, p, size, nbins)
    _, ptt, _, _ = _binned_cross(t, t, size, nbins)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = ppt / np.sqrt(ppp * ptt)
        tr = np.sqrt(ppp / ptt)
    return {"k": k, "r": r, "transfer": tr, "p_pred": ppp, "p_true": ptt, "modes": modes}


# --------------------------------------------------------------------------- other metrics
def one_point_pdf(pred, truth, bins: int = 40, mask=None) -> dict:
    """Histograms (probability densities) of prediction and truth on common edges spanning
    the 0.1–99.9 percentiles of both."""
    p = np.asarray(pred, dtype=float)
    t = np.asarray(truth, dtype=float)
    if mask is not None:
        m = np.broadcast_to(mask, p.shape)
        p, t = p[m], t[m]
    both = np.concatenate([p.ravel(), t.ravel()])
    lo, hi = np.percentile(both, [0.1, 99.9])
    if not hi > lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    hp, _ = np.histogram(p, edges, density=True)
    ht, _ = np.histogram(t, edges, density=True)
    return {"edges": edges, "pred": hp, "truth": ht}


def velocity_residual_rms(pred_v, true_v, mask=None) -> dict:
    """rms of the velocity residual (km/s): per SG component and 3D, √⟨|v_pred − v_true|²⟩,
    pooled over mocks; ``3d_per_mock`` is each mock's 3D rms, ``3d_mock_mean`` their mean."""
    p, t = _pair(pred_v, true_v, vector=True)
    d = p - t
    d = d[:, mask] if mask is not None else d.reshape(len(d), -1, 3)  # (n, voxels, 3)
    if not d.shape[1]:
        return {"x": None, "y": None, "z": None, "3d": None, "3d_per_mock": [None] * len(d),
                "3d_mock_mean": None}
    per = np.sqrt(np.mean(np.sum(d ** 2, axis=-1), axis=1))
    d = d.reshape(-1, 3)
    comp = np.sqrt(np.mean(d ** 2, axis=0))
    return {"x": _f(comp[0]), "y": _f(comp[1]), "z": _f(comp[2]),
            "3d": _f(np.sqrt(np.mean(np.sum(d ** 2, axis=1)))),
            "3d_per_mock": [_f(x) for x in per], "3d_mock_mean": _f(per.mean())}


def bulk_flow_error(pred_v, true_v, size: float, radii, cosmo=None, parent_size: float | None = None,
                    smoothing: float = 0.0) -> dict:
    """Bulk flows B(R) of prediction and truth (:func:`zoa_lib.universe.velocity.bulk_flow`) at each
    radius, per mock, and their error |B_pred − B_true| (km/s): mean and rms over mocks.
    With ``cosmo``, the ΛCDM σ_B(R) and its Maxwellian 68 % range are added
    (``lcdm_sigma``, ``lcdm_lower``, ``lcdm_upper``: infinite volume); with ``parent_size``
    also those of the modes of the mocks' parent box, smoothed with ``smoothing`` Mpc/h
    (``lcdm_box_sigma``, ``lcdm_box_lower``, ``lcdm_box_upper``,
    :meth:`zoa_lib.universe.cosmology.Cosmology.sigma_bulk_flow_box`)."""
    p, t = _pair(pred_v, true_v, vector=True)
    radii = [float(r) for r in np.atleast_1d(radii)]
    bp = np.array([vel.bulk_flow_profile(x, size, radii) for x in p])  # (n, R, 3)
    bt = np.array([vel.bulk_flow_profile(x, size, radii) for x in t])
    err = np.linalg.norm(bp - bt, axis=-1)
    out = {
        "radii": radii,
        "error_mean": err.mean(axis=0),
        "error_rms": np.sqrt(np.mean(err ** 2, axis=0)),
        "pred_magnitude_mean": np.linalg.norm(bp, axis=-1).mean(axis=0),
        "true_magnitude_mean": np.linalg.norm(bt, axis=-1).mean(axis=0),
        "pred": bp, "true": bt,
    }
    if cosmo is not None:
        sig, lo, hi = cosmo.bulk_flow_range(radii)
        out.update(lcdm_sigma=sig, lcdm_lower=lo, lcdm_upper=hi)
        if parent_size is not None:
            sig, lo, hi = cosmo.bulk_flow_range(radii, box_size=parent_size, smoothing=smoothing)
            out.update(lcdm_box_sigma=sig, lcdm_box_lower=lo, lcdm_box_upper=hi,
                       lcdm_box_size=float(parent_size), lcdm_box_smoothing=float(smoothing))
    return to_jsonable(out)


def vector_correlation(p, t, mask) -> dict:
    """Pearson r of 3D vector fields p, t (n, N, N, N, 3) over a (N, N, N) mask:
    r = Σ (p − p̄)·(t − t̄) / √(Σ |p − p̄|² Σ |t − t̄|²), each component's mean removed;
    pooled over mocks (``pearson_r``) and per mock (``pearson_r_per_mock``, its mean and
    standard deviation)."""
    pm, tm = p[:, mask], t[:, mask]  # (n, voxels, 3)
    if not pm.shape[1]:
        return {"pearson_r": None, "pearson_r_per_mock": [None] * len(pm), "pearson_r_mock_mean": None,
                "pearson_r_mock_std": None}

    def r(a, b):  # (m, voxels, 3) → (m,): each component's mean over the voxels removed
        a = a - a.mean(axis=1, keepdims=True)
        b = b - b.mean(axis=1, keepdims=True)
        den = np.sqrt(np.sum(a * a, axis=(1, 2)) * np.sum(b * b, axis=(1, 2)))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sum(a * b, axis=(1, 2)) / den

    per = r(pm, tm)
    pooled = r(pm.reshape(1, -1, 3), tm.reshape(1, -1, 3))[0]
    ok = np.isfinite(per)
    return {"pearson_r": _f(pooled), "pearson_r_per_mock": [_f(x) for x in per],
            "pearson_r_mock_mean": _f(per[ok].mean()) if ok.any() else None,
            "pearson_r_mock_std": _f(per[ok].std()) if ok.any() else None}


def paired_bootstrap(a, b, groups, n_boot: int = 2000, seed: "int | np.random.Generator" = 0,
                     level: float = 0.68) -> dict:
    """Mean difference of paired per-mock values a − b and its bootstrap interval, resampling
    groups (parent boxes) with replacement.

    Each draw takes G groups with replacement out of the G distinct ``groups`` (a group drawn
    k times counts k times) and computes the mean over the drawn mocks of a − b — the same
    mocks for both methods (paired). The interval is the central ``level`` quantile range
    (default the 16th–84th percentiles) of the draws. Mocks where either value is NaN/None
    are left out. Deterministic for a given ``seed`` (an int, or a numpy Generator to draw
    from).

    Returns {"difference": mean of a − b over the mocks, "interval": (lo, hi) (NaN with fewer
    than two groups: one parent box says nothing about box-to-box scatter), "n_mocks",
    "n_groups", "n_boot", "level"}."""
    a = np.asarray([np.nan if x is None else x for x in np.ravel(a)], dtype=float)
    b = np.asarray([np.nan if x is None else x for x in np.ravel(b)], dtype=float)
    g = np.ravel(np.asarray(groups))
    if not (a.shape == b.shape == g.shape):
        raise MetricsError(f"paired_bootstrap: a, b and groups must have one value per mock, got "
                           f"{a.shape}, {b.shape} and {g.shape}")
    if not 0 < level < 1 or n_boot < 1:
        raise MetricsError(f"paired_bootstrap: level must be in (0, 1) and n_boot >= 1, got {level}, {n_boot}")
    ok = np.isfinite(a) & np.isfinite(b)
    d, g = (a - b)[ok], g[ok]
    out = {"difference": float(d.mean()) if d.size else float("nan"), "interval": (float("nan"), float("nan")),
           "n_mocks": int(d.size), "n_groups": 0, "n_boot": int(n_boot), "level": float(level)}
    if not d.size:
        return out
    _, idx = np.unique(g, return_inverse=True)
    G = int(idx.max()) + 1
    out["n_groups"] = G
    if G < 2:
        return out
    sums = np.bincount(idx, weights=d, minlength=G)
    counts = np.bincount(idx, minlength=G).astype(float)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    draws = rng.multinomial(G, np.full(G, 1.0 / G), size=n_boot).astype(float)  # (n_boot, G)
    stats = (draws @ sums) / (draws @ counts)
    q = 0.5 * (1.0 - level)
    lo, hi = np.quantile(stats, [q, 1.0 - q])
    out["interval"] = (float(lo), float(hi))
    return out


def to_jsonable(obj):
    """Arrays → lists, numpy scalars → floats, NaN/inf → None, recursively."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _f(obj)
    return obj


# --------------------------------------------------------------------------- bundles
def _mock_r_stats(p, t, m):
    """Mean and standard deviation over the mocks of each mock's r over mask ``m``."""
    per = pearson_r_per_mock(p, t, m)
    ok = np.isfinite(per)
    return {"pearson_r_mock_mean": _f(per[ok].mean()) if ok.any() else None,
            "pearson_r_mock_std": _f(per[ok].std()) if ok.any() else None}


def _shells_and_slabs(p, t, size, shells, n_slabs):
    n = p.shape[1]
    r = vel.radius_grid(n, size)
    out_shells = []
    for lo, hi in zip(shells[:-1], shells[1:]):
        m = (r >= lo) & (r < hi)
        s = {"r_min": float(lo), "r_max": float(hi), "n_voxels": int(m.sum())}
        if m.any():
            s.update(pearson_r=_f(pearson_r(p[:, m], t[:, m])), mse=_f(mse(p[:, m], t[:, m])),
                     **_mock_r_stats(p, t, m))
        out_shells.append(s)
    z = voxel_centres(size, n)
    edges = np.linspace(-0.5 * size, 0.5 * size, n_slabs + 1)
    out_slabs = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (z >= lo) & (z < hi)
        m = np.zeros((n, n, n), bool)
        m[:, :, sel] = True
        s = {"sgz_min": float(lo), "sgz_max": float(hi), "n_voxels": int(m.sum())}
        if m.any():
            s.update(pearson_r=_f(pearson_r(p[:, m], t[:, m])), mse=_f(mse(p[:, m], t[:, m])),
                     **_mock_r_stats(p, t, m))
        out_slabs.append(s)
    return out_shells, out_slabs


#: Quantiles of the true field that bound the bins of :func:`mse_by_truth_bins`: the lower
#: half, the next 40 %, the 9 % below the top 1 %, and the top 1 % (for δ smoothed on the
#: voxel scale: from voids and mean density to the most nonlinear peaks).
TRUTH_QUANTILES = (0.0, 0.5, 0.9, 0.99, 1.0)


def mse_by_truth_bins(pred, truth, mask=None, quantiles=TRUTH_QUANTILES) -> dict:
    """Mean squared error in bins of the *true* value: where the field is nonlinear (the
    highest δ) against where it is near the mean.

    The bin edges are the ``quantiles`` of ``truth`` over the voxels in ``mask`` (all when
    None), pooled over the mocks, the top bin closed. Returns {"quantiles", "edges" (truth
    values), "mse" (per bin, NaN when empty), "n" (voxels per bin)}."""
    p, t = _pair(pred, truth)
    m = np.ones(t.shape, bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), t.shape)
    tv, pv = t[m], p[m]
    q = np.asarray(quantiles, float)
    if q.ndim != 1 or len(q) < 2 or np.any(np.diff(q) <= 0) or q[0] < 0 or q[-1] > 1:
        raise MetricsError(f"quantiles must increase within [0, 1], got {list(quantiles)}")
    edges = np.quantile(tv, q)
    idx = np.clip(np.searchsorted(edges, tv, side="right") - 1, 0, len(q) - 2)
    err = (pv - tv) ** 2
    n = np.bincount(idx, minlength=len(q) - 1)
    s = np.bincount(idx, weights=err, minlength=len(q) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mse_b = np.where(n > 0, s / np.maximum(n, 1), np.nan)
    return {"quantiles": q.tolist(), "edges": edges.tolist(), "mse": mse_b.tolist(), "n": n.tolist()}


def field_metrics(pred, truth, size: float, zoa_b: float, shells, r_max: float | None = None,
                  n_slabs: int = 4, nbins: int | None = None, pdf_bins: int = 40) -> dict:
    """Every metric of a scalar field (δ or φ) against the truth, as a JSON-able dict.

    Parameters
    ----------
    pred, truth : (N, N, N) or (n, N, N, N) in the field's physical units.
    size : cube side L (Mpc/h). zoa_b : ZOA half-width in Galactic latitude (deg).
    shells : increasing distance-shell edges (Mpc/h). r_max : survey radius (default L/2).
    n_slabs : number of equal SGZ slabs. nbins : k bins (default N/2).

    Returns
    -------
    {"regions": {cube|survey|zoa|outside_zoa: {pearson_r, slope, intercept, scatter, mse,
    rmse, mse_demeaned, ...}}, "shells": [...], "slabs": [...] (each with r pooled over the
    mocks, ``pearson_r``, and the mean and spread of each mock's r, ``pearson_r_mock_mean`` /
    ``_std``, the one to read for φ: pooling adds each mock's constant),
    "spectrum": {k, r, transfer, p_pred, p_true}, "pdf": {edges, pred, truth},
    "truth_bins": MSE in the survey sphere in bins of the true value (:func:`mse_by_truth_bins`)}
    """
    p, t = _pair(pred, truth)
    n = p.shape[1]
    regs = regions(n, size, zoa_b, r_max)
    out = {"regions": {name: _point_stats(p, t, m) for name, m in regs.items()}}
    out["shells"], out["slabs"] = _shells_and_slabs(p, t, size, shells, n_slabs)
    cc = cross_correlation(p, t, size, nbins)
    out["spectrum"] = {k: cc[k] for k in ("k", "r", "transfer", "p_pred", "p_true", "modes")}
    out["pdf"] = one_point_pdf(p, t, pdf_bins)
    out["truth_bins"] = mse_by_truth_bins(p, t, regs["survey"])
    return to_jsonable(out)


def velocity_metrics(pred_v, true_v, size: float, zoa_b: float, shells, radii,
                     r_max: float | None = None, cosmo=None, n_slabs: int = 4,
                     parent_size: float | None = None, smoothing: float = 0.0) -> dict:
    """Metrics of a velocity field (km/s) against the truth, as a JSON-able dict:
    per-region Pearson r / slope / MSE of each SG component and of the radial velocity,
    the 3D vector correlation (``vector``, :func:`vector_correlation`), residual rms per
    component and 3D, shells and slabs of the radial velocity, and the bulk-flow error
    against R (:func:`bulk_flow_error`, with ``parent_size`` and ``smoothing``)."""
    p, t = _pair(pred_v, true_v, vector=True)
    n = p.shape[1]
    regs = regions(n, size, zoa_b, r_max)
    rhat = vel.unit_radial_grid(n, size)
    pr = np.einsum("m...a,...a->m...", p, rhat)
    tr = np.einsum("m...a,...a->m...", t, rhat)
    comps = {"x": (p[..., 0], t[..., 0]), "y": (p[..., 1], t[..., 1]),
             "z": (p[..., 2], t[..., 2]), "radial": (pr, tr)}
    out = {"regions": {}}
    for name, m in regs.items():
        reg = {c: _point_stats(a, b, m) for c, (a, b) in comps.items()}
        reg["vector"] = vector_correlation(p, t, m)
        reg["residual_rms"] = velocity_residual_rms(p, t, m)
        out["regions"][name] = reg
    out["shells"], out["slabs"] = _shells_and_slabs(pr, tr, size, shells, n_slabs)
    out["bulk_flow"] = bulk_flow_error(p, t, size, radii, cosmo, parent_size, smoothing)
    return to_jsonable(out)


def shell_correlations(truth, pred, size: float, shells, zoa_b: float, nside_like=(180, 90)) -> list[dict]:
    """Pearson r between the shell-averaged sky maps (:func:`sample_shell`, Galactic grid) of
    a true and a predicted cube field, per distance shell: over the pixels inside the Zone
    of Avoidance (|b| < ``zoa_b``) and over the whole sky. A velocity cube (N, N, N, 3)
    compares radial velocities. Returns [{"shell": (r_lo, r_hi), "r_zoa", "r_sky"}]."""
    out = []
    for lo, hi in shells:
        _, b, m_true = sample_shell(truth, size, lo, hi, nside_like)
        _, _, m_pred = sample_shell(pred, size, lo, hi, nside_like)
        ok = np.isfinite(m_true) & np.isfinite(m_pred)
        band = (np.abs(b) < float(zoa_b))[:, None] & ok
        out.append({"shell": (float(lo), float(hi)), "r_zoa": pearson_r(m_pred, m_true, mask=band),
                    "r_sky": pearson_r(m_pred, m_true, mask=ok)})
    return out


REGIONS = ("cube", "survey", "zoa", "outside_zoa")

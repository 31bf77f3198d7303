"""Nonlinear matter power: a halofit reference from CAMB, and measured spectra of particles.

Reference. :func:`camb_power` runs CAMB (Lewis, Challinor & Lasenby 2000; an independent
Boltzmann code, the optional ``test`` extra) for the profile's cosmology (h, Ωb, Ωm, ns,
massless neutrinos) with its primordial amplitude rescaled so that CAMB's own σ8 is the
profile's, and returns its linear and halofit (Takahashi et al. 2012) P(k) at redshift z.
:func:`halofit_boost` is their ratio B(k) = P_hf / P_lin. A measured spectrum is compared as
P_measured / (P_lin,realisation B(k)): the same realisation's linear power times the boost,
so cosmic variance and the difference between the project's Eisenstein–Hu transfer function
and CAMB's cancel (tests/test_pm.py uses the same comparison).

Measurement. :func:`particle_power_modes` deposits particles with cloud-in-cell on an
M³ mesh and divides the CIC window W(k) = Π sinc²(k_i Δ/2) out of δ_k;
:func:`field_power_modes` takes a field on the mesh (e.g. the linear δ of the ICs).
Both return |δ_k|² V / M⁶ per rfft mode, (Mpc/h)³; :func:`bin_modes` averages them in k
shells (no shot-noise subtraction: with one particle per cell, 1/n̄ = Δ³ is small
against P at the k shown).
"""
from __future__ import annotations

import functools

import numpy as np

from zoa_lib.errors import ZoaError

CAMB_HINT = "the halofit reference needs CAMB: pip install camb (in the optional extra 'test')"


class NonlinearError(ZoaError, ValueError):
    """CAMB missing, or bad input to the power-spectrum helpers."""


def camb_available() -> bool:
    """True when ``import camb`` works."""
    try:
        import camb  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=8)
def _camb_power(h, Ob0, Om0, ns, sigma8, z, kmin, kmax, npoints, version):
    try:
        import camb
    except ImportError as exc:
        raise NonlinearError(f"{CAMB_HINT} ({exc})") from None
    as0 = 2.1e-9
    pars = camb.set_params(H0=100 * h, ombh2=Ob0 * h ** 2, omch2=(Om0 - Ob0) * h ** 2, ns=ns, As=as0, mnu=0.0,
                           WantTransfer=True, halofit_version=version)
    pars.set_matter_power(redshifts=[float(z)], kmax=max(5.0, 1.5 * kmax))
    s8 = camb.get_results(pars).get_sigma8_0()
    pars.InitPower.set_params(As=as0 * (sigma8 / s8) ** 2, ns=ns)  # halofit's boost depends on σ8
    out = {}
    for name, mode in (("nonlinear", camb.model.NonLinear_both), ("linear", camb.model.NonLinear_none)):
        pars.NonLinear = mode
        res = camb.get_results(pars)
        kh, _, pk = res.get_matter_power_spectrum(minkh=kmin, maxkh=kmax, npoints=npoints)
        out[name] = np.asarray(pk[0], float)
        if name == "linear":
            out["sigma8"] = float(res.get_sigma8_0())
    out["k"] = np.asarray(kh, float)
    out["boost"] = out["nonlinear"] / out["linear"]
    return out


def camb_power(cosmo, z: float = 0.0, kmin: float = 1e-3, kmax: float = 3.0, npoints: int = 400,
               halofit: str = "takahashi") -> dict:
    """CAMB's linear and halofit P(k) for a :class:`zoa_lib.universe.cosmology.Cosmology` at redshift z.

    Returns {"k": h/Mpc (log-spaced, ``npoints`` from ``kmin`` to ``kmax``), "linear",
    "nonlinear": (Mpc/h)³, "boost": nonlinear / linear, "sigma8": CAMB's σ8 after the
    rescaling (= cosmo.sigma8), "halofit": the version}. Cached per cosmology. Raises
    :class:`NonlinearError` (one line) when CAMB is not installed."""
    if not 0 < kmin < kmax:
        raise NonlinearError(f"camb_power: need 0 < kmin < kmax (h/Mpc), got {kmin}, {kmax}")
    out = _camb_power(float(cosmo.h), float(cosmo.Ob0), float(cosmo.Om0), float(cosmo.ns), float(cosmo.sigma8),
                      float(z), float(kmin), float(kmax), int(npoints), str(halofit))
    return {**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in out.items()}, "halofit": halofit}


def halofit_boost(cosmo, k, z: float = 0.0) -> np.ndarray:
    """Halofit's nonlinear boost B(k) = P_hf / P_lin (CAMB, :func:`camb_power`) at k (h/Mpc),
    interpolated in log k."""
    ref = camb_power(cosmo, z)
    k = np.asarray(k, float)
    return np.interp(np.log(np.maximum(k, 1e-12)), np.log(ref["k"]), ref["boost"])


# --------------------------------------------------------------------------- measured spectra
def _kgrid(mesh: int, size: float):
    """|k| (h/Mpc) and the CIC window W(k) on the rfftn layout of an M³ mesh of side L."""
    k1 = 2 * np.pi * np.fft.fftfreq(mesh, size / mesh)
    kz = 2 * np.pi * np.fft.rfftfreq(mesh, size / mesh)
    h = size / mesh / 2
    s1, sz = np.sinc(k1 * h / np.pi) ** 2, np.sinc(kz * h / np.pi) ** 2
    K = np.sqrt(k1[:, None, None] ** 2 + k1[None, :, None] ** 2 + kz[None, None, :] ** 2)
    return K, s1[:, None, None] * s1[None, :, None] * sz[None, None, :]


def field_power_modes(delta, size: float):
    """(|k| in h/Mpc, |δ_k|² V / M⁶ in (Mpc/h)³) per rfft mode of a field δ on an M³ mesh."""
    d = np.asarray(delta, float)
    if d.ndim != 3 or len(set(d.shape)) != 1:
        raise NonlinearError(f"field_power_modes: need a cubic 3D field, got shape {d.shape}")
    mesh = d.shape[0]
    K, _ = _kgrid(mesh, size)
    return K, np.abs(np.fft.rfftn(d)) ** 2 * size ** 3 / mesh ** 6


def particle_power_modes(positions, size: float, mesh: int):
    """(|k|, P per mode) of particles (n, 3) in [0, L) Mpc/h: CIC-deposited on ``mesh``³,
    δ = m / m̄ − 1, the CIC window divided out of δ_k."""
    from zoa_lib.universe.mass_assignment import cic_deposit

    m = cic_deposit(np.asarray(positions), size, mesh)
    d = m / m.mean() - 1.0
    K, W = _kgrid(mesh, size)
    return K, np.abs(np.fft.rfftn(d) / W) ** 2 * size ** 3 / mesh ** 6


def bin_modes(K, P, edges):
    """Mean |k| (h/Mpc), mean P and number of rfft modes in the shells ``edges`` (h/Mpc)."""
    edges = np.asarray(edges, float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise NonlinearError(f"bin_modes: edges must be increasing, got {edges.tolist()}")
    idx = np.digitize(np.ravel(K), edges) - 1
    ok = (idx >= 0) & (idx < edges.size - 1)
    nb = edges.size - 1
    n = np.bincount(idx[ok], minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.bincount(idx[ok], weights=np.ravel(K)[ok], minlength=nb) / n
        p = np.bincount(idx[ok], weights=np.ravel(P)[ok], minlength=nb) / n
    return k, p, n


def engine_spectra(boxes, cosmo, edges=None, halofit: bool | None = None) -> dict:
    """Binned power spectra of parent boxes of one realisation evolved by different engines.

    ``boxes``: {engine name: :class:`zoa_lib.universe.simulation.ParentBox`} sharing ``delta_lin``.
    ``edges``: k shells (h/Mpc; default 24 log shells from the fundamental mode 2π/L to
    the Nyquist frequency πM/L). Returns {"k", "modes", "linear": the realisation's linear
    P (Mpc/h)³, "linear_theory": the cosmology's P_lin(k), "power": {engine: P},
    "halofit": P_lin,realisation × B(k) or None, "ratio_halofit": {engine: P / halofit} or
    None, "ratio_linear": {engine: P / P_lin,realisation}, "k_nyquist", "camb": whether the
    halofit reference was computed, "reason": why not (or "")}. ``halofit``: None = when
    CAMB is installed."""
    boxes = dict(boxes)
    if not boxes:
        raise NonlinearError("engine_spectra: no boxes")
    first = next(iter(boxes.values()))
    L, M = float(first.size), int(first.mesh)
    for name, b in boxes.items():
        if (float(b.size), int(b.mesh)) != (L, M) or not np.array_equal(b.delta_lin, first.delta_lin):
            raise NonlinearError(f"engine_spectra: box {name!r} is not the same realisation as the others")
    if edges is None:
        edges = np.geomspace(2 * np.pi / L, np.pi * M / L, 25)
    Kl, Pl = field_power_modes(first.delta_lin, L)
    k, plin, modes = bin_modes(Kl, Pl, edges)
    power, ratio_lin = {}, {}
    for name, b in boxes.items():
        K, P = particle_power_modes(b.positions, L, M)
        power[name] = bin_modes(K, P, edges)[1]
        ratio_lin[name] = power[name] / plin
    use = camb_available() if halofit is None else bool(halofit)
    reason = "" if use else ("CAMB is not installed (pip install camb, optional extra 'test'): linear theory only"
                             if not camb_available() else "halofit reference not requested")
    hf = ratio_hf = None
    if use:
        hf = plin * halofit_boost(cosmo, k)
        ratio_hf = {name: p / hf for name, p in power.items()}
    return {"k": k, "edges": np.asarray(edges, float), "modes": modes, "linear": plin,
            "linear_theory": np.asarray(cosmo.power_spectrum(k), float), "power": power, "halofit": hf,
            "ratio_halofit": ratio_hf, "ratio_linear": ratio_lin, "k_nyquist": np.pi * M / L, "camb": use,
            "reason": reason}


def mean_ratio(spectra: dict, engine: str, k_lo: float, k_hi: float, of: str = "ratio_halofit") -> float:
    """Mode-weighted mean of ``spectra[of][engine]`` over the shells with k_lo ≤ k < k_hi
    (h/Mpc); NaN when there is none (or no halofit reference)."""
    r = spectra.get(of)
    if r is None:
        return float("nan")
    s = (spectra["k"] >= k_lo) & (spectra["k"] < k_hi) & (spectra["modes"] > 0)
    if not s.any():
        return float("nan")
    return float(np.sum(r[engine][s] * spectra["modes"][s]) / np.sum(spectra["modes"][s]))


# --------------------------------------------------------------------------- one-point statistics
def box_density(box, smoothing: float | None = None, linear: bool = False) -> np.ndarray:
    """δ (M³) of a parent box on its own mesh: its particles deposited with CIC (or, with
    ``linear``, the linear δ of its ICs convolved with the same CIC window, so that the two
    are smoothed alike), smoothed with a Gaussian of σ = ``smoothing`` Mpc/h when given
    (:func:`zoa_lib.universe.fields.gaussian_smooth`)."""
    from zoa_lib.universe.fields import density_contrast, gaussian_smooth
    from zoa_lib.universe.mass_assignment import cic_deposit

    if linear:
        _, W = _kgrid(box.mesh, box.size)
        d = np.fft.irfftn(np.fft.rfftn(np.asarray(box.delta_lin, float)) * W, s=(box.mesh,) * 3).astype(np.float32)
    else:
        d = density_contrast(cic_deposit(box.positions, box.size, box.mesh))
    return gaussian_smooth(d, box.size, float(smoothing)) if smoothing else d


def density_pdfs(deltas, bins: int = 80, lo: float = -1.0, hi: float | None = None) -> dict:
    """One-point PDFs of density contrasts on common linear bins.

    ``deltas``: {name: δ array} (e.g. the CIC δ of each engine's box and the linear δ of
    their ICs). Edges from ``lo`` to ``hi`` (default: the 99.9th percentile of all);
    returns {"edges", "pdf": {name: density per unit δ}, "variance": {name: ⟨δ²⟩ − ⟨δ⟩²},
    "skewness": {name: ⟨(δ − δ̄)³⟩ / σ³}, "min": {name: min δ}} (moments of all values,
    not only those inside the edges)."""
    deltas = {k: np.ravel(np.asarray(v, float)) for k, v in dict(deltas).items()}
    if not deltas:
        raise NonlinearError("density_pdfs: no fields")
    if hi is None:
        hi = float(np.percentile(np.concatenate(list(deltas.values())), 99.99))
    if not hi > lo:
        raise NonlinearError(f"density_pdfs: need hi > lo, got {lo}, {hi}")
    edges = np.linspace(lo, hi, int(bins) + 1)
    out = {"edges": edges, "pdf": {}, "variance": {}, "skewness": {}, "min": {}}
    for k, d in deltas.items():
        # density per unit δ of all values (those outside the edges count in the norm)
        h, _ = np.histogram(d, edges)
        out["pdf"][k] = h / (d.size * np.diff(edges))
        c = d - d.mean()
        var = float(np.mean(c ** 2))
        out["variance"][k] = var
        out["skewness"][k] = float(np.mean(c ** 3) / var ** 1.5) if var > 0 else float("nan")
        out["min"][k] = float(d.min())
    return out

"""Cosmology: parameters, linear power spectrum, growth rate and bulk-flow expectations.

Built on colossus (Diemer 2018). Units: wavenumbers k in h/Mpc, P(k) in (Mpc/h)³,
lengths in Mpc/h, velocities in km/s, and H0 = 100 km/s per Mpc/h (DESIGN.md).

Linear theory at a = 1 (DESIGN.md conventions)::

    v(k)  = i f H0 δ(k) k / k²
    ∇²φ   = (3/2) Ωm H0² δ          →  φ(k) = −(3/2) Ωm H0² δ(k) / k²   [(km/s)²]
    v     = −(2 f / (3 H0 Ωm)) ∇φ

The rms bulk flow in a top-hat sphere of radius R (e.g. Strauss & Willick 1995)::

    σ_B(R) = f H0 [ (1/2π²) ∫ P(k) W²(kR) dk ]^½,   W(x) = 3 (sin x − x cos x) / x³

A mock cut from a periodic parent box of side L_p has only the box's modes k = 2π n / L_p
(n an integer vector ≠ 0): its bulk flows scatter with the lattice sum
(:meth:`Cosmology.sigma_bulk_flow_box`)::

    σ_B,box²(R) = (f H0)² (1/L_p³) Σ_{n ≠ 0} P(k) W²(kR) e^{−k²σ_s²} / k²

(σ_s: the targets' Gaussian smoothing), smaller than σ_B at R ≳ L_p/10: at the laptop
profile (L_p = 480 Mpc/h) the infinite-volume σ_B is 10–14 % higher at R = 50–70 Mpc/h.
A sharp cut of the integral at k_min = 2π/L_p overcorrects: the lattice lacks only the
cell around k = 0 (volume (2π/L_p)³), the cut removes a ball 4.2 times larger, and gives a
σ_B 7–11 % below the lattice sum at those radii; so the lattice is summed (exactly for
|n| ≤ ``n_max``, as the integral beyond).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import integrate

#: Hubble constant in km/s per Mpc/h (positions are comoving Mpc/h).
H0 = 100.0
#: Speed of light in km/s.
C_LIGHT = 299792.458


def _colossus():
    from colossus.cosmology import cosmology as cc

    return cc


@dataclass(frozen=True)
class Cosmology:
    """A flat ΛCDM cosmology with the parameters of a colossus cosmology.

    Attributes
    ----------
    name : colossus name of the base cosmology (``planck18``).
    h : dimensionless Hubble parameter; Om0, Ob0 : matter and baryon density today;
    sigma8 : rms linear fluctuation in 8 Mpc/h spheres; ns : spectral index.
    """

    name: str = "planck18"
    h: float = 0.6766
    Om0: float = 0.3111
    Ob0: float = 0.0490
    sigma8: float = 0.8102
    ns: float = 0.9665

    @classmethod
    def from_config(cls, cfg) -> "Cosmology":
        """Build from a :class:`zoa_lib.config.CosmologyConfig` (or a Profile)."""
        cfg = getattr(cfg, "cosmology", cfg)
        base = _colossus().cosmologies[cfg.name]
        return cls(
            name=cfg.name,
            h=(cfg.H0 if cfg.H0 is not None else base["H0"]) / 100.0,
            Om0=cfg.Om0 if cfg.Om0 is not None else base["Om0"],
            Ob0=cfg.Ob0 if cfg.Ob0 is not None else base["Ob0"],
            sigma8=cfg.sigma8 if cfg.sigma8 is not None else base["sigma8"],
            ns=cfg.ns if cfg.ns is not None else base["ns"],
        )

    @cached_property
    def colossus(self):
        """The colossus Cosmology object (flat, no relativistic species beyond default)."""
        cc = _colossus()
        params = dict(flat=True, H0=100.0 * self.h, Om0=self.Om0, Ob0=self.Ob0,
                      sigma8=self.sigma8, ns=self.ns)
        return cc.Cosmology(name=f"zoa-{self.name}-{hash(self) & 0xffff:x}", persistence="", **params)

    # ---------------------------------------------------------------- power and growth
    def power_spectrum(self, k) -> np.ndarray:
        """Linear matter power spectrum P(k) at z = 0 in (Mpc/h)³, k in h/Mpc.

        Eisenstein & Hu (1998) transfer function with baryon wiggles, normalised to
        sigma8, as computed by colossus. P(0) = 0.
        """
        k = np.asarray(k, dtype=float)
        out = np.zeros_like(k)
        pos = k > 0
        if np.any(pos):
            out[pos] = self.colossus.matterPowerSpectrum(k[pos], z=0.0)
        return out

    @cached_property
    def growth_rate(self) -> float:
        """Linear growth rate f = d ln D / d ln a at z = 0 (colossus, no fitting formula)."""
        c = self.colossus
        # d ln D / d ln a = −(1+z) (dD/dz) / D at z = 0
        dD = c.growthFactor(0.0, derivative=1)
        D = c.growthFactor(0.0)
        return float(-dD / D)

    @property
    def H0(self) -> float:
        """H0 in km/s per Mpc/h (= 100 by construction of the units)."""
        return H0

    @property
    def poisson_factor(self) -> float:
        """(3/2) Ωm H0² in (km/s)² per (Mpc/h)²: ∇²φ = poisson_factor · δ."""
        return 1.5 * self.Om0 * H0 ** 2

    @property
    def velocity_from_potential_factor(self) -> float:
        """2 f / (3 H0 Ωm) in (km/s)⁻¹ Mpc/h: v = −factor · ∇φ."""
        return 2.0 * self.growth_rate / (3.0 * H0 * self.Om0)

    # ---------------------------------------------------------------- bulk flows
    def sigma_bulk_flow(self, R, kmin: float = 1e-5, kmax: float = 50.0) -> np.ndarray:
        """ΛCDM rms bulk flow σ_B(R) in km/s in top-hat spheres of radius R (Mpc/h).

        σ_B²(R) = f² H0² / (2π²) ∫ P(k) W²(kR) dk, integrated in ln k.
        This is the rms of one 3D bulk-flow vector's magnitude, ⟨|B|²⟩^½.
        """
        R = np.atleast_1d(np.asarray(R, dtype=float))
        lnk = np.linspace(np.log(kmin), np.log(kmax), 4096)
        k = np.exp(lnk)
        pk = self.power_spectrum(k)
        out = np.empty_like(R)
        for i, r in enumerate(R):
            w = top_hat_window(k * r)
            out[i] = np.sqrt(integrate.simpson(pk * w ** 2 * k, x=lnk) / (2 * np.pi ** 2))
        return self.growth_rate * H0 * out

    def sigma_bulk_flow_box(self, R, box_size: float, smoothing: float = 0.0, n_max: int = 48,
                            kmax: float = 50.0) -> np.ndarray:
        """ΛCDM rms bulk flow σ_B(R) (km/s) of the modes a periodic box of side ``box_size``
        (Mpc/h) has: the lattice sum of the module docstring over k = 2π n / L (n ≠ 0) with
        |n| ≤ ``n_max``, plus the integral beyond the radius k_c of the ball that holds as
        many lattice cells, to ``kmax``; each mode weighted by the smoothing exp(−k²σ_s²)
        of fields smoothed with a Gaussian of σ_s = ``smoothing`` Mpc/h."""
        R = np.atleast_1d(np.asarray(R, dtype=float))
        L = float(box_size)
        if not L > 0 or n_max < 1:
            raise ValueError(f"sigma_bulk_flow_box: box_size must be > 0 and n_max >= 1, got {box_size}, {n_max}")
        n = np.arange(-n_max, n_max + 1)
        n2 = (n[:, None, None] ** 2 + n[None, :, None] ** 2 + n[None, None, :] ** 2).ravel()
        inside = n2 <= n_max ** 2
        sq, count = np.unique(n2[inside & (n2 > 0)], return_counts=True)
        kf = 2 * np.pi / L
        k = kf * np.sqrt(sq)
        pk = self.power_spectrum(k) * np.exp(-(k * smoothing) ** 2)
        kc = kf * (3.0 * inside.sum() / (4.0 * np.pi)) ** (1.0 / 3.0)
        lnk = np.linspace(np.log(kc), np.log(kmax), 4096)
        kk = np.exp(lnk)
        pkk = self.power_spectrum(kk) * np.exp(-(kk * smoothing) ** 2)
        out = np.empty_like(R)
        for i, r in enumerate(R):
            lattice = np.sum(count * pk * top_hat_window(k * r) ** 2 / k ** 2) / L ** 3
            tail = integrate.simpson(pkk * top_hat_window(kk * r) ** 2 * kk, x=lnk) / (2 * np.pi ** 2)
            out[i] = np.sqrt(lattice + tail)
        return self.growth_rate * H0 * out

    def bulk_flow_range(self, R, quantiles=(0.16, 0.84), box_size: float | None = None,
                        smoothing: float = 0.0):
        """Maxwellian range of the bulk-flow magnitude at radius R (Mpc/h).

        Each Cartesian component of B is Gaussian with variance σ_B²/3, so |B| follows a
        Maxwell distribution of scale a = σ_B/√3. Returns (σ_B, lower, upper) in km/s for
        the given quantiles (default: the central 68 %). With ``box_size`` (Mpc/h), σ_B of
        the modes of a periodic box of that side, smoothed with ``smoothing`` Mpc/h
        (:meth:`sigma_bulk_flow_box`: what mocks cut from such a box have); else the
        infinite-volume, unsmoothed σ_B (:meth:`sigma_bulk_flow`).
        """
        from scipy.stats import maxwell

        sig = (self.sigma_bulk_flow(R) if box_size is None
               else self.sigma_bulk_flow_box(R, box_size, smoothing))
        a = sig / np.sqrt(3.0)
        lo = maxwell.ppf(quantiles[0], scale=a)
        hi = maxwell.ppf(quantiles[1], scale=a)
        return sig, lo, hi


def top_hat_window(x) -> np.ndarray:
    """Fourier transform of a unit top-hat sphere, W(x) = 3 (sin x − x cos x) / x³,
    with its series 1 − x²/10 near x = 0."""
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-3
    xs = np.where(small, 1.0, x)
    w = 3.0 * (np.sin(xs) - xs * np.cos(xs)) / xs ** 3
    return np.where(small, 1.0 - x ** 2 / 10.0, w)


def from_profile(profile) -> Cosmology:
    """The profile's cosmology."""
    return Cosmology.from_config(profile.cosmology)

"""The Wiener filters' prior written out mode by mode, for the dense-solve tests of
tests/test_baselines.py and tests/test_wiener_joint.py (an independent computation: explicit
sums over every wave vector of the padded periodic box, no rfft grid)."""
import numpy as np

H0 = 100.0


def full_kgrid(m, Lp):
    """All wave vectors of an m³ periodic box (complex FFT order), (m³, 3) h/Mpc."""
    k1 = 2 * np.pi * np.fft.fftfreq(m, Lp / m)
    return np.stack(np.meshgrid(k1, k1, k1, indexing="ij"), -1).reshape(-1, 3)


def covariance_model(cosmo, m, Lp, smoothing):
    """The filter's prior, written out mode by mode: P(k) W²(k) for every k of the padded box,
    the linear-theory multipliers L_a(k) = i f H0 k̃_a / k² (k̃: Nyquist component 0) and
    φ(k)/δ(k) = −(3/2) Ωm H0² / k²."""
    k = full_kgrid(m, Lp)
    k2 = np.sum(k ** 2, axis=1)
    kt = k.copy()
    kt[np.isclose(np.abs(k), np.pi * m / Lp)] = 0.0  # Nyquist components
    pw = np.zeros(len(k))
    pos = k2 > 0
    pw[pos] = cosmo.power_spectrum(np.sqrt(k2[pos])) * np.exp(-k2[pos] * smoothing ** 2)
    inv = np.where(pos, 1.0 / np.where(pos, k2, 1.0), 0.0)
    La = 1j * cosmo.growth_rate * H0 * kt * inv[:, None]  # (modes, 3)
    Lphi = -cosmo.poisson_factor * inv
    return k, pw, La, Lphi

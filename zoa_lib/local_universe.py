"""A constrained local universe and the search for the Great Attractor.

The paper applies its networks to Cosmicflows-4 and finds the Great Attractor (GA) at
(l, b) = (308.4° ± 2.4, 29.0° ± 1.9), cz = 4960 ± 404 km/s in 64 % of 1,000 HAMLET
realizations. The build has no CF4 data, so this module makes a **mock** local universe
whose structures sit at their literature positions (``data/known_structures.csv``) and
runs the same analysis on it:

1. **Structures** (:func:`known_structures`): Galactic (l, b) and cz from the table; the
   distance is d = cz / H0 in Mpc/h (H0 = 100 km/s per Mpc/h, so d [Mpc/h] = cz / 100,
   no peculiar-velocity correction), and the supergalactic position comes from astropy
   (:func:`zoa_lib.survey.galactic_to_sg`).

2. **Constrained realization** (Hoffman & Ribak 1991; :func:`constrained_field`). The
   constraints are linear functionals of the linear density contrast at z = 0 smoothed
   with a Gaussian of σ = R_s = ``local_universe.constraint_smoothing`` Mpc/h, at points
   x_i: the smoothed value and, for a *peak* constraint (van de Weygaert & Bertschinger
   1996), its gradient, set to 0, and its Hessian, set to its mean given the value
   (−σ₁²/(3σ_s²) c δ_ab in the continuum; computed exactly on the mesh), so that the
   structure is a maximum (c > 0) or a minimum (c < 0) of typical shape there::

       c_n[δ] = ∂^α (W_s ∗ δ)(x_i) = (1/M³) Σ_k (ik)^α W_s(k) δ_k e^{i k·x_i},
       W_s(k) = e^{−k²R_s²/2},  |α| = 0 (value), 1 (gradient), 2 (Hessian)

   the Fourier (band-limited) interpolation of the smoothed mesh field, so x_i need not
   be a mesh node; at a node the value is the FFT-smoothed field there. The sum runs over
   the modes without a Nyquist component (W_s is set to 0 on the Nyquist planes, where
   e^{i k·x} is not defined for a real field off the nodes; their weight is
   e^{−(π R_s/Δ)²/2} ≤ 3·10⁻⁹ for R_s ≥ 2Δ, Δ = L/M, and 0.007 at the ci profile's
   R_s = Δ = 5 Mpc/h). With P_k = ⟨|δ_k|²⟩/M³ the variance of each mode of
   :func:`zoa_lib.simulation.gaussian_field` (:func:`zoa_lib.simulation.mode_variance`)
   and ξ_WW(s) = (1/M³) Σ_k P_k W_s² e^{i k·s}, exactly for the discrete field::

       ξ_n(x) = ⟨δ(x) c_n⟩ = (1/M³) Σ_k P_k W_s(k) (−ik)^α_n e^{i k·(x − x_n)}
       C_nn'  = ⟨c_n c_n'⟩ = (−1)^|α_n'| ∂^(α_n + α_n') ξ_WW(x_n − x_n')

   A constrained realization is an unconstrained one, δ̃ (same P(k)), plus the
   correction that moves its constraint values c̃ onto the imposed ones c::

       δ = δ̃ + Σ_nn' ξ_n(x) (C⁻¹)_nn' (c_n' − c̃_n')

   Its ensemble mean is the mean field ⟨δ | c⟩ = Σ ξ_n (C⁻¹)_nn' c_n' (:func:`mean_field`),
   its covariance that of δ̃ minus Σ ξ_n (C⁻¹)_nn' ξ_n': far from the constraints it is an
   ordinary Gaussian field of spectrum P(k). Modes where W_s < e^{−40} are left out of
   the sums (:data:`TAIL`; a relative change below 10⁻¹⁷).

   **Heights** (a choice of this module, not of the paper): attractors get c = ν σ_s
   with ν = 3 for the GA (the strongest) and ν = 2 for the other clusters, voids
   ν = −1.5, where σ_s = √C_00 is the rms of the smoothed linear field (:data:`HEIGHTS`).

3. **Box and cube** (:func:`local_universe_box`, :func:`local_universe_cube`). The
   observer sits at the centre of a periodic parent box of side
   ``simulation.parent_size`` (SG position s is box point s + L/2). The literature
   positions are today's (Eulerian), the constraints act on the initial (Lagrangian)
   field: they are placed at q with q + Ψ(q) = x by a few reverse-Zel'dovich iterations
   (Doumler et al. 2013), Ψ the displacement of the constrained field smoothed on R_s —
   without this the structures land ≈ 10 Mpc/h (the rms displacement) away from their
   positions. The constrained linear field is evolved like the training mocks
   (:func:`zoa_lib.simulation.evolve_particles`: 2LPT, or PM from the 2LPT start) and its cube is cut with the
   identity rotation: **the parent axes are the supergalactic axes here** (a mock cube
   has a random rotation; this one must not, or the structures would leave their sky
   positions). Random numbers: stream ``local_universe``, indices (0, realization).

4. **Surveys** (:func:`survey_realizations`): CF4-like catalogs of the cube drawn with
   the profile's survey configuration (ZOA |b| < ``survey.zoa_b`` empty), independent
   galaxies and distance errors per realization, each gridded like the mocks.

5. **Great Attractor** (:func:`locate_attractor`, :func:`locate_convergence`,
   :func:`attractor_statistics`): the highest peak of the (predicted) density — or of
   the velocity convergence −∇·v — within ``local_universe.ga_match_radius`` Mpc/h of the
   literature GA, refined to sub-voxel precision, converted to (l, b) and cz = H0 d; then
   its mean and scatter over the realizations and the fraction of realizations that find
   it (the paper's 64 % for CF4).

6. **CF4 file format** (:func:`write_local_universe_cf4`): a survey written in EDD's CSV
   layout so that the CF4 chapter runs on it; its header says it is a mock, not CF4.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft as sfft

from .cosmology import H0, from_profile
from .errors import ZoaError
from .fourier import (axis_wavenumbers, fft_workers, gaussian_kernel_k, half_spectrum_weights,
                      inverse_k_squared, nyquist_mask, zero_nyquist)
from .grid import check_cube
from .methods import LABELS as METHOD_LABELS
from .rng import generator
from .simulation import ParentBox

#: Constraint height ν (in units of σ_s) by structure name or kind; the GA is the strongest.
HEIGHTS = {"Great Attractor": 3.0, "attractor": 2.0, "void": -1.5}
#: Name of the Great Attractor's row in the structure table.
GREAT_ATTRACTOR = "Great Attractor"
KINDS = ("attractor", "void")
#: Damping ω of the reverse-Zel'dovich iteration q ← q + ω (x − Ψ(q) − q).
RZA_DAMPING = 0.7


class LocalUniverseError(ZoaError, ValueError):
    """Bad structure table, constraint set or field given to the GA finder."""


# --------------------------------------------------------------------------- structures
@dataclass(frozen=True)
class Structure:
    """A known structure: name, Galactic l, b (deg), cz (km/s), kind (attractor | void),
    reference, and its supergalactic position ``sg`` = (SGX, SGY, SGZ) in Mpc/h at
    d = cz / H0 (observer at the origin)."""

    name: str
    l: float
    b: float
    cz: float
    kind: str
    reference: str
    sg: tuple[float, float, float]

    @property
    def distance(self) -> float:
        """d = cz / H0 in Mpc/h."""
        return self.cz / H0


def _default_table() -> Path:
    from .book import KNOWN_STRUCTURES

    return Path(KNOWN_STRUCTURES)


def known_structures(path=None) -> list[Structure]:
    """Read the structure table (default: the shipped ``data/known_structures.csv``).

    CSV with a header ``name,l,b,cz,kind,reference`` ('#' lines are comments); l, b in
    degrees, cz in km/s (> 0), kind ``attractor`` or ``void``. SG positions via astropy.
    A bad table raises :class:`LocalUniverseError` naming the file and line."""
    from .survey import galactic_to_sg

    path = Path(path) if path is not None else _default_table()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LocalUniverseError(f"{path}: structure table not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LocalUniverseError(f"{path}: cannot read the structure table ({e})") from None
    lines = [(n, s) for n, s in enumerate(text.splitlines(), start=1) if s.strip() and not s.lstrip().startswith("#")]
    if not lines:
        raise LocalUniverseError(f"{path}: no header and no structures")
    rows = list(csv.reader(s for _, s in lines))
    header = [h.strip() for h in rows[0]]
    missing = [c for c in ("name", "l", "b", "cz", "kind") if c not in header]
    if missing:
        raise LocalUniverseError(f"{path}: line {lines[0][0]}: missing column(s) {', '.join(missing)} "
                                 f"(header: {', '.join(header)})")
    col = {h: i for i, h in enumerate(header)}
    parsed = []
    for (lineno, _), row in zip(lines[1:], rows[1:]):
        where = f"{path}: line {lineno}"
        if len(row) < len(header):
            raise LocalUniverseError(f"{where}: {len(row)} fields, the header has {len(header)}")
        rec = {h: row[i].strip() for h, i in col.items()}
        try:
            l, b, cz = float(rec["l"]), float(rec["b"]), float(rec["cz"])
        except ValueError:
            raise LocalUniverseError(f"{where}: l, b, cz must be numbers, got "
                                     f"{rec['l']!r}, {rec['b']!r}, {rec['cz']!r}") from None
        if not (np.isfinite([l, b, cz]).all() and -90.0 <= b <= 90.0 and cz > 0):
            raise LocalUniverseError(f"{where}: need finite l, -90 <= b <= 90 and cz > 0 km/s, got "
                                     f"l={l}, b={b}, cz={cz}")
        if rec["kind"] not in KINDS:
            raise LocalUniverseError(f"{where}: kind must be attractor or void, got {rec['kind']!r}")
        parsed.append((rec["name"], l % 360.0, b, cz, rec["kind"], rec.get("reference", "")))
    if not parsed:
        raise LocalUniverseError(f"{path}: no structures")
    names = [p[0] for p in parsed]
    if len(set(names)) != len(names):
        raise LocalUniverseError(f"{path}: duplicate structure names")
    l, b, cz = (np.array([p[i] for p in parsed]) for i in (1, 2, 3))
    x, y, z = galactic_to_sg(l, b, cz / H0)
    return [Structure(p[0], p[1], p[2], p[3], p[4], p[5], (float(x[i]), float(y[i]), float(z[i])))
            for i, p in enumerate(parsed)]


def great_attractor(structures=None) -> Structure:
    """The Great Attractor's entry of ``structures`` (default: the shipped table)."""
    structures = known_structures() if structures is None else structures
    for s in structures:
        if s.name == GREAT_ATTRACTOR:
            return s
    raise LocalUniverseError(f"no {GREAT_ATTRACTOR!r} row in the structure table")


def constraint_heights(structures, sigma_s: float) -> np.ndarray:
    """Smoothed linear δ imposed at each structure: ν σ_s with ν from :data:`HEIGHTS`
    (by name for the GA, else by kind)."""
    return np.array([sigma_s * HEIGHTS[s.name if s.name in HEIGHTS else s.kind] for s in structures])


# --------------------------------------------------------------------------- Hoffman-Ribak
#: Derivative multi-indices (∂x, ∂y, ∂z orders) of the constraints at one point: the
#: smoothed value, the three components of its gradient, the six of its Hessian.
VALUE = (0, 0, 0)
GRADIENT = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
HESSIAN = ((2, 0, 0), (0, 2, 0), (0, 0, 2), (1, 1, 0), (1, 0, 1), (0, 1, 1))
#: What is imposed at each point: ``value`` the smoothed δ only; ``extremum`` also a zero
#: gradient; ``peak`` also the Hessian, at its mean given the value (module docstring).
CONSTRAINT_KINDS = {"value": (VALUE,), "extremum": (VALUE,) + GRADIENT, "peak": (VALUE,) + GRADIENT + HESSIAN}


def constraint_kernel(mesh: int, size: float, smoothing: float) -> np.ndarray:
    """W_s(k) = exp(−k²R_s²/2) on the rfftn grid with the Nyquist planes set to 0
    (module docstring, item 2)."""
    if not smoothing > 0:
        raise LocalUniverseError(f"constraint smoothing must be > 0 Mpc/h, got {smoothing}")
    return zero_nyquist(gaussian_kernel_k(mesh, size, smoothing))


#: Modes with W_s(k) < e^{−TAIL} (≈ 4·10⁻¹⁸) are left out of the constraint sums.
TAIL = 40.0


def _band(mesh: int, size: float, kmax: float | None):
    """Indices and wavenumbers of the rfftn axes with |k_a| ≤ kmax (all when None)."""
    kf, kh = axis_wavenumbers(mesh, size), axis_wavenumbers(mesh, size, half=True)
    if kmax is None:
        return np.arange(mesh), kf, np.arange(mesh // 2 + 1), kh
    i = np.flatnonzero(np.abs(kf) <= kmax)
    j = np.flatnonzero(kh <= kmax)
    return i, kf[i], j, kh[j]


def fourier_derivatives(field_k: np.ndarray, points, size: float, alphas=(VALUE,),
                        kmax: float | None = None) -> np.ndarray:
    """Band-limited interpolation of a real mesh³ field and its derivatives at any points.

    For the rfftn ``field_k`` = F of a real field on a periodic box of side ``size`` Mpc/h,
    returns V[p, n] = ∂^α T(x_p), α = ``alphas[n]`` (orders along SGX/x, y, z), with
    T(x) = (1/M³) Σ_k F_k e^{i k·x} summed over all modes (F Hermitian; give F without
    Nyquist modes for an interpolation that is exact at the nodes and defined between
    them): ∂^α multiplies F_k by (i k)^α. Points (p, 3) in Mpc/h, box coordinates.
    ``kmax`` (h/Mpc): sum only the modes with every |k_a| ≤ kmax (F must vanish beyond).
    The mode sum is factorised axis by axis (z, then y, then x) and done with numpy's own
    loops (no BLAS), so the result does not depend on thread counts."""
    F = np.asarray(field_k)
    mesh = F.shape[0]
    if F.ndim != 3 or F.shape != (mesh, mesh, mesh // 2 + 1):
        raise LocalUniverseError(f"fourier_derivatives: expected an rfftn array (M, M, M//2+1), got {F.shape}")
    pts = np.atleast_2d(np.asarray(points, float))
    i, kf, j, kh = _band(mesh, size, kmax)
    if kmax is not None:
        F = F[np.ix_(i, i, j)]
    hz = half_spectrum_weights(mesh)[j]  # the rfft half holds one of each pair ±k
    ez = np.exp(1j * np.outer(kh, pts[:, 2])) * hz[:, None]   # (Mh, p)
    ey = np.exp(1j * np.outer(kf, pts[:, 1]))                 # (M, p)
    ex = np.exp(1j * np.outer(kf, pts[:, 0]))
    tz, ty = {}, {}
    out = np.empty((len(pts), len(alphas)))
    for n, (ax, ay, az) in enumerate(alphas):
        if az not in tz:
            tz[az] = np.einsum("ijk,kp->ijp", F, ez * ((1j * kh) ** az)[:, None])
        if (az, ay) not in ty:
            ty[az, ay] = np.einsum("ijp,jp->ip", tz[az], ey * ((1j * kf) ** ay)[:, None])
        out[:, n] = np.einsum("ip,ip->p", ty[az, ay], ex * ((1j * kf) ** ax)[:, None]).real / mesh ** 3
    return out


@dataclass
class ConstraintSystem:
    """Linear constraints c_n = ∂^α_n (W_s ∗ δ)(x_n) for a cosmology, box and smoothing.

    positions : (m, 3) constraint points (box coordinates, Mpc/h); alphas : derivative
    multi-indices imposed at every point (:data:`CONSTRAINT_KINDS`); constraint
    n = i·len(alphas) + a is (point i, alphas[a]). ``pw`` = P_k W_s(k) on the rfftn grid,
    ``C`` the (n, n) covariance ⟨c_n c_n'⟩, σ_s the rms of the smoothed field; sums run
    over |k_a| ≤ ``kmax`` = √(2·TAIL)/R_s, beyond which W_s < e^{−TAIL}."""

    size: float
    mesh: int
    smoothing: float
    positions: np.ndarray
    alphas: tuple
    pw: np.ndarray
    kernel: np.ndarray
    C: np.ndarray
    sigma_s: float
    kmax: float | None = None

    def measure(self, delta: np.ndarray) -> np.ndarray:
        """c_n[δ] of a mesh³ array, shape (m, len(alphas))."""
        dk = sfft.rfftn(np.asarray(delta, np.float64), workers=fft_workers())
        dk *= self.kernel
        return fourier_derivatives(dk, self.positions, self.size, self.alphas, self.kmax)

    def correction(self, coef) -> np.ndarray:
        """Σ_n a_n ξ_n(x) on the mesh (float64), ξ_n = ⟨δ(x) c_n⟩, for coefficients
        ``coef`` (m·len(alphas),); in Fourier space P W Σ_n a_n (−ik)^α_n e^{−ik·x_n}."""
        mesh = self.mesh
        i, kf, j, kh = _band(mesh, self.size, self.kmax)
        a = np.asarray(coef, float).reshape(len(self.positions), len(self.alphas))
        shape = (len(i), len(i), len(j))
        acc = np.zeros(shape, np.complex128)
        kvec = (kf[:, None, None], kf[None, :, None], kh[None, None, :])
        for x, ai in zip(self.positions, a):
            poly = np.zeros(shape, np.complex128)
            for alpha, an in zip(self.alphas, ai):
                term = an
                for k, o in zip(kvec, alpha):
                    if o:
                        term = term * (-1j * k) ** o
                poly += term
            ex, ey, ez = (np.exp(-1j * kf * x[0]), np.exp(-1j * kf * x[1]), np.exp(-1j * kh * x[2]))
            poly *= ex[:, None, None]
            poly *= (ey[:, None] * ez[None, :])[None]
            acc += poly
            del poly
        if len(i) == mesh and len(j) == mesh // 2 + 1:
            full = acc
        else:
            full = np.zeros((mesh, mesh, mesh // 2 + 1), np.complex128)
            full[np.ix_(i, i, j)] = acc
            del acc
        full *= self.pw
        return sfft.irfftn(full, s=(mesh,) * 3, workers=fft_workers())


def constraint_system(cosmo, size: float, mesh: int, positions, smoothing: float,
                      kind: str = "peak") -> ConstraintSystem:
    """Build the covariance of constraints at ``positions`` ((m, 3) Mpc/h, box
    coordinates, any point of the periodic box): the smoothed value at each point and,
    its derivatives as ``kind`` says (:data:`CONSTRAINT_KINDS`). With
    ξ_WW(s) = (1/M³) Σ_k P_k W_s² e^{ik·s}: C_nn' = (−1)^|α_n'| ∂^(α_n + α_n') ξ_WW(x_n − x_n')."""
    from .simulation import mode_variance

    size, mesh = float(size), int(mesh)
    pos = np.atleast_2d(np.asarray(positions, float))
    if pos.ndim != 2 or pos.shape[1] != 3 or len(pos) == 0 or not np.isfinite(pos).all():
        raise LocalUniverseError(f"constraint positions must be a finite (m, 3) array, got shape {pos.shape}")
    pos = np.mod(pos, size)
    if kind not in CONSTRAINT_KINDS:
        raise LocalUniverseError(f"constraint kind must be one of {', '.join(CONSTRAINT_KINDS)}, got {kind!r}")
    alphas = CONSTRAINT_KINDS[kind]
    W = constraint_kernel(mesh, size, float(smoothing))
    pw = mode_variance(cosmo, size, mesh)
    pw *= W
    pww = pw * W
    m, na = len(pos), len(alphas)
    gammas = sorted({tuple(a + b for a, b in zip(al, be)) for al in alphas for be in alphas})
    pairs = [(i, j) for i in range(m) for j in range(i, m)]
    seps = np.array([pos[i] - pos[j] for i, j in pairs])
    kmax = float(np.sqrt(2.0 * TAIL) / smoothing)
    # ∂^γ ξ_WW at x_i − x_j, i <= j (W² < e^{−TAIL} beyond √TAIL / R_s)
    D = fourier_derivatives(pww, seps, size, gammas, float(np.sqrt(TAIL) / smoothing))
    del pww
    g_index = {g: n for n, g in enumerate(gammas)}
    C = np.empty((m * na, m * na))
    for (i, j), d in zip(pairs, D):
        for a, al in enumerate(alphas):
            for b, be in enumerate(alphas):
                g = tuple(x + y for x, y in zip(al, be))
                v = (-1) ** sum(be) * d[g_index[g]]
                C[i * na + a, j * na + b] = v
                C[j * na + b, i * na + a] = v  # a covariance is symmetric
    sigma_s = float(np.sqrt(C[0, 0]))
    cond = np.linalg.cond(C / np.sqrt(np.outer(np.diag(C), np.diag(C))))
    if not np.isfinite(cond) or cond > 1e10:
        raise LocalUniverseError(f"constraints are (nearly) degenerate (cond = {cond:.3g}): two constraint "
                                 f"points much closer than the smoothing {smoothing} Mpc/h?")
    return ConstraintSystem(size, mesh, float(smoothing), pos, alphas, pw, W, C, sigma_s, kmax)


@dataclass
class ConstrainedField:
    """A constrained realization and its bookkeeping.

    delta : (M, M, M) float32 linear δ at z = 0 (node (i, j, k) at (i, j, k) L/M);
    positions : (m, 3) constraint points, box coordinates (Mpc/h);
    targets : (m,) imposed smoothed δ; achieved : (m,) smoothed δ of ``delta`` there;
    gradient : (m, 3) gradient of the smoothed δ there (per Mpc/h; imposed 0 unless
    ``kind`` is ``value``); hessian : (m, 6) its second derivatives ∂xx, ∂yy, ∂zz, ∂xy,
    ∂xz, ∂yz (per (Mpc/h)²); unconstrained : (m,) smoothed δ of the random field before
    the correction; sigma_s : rms of the smoothed linear field; smoothing : R_s (Mpc/h);
    kind : the constraint kind; displacement : (m, 3) Zel'dovich displacement of the
    smoothed field at the points (Mpc/h; filled by :func:`local_universe_box`)."""

    delta: np.ndarray
    positions: np.ndarray
    targets: np.ndarray
    achieved: np.ndarray
    gradient: np.ndarray
    hessian: np.ndarray
    unconstrained: np.ndarray
    sigma_s: float
    smoothing: float
    kind: str
    displacement: np.ndarray | None = None


def _values(values, m: int) -> np.ndarray:
    v = np.asarray(values, float).reshape(-1)
    if v.shape != (m,) or not np.isfinite(v).all():
        raise LocalUniverseError(f"constraint values must be {m} finite numbers, got {np.asarray(values).tolist()}")
    return v


def _targets(sysm: ConstraintSystem, values: np.ndarray) -> np.ndarray:
    """(m, len(alphas)) imposed constraint values: the heights, a zero gradient, and the
    Hessian at its mean given the height, H_ab = c ⟨∂_a∂_b δ_s δ_s⟩ / σ_s² (in the
    continuum −σ₁²/(3σ_s²) c δ_ab: a maximum for c > 0, a minimum for c < 0)."""
    na = len(sysm.alphas)
    target = np.zeros((len(sysm.positions), na))
    target[:, 0] = values
    for a, alpha in enumerate(sysm.alphas):
        if sum(alpha) == 2:
            target[:, a] = values * sysm.C[a, 0] / sysm.C[0, 0]
    return target


def _kind(alphas) -> str:
    return next(k for k, v in CONSTRAINT_KINDS.items() if v == tuple(alphas))


def _constrain(sysm: ConstraintSystem, field: np.ndarray, values: np.ndarray) -> ConstrainedField:
    """δ = δ̃ + Σ ξ_n C⁻¹ (c − c̃) for the random field δ̃ = ``field`` (float64, not modified)."""
    c0 = sysm.measure(field)
    coef = np.linalg.solve(sysm.C, (_targets(sysm, values) - c0).reshape(-1))
    delta = (field + sysm.correction(coef)).astype(np.float32)
    got = sysm.measure(delta)
    m, na = got.shape
    grad = got[:, 1:4] if na > 1 else np.full((m, 3), np.nan)
    hess = got[:, 4:10] if na > 4 else np.full((m, 6), np.nan)
    return ConstrainedField(delta, sysm.positions.copy(), np.asarray(values, float), got[:, 0], grad, hess,
                            c0[:, 0], sysm.sigma_s, sysm.smoothing, _kind(sysm.alphas))


def constrained_field(cosmo, size: float, mesh: int, positions, values, rng: np.random.Generator,
                      smoothing: float, kind: str = "peak", system: ConstraintSystem | None = None) -> ConstrainedField:
    """Hoffman–Ribak constrained realization on a periodic box of side ``size`` Mpc/h
    (module docstring, item 2): a Gaussian field of spectrum ``cosmo.power_spectrum``
    (:func:`zoa_lib.simulation.gaussian_field` with ``rng``) whose linear δ smoothed with a
    Gaussian of ``smoothing`` Mpc/h takes the ``values`` (m,) at ``positions`` (m, 3, box
    coordinates, Mpc/h); with ``kind`` ``extremum`` also a zero gradient there, with
    ``peak`` (default) also the Hessian of a typical peak of that height (:func:`_targets`),
    so that each point is a maximum (c > 0) or minimum (c < 0) of the smoothed field.
    ``system`` (from :func:`constraint_system`) may be reused across realizations with the
    same positions, smoothing and kind."""
    from .simulation import gaussian_field

    sysm = system or constraint_system(cosmo, size, mesh, positions, smoothing, kind)
    vals = _values(values, len(sysm.positions))
    field = gaussian_field(cosmo, sysm.size, sysm.mesh, rng).astype(np.float64)
    return _constrain(sysm, field, vals)


def mean_field(cosmo, size: float, mesh: int, positions, values, smoothing: float, kind: str = "peak") -> np.ndarray:
    """The Hoffman–Ribak mean field ⟨δ | c⟩ = Σ_nn' ξ_n(x) (C⁻¹)_nn' c_n' (mesh³ float64):
    the ensemble mean of :func:`constrained_field` (the Wiener filter of the constraints)."""
    sysm = constraint_system(cosmo, size, mesh, positions, smoothing, kind)
    target = _targets(sysm, _values(values, len(sysm.positions)))
    return sysm.correction(np.linalg.solve(sysm.C, target.reshape(-1)))


def zeldovich_displacement(delta, size: float, points, smoothing: float = 0.0) -> np.ndarray:
    """Ψ(x) = −∇φ⁽¹⁾, ∇²φ⁽¹⁾ = δ (Zel'dovich, Mpc/h) of a linear field at ``points``
    ((p, 3) box coordinates), from the field smoothed with a Gaussian of ``smoothing``
    Mpc/h (Nyquist modes dropped): Ψ(k) = i k δ(k) / k², as in
    :mod:`zoa_lib.simulation`. Shape (p, 3)."""
    delta = np.asarray(delta, np.float64)
    mesh = delta.shape[0]
    dk = sfft.rfftn(delta, workers=fft_workers())
    dk *= inverse_k_squared(mesh, size)
    dk *= constraint_kernel(mesh, size, smoothing) if smoothing > 0 else nyquist_mask(mesh)
    # ∂_a of (δ/k²) in Fourier space is i k_a δ/k² = Ψ_a
    kmax = float(np.sqrt(2.0 * TAIL) / smoothing) if smoothing > 0 else None
    return fourier_derivatives(dk, points, size, GRADIENT, kmax)


# --------------------------------------------------------------------------- box and cube
@dataclass(eq=False)
class LocalUniverseBox(ParentBox):
    """A :class:`zoa_lib.simulation.ParentBox` made from a constrained realization, observer
    at the box centre, parent axes = SG axes. ``constraints``: the
    :class:`ConstrainedField` (without its ``delta``, which is ``delta_lin``);
    ``structures``: the constrained structures; ``realization``: its index."""

    constraints: ConstrainedField | None = None
    structures: tuple = ()
    realization: int = 0


def local_universe_box(profile, realization: int = 0, structures=None, lagrangian_iterations: int = 5,
                       workers: int | None = None) -> LocalUniverseBox:
    """The constrained parent box of a profile (module docstring, items 2–3).

    Linear field: :func:`constrained_field` on the profile's parent box
    (``simulation.parent_size``, ``parent_mesh``) with peak constraints (value, zero
    gradient, typical Hessian) of heights :func:`constraint_heights` and smoothing
    ``local_universe.constraint_smoothing``, for the ``structures`` (default: the shipped
    table); the random part from the stream ``("local_universe", 0, realization)``; then
    LPT of order ``simulation.lpt_order`` as for the training mocks.

    Placement: the structures' literature positions are *Eulerian* (today's). The
    constraints are put at Lagrangian points q with q + Ψ(q) = x (reverse Zel'dovich,
    Doumler et al. 2013): starting from q = x, ``lagrangian_iterations`` times
    q ← q + ω (x − Ψ(q) − q), ω = :data:`RZA_DAMPING`, Ψ the Zel'dovich displacement of
    the constrained field smoothed on R_s (:func:`zeldovich_displacement`), with the same
    random field each time (0 iterations: constraints at x). Moving a constraint changes
    the field around it, hence the damping; after 5 iterations |q + Ψ(q) − x| < 1 Mpc/h
    at the ci and laptop profiles (``constraints.displacement`` holds Ψ(q)). SG position s sits at box point s + L/2.
    ``box_index`` = −1 − realization (never a mock box)."""
    from .simulation import evolve_particles, gaussian_field

    sim = profile.simulation
    cosmo = from_profile(profile)
    structures = known_structures() if structures is None else list(structures)
    size, mesh = float(sim.parent_size), int(sim.parent_mesh)
    if int(realization) < 0 or int(lagrangian_iterations) < 0:
        raise LocalUniverseError(f"need realization >= 0 and lagrangian_iterations >= 0, got "
                                 f"{realization}, {lagrangian_iterations}")
    R = float(profile.local_universe.constraint_smoothing)
    x = np.array([s.sg for s in structures]) + size / 2.0
    field = gaussian_field(cosmo, size, mesh, generator(profile.seed, "local_universe", 0, int(realization)),
                           workers).astype(np.float64)
    q = x.copy()
    for it in range(int(lagrangian_iterations) + 1):
        sysm = constraint_system(cosmo, size, mesh, q, R)
        cf = _constrain(sysm, field, constraint_heights(structures, sysm.sigma_s))
        del sysm
        psi = zeldovich_displacement(cf.delta, size, cf.positions, R)
        if it < lagrangian_iterations:
            sep = x - psi - q
            q = q + RZA_DAMPING * (sep - size * np.round(sep / size))
    cf.displacement = psi
    del field
    pos, vel = evolve_particles(cf.delta, profile, cosmo, workers)  # the training mocks' engine (2LPT or PM)
    return LocalUniverseBox(size=size, mesh=mesh, positions=pos, velocities=vel, delta_lin=cf.delta,
                            box_index=-1 - int(realization), seed=int(profile.seed), constraints=cf,
                            structures=tuple(structures), realization=int(realization))


def local_universe_cube(profile, box: ParentBox):
    """The observer cube (side ``box.size`` of the profile) at the centre of ``box`` with the
    identity rotation: the parent axes ARE the supergalactic axes of the local universe."""
    from .simulation import cut_cube

    return cut_cube(box, np.full(3, box.size / 2.0), np.eye(3, dtype=np.int8), profile.box.size, index=0)


def _survey_key(cube) -> tuple[int, ...]:
    """Stream indices of the surveys of a cube: (1, realization) for a local-universe cube
    (box_index = −1 − realization), (2, box_index, index) for any other cube."""
    if cube.box_index < 0:
        return (1, -1 - int(cube.box_index))
    return (2, int(cube.box_index), max(int(cube.index), 0))


def survey_realizations(profile, cube, n: int, start: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` CF4-like surveys of the same cube, numbered ``start`` … ``start + n − 1``:
    ``[(catalog, inputs (N, N, N, 2) float32)]``. Each draws its galaxies, distance errors
    and nonlinear scatter with :func:`zoa_lib.survey.draw_galaxies` and the profile's
    survey configuration (ZOA masked as in the training mocks) from the stream
    ``("local_universe", *key, i)`` (:func:`_survey_key`), and is gridded with
    :func:`zoa_lib.survey.grid_catalog` like the mocks. ``catalog["sample"]`` = i."""
    from .survey import draw_galaxies, grid_catalog

    if int(n) < 0 or int(start) < 0:
        raise LocalUniverseError(f"survey_realizations: need n >= 0 and start >= 0, got n={n}, start={start}")
    key = _survey_key(cube)
    out = []
    for i in range(int(start), int(start) + int(n)):
        cat = draw_galaxies(cube, profile.survey, generator(profile.seed, "local_universe", *key, i),
                            profile.box.size, sample=i)
        inp = grid_catalog(cat, profile.box.size, profile.box.grid, position=profile.survey.grid_position,
                           error_weighting=profile.survey.error_weighting)
        out.append((cat, inp))
    return out


# --------------------------------------------------------------------------- Great Attractor
def _refine(field: np.ndarray, idx, axis: int) -> float:
    """Sub-voxel offset (voxels, in [−½, ½]) of a peak along ``axis``: the vertex of the
    parabola through the peak and its two neighbours, fitted to ln f when all three are
    positive (exact for a Gaussian peak), else to f; 0 at the array edge."""
    n = field.shape[axis]
    i = idx[axis]
    if i == 0 or i == n - 1:
        return 0.0
    lo, hi = list(idx), list(idx)
    lo[axis] -= 1
    hi[axis] += 1
    f = np.array([field[tuple(lo)], field[tuple(idx)], field[tuple(hi)]], float)
    if np.all(f > 0):
        f = np.log(f)
    curv = f[0] - 2.0 * f[1] + f[2]
    if not curv < 0:
        return 0.0
    return float(np.clip(0.5 * (f[0] - f[2]) / curv, -0.5, 0.5))


def locate_attractor(delta, size: float, guess_sg, search_radius: float, smoothing: float = 0.0) -> dict:
    """The highest peak of a cube field within ``search_radius`` Mpc/h of ``guess_sg``.

    delta : (N, N, N) field on the cube grid (SG axes, observer at the centre, voxel i at
    −L/2 + (i + ½) L/N), e.g. a predicted density contrast; ``smoothing`` > 0 first
    convolves it with a Gaussian of that σ (Mpc/h). The peak voxel is refined by a
    parabola along each axis (:func:`_refine`). It counts as ``found`` when it is a local
    maximum of its 3×3×3 neighbourhood in the whole field and positive (the highest voxel
    of a slope sits on the sphere's edge with a higher neighbour outside: not found).

    Returns dict: l, b (deg), cz (km/s, = H0 d), distance d (Mpc/h), sg (SGX, SGY, SGZ
    list, Mpc/h), peak_value (field at the peak voxel), voxel (index), found (bool)."""
    from .fields import gaussian_smooth, voxel_centres
    from .survey import sg_to_galactic

    a = check_cube(delta, "locate_attractor: delta", error=LocalUniverseError)
    if not search_radius > 0:
        raise LocalUniverseError(f"locate_attractor: search_radius must be > 0 Mpc/h, got {search_radius}")
    a = np.asarray(a, np.float64)
    if smoothing and smoothing > 0:
        a = gaussian_smooth(a, size, smoothing)
    n = a.shape[0]
    h = size / n
    x = voxel_centres(size, n)
    g = np.asarray(guess_sg, float).reshape(3)
    dist = np.sqrt((x[:, None, None] - g[0]) ** 2 + (x[None, :, None] - g[1]) ** 2 + (x[None, None, :] - g[2]) ** 2)
    inside = dist <= search_radius
    if not inside.any():
        raise LocalUniverseError(f"locate_attractor: no voxel within {search_radius} Mpc/h of {g.tolist()}")
    masked = np.where(inside & np.isfinite(a), a, -np.inf)
    idx = np.unravel_index(int(np.argmax(masked)), a.shape)
    peak = float(a[idx])
    sl = tuple(slice(max(i - 1, 0), min(i + 2, n)) for i in idx)
    local_max = np.isfinite(peak) and peak >= np.nanmax(a[sl])
    sg = np.array([x[idx[ax]] + h * _refine(a, idx, ax) for ax in range(3)])
    l, b, d = sg_to_galactic(sg[0:1], sg[1:2], sg[2:3])
    return {"l": float(l[0]) % 360.0, "b": float(b[0]), "cz": float(H0 * d[0]), "distance": float(d[0]),
            "sg": sg.tolist(), "peak_value": peak, "voxel": [int(i) for i in idx],
            "found": bool(local_max and peak > 0)}


def convergence(velocity, size: float) -> np.ndarray:
    """−∇·v (km/s per Mpc/h) of an (N, N, N, 3) cube velocity field (finite differences,
    :func:`zoa_lib.velocity.divergence`); in linear theory −∇·v = f H0 δ."""
    from .velocity import divergence

    return -divergence(velocity, size, method="finite_difference")


def locate_convergence(velocity, size: float, guess_sg, search_radius: float, smoothing: float = 0.0) -> dict:
    """The GA as the point of strongest flow convergence (minimum ∇·v) within
    ``search_radius`` of ``guess_sg``: :func:`locate_attractor` on :func:`convergence`;
    ``peak_value`` is −∇·v in km/s per Mpc/h."""
    return locate_attractor(convergence(velocity, size), size, guess_sg, search_radius, smoothing)


def attractor_statistics(results) -> dict:
    """Mean and scatter of (l, b, cz) over the realizations whose result is ``found``.

    l: circular mean and circular standard deviation √(−2 ln R̄) (deg; R̄ the mean
    resultant length), so that 359° and 1° average to 0°; b, cz: mean and standard
    deviation (ddof = 0). Returns n, n_found, fraction_found and l_mean, l_std, b_mean,
    b_std, cz_mean, cz_std (NaN when nothing was found)."""
    results = list(results)
    found = [r for r in results if r["found"]]
    out = {"n": len(results), "n_found": len(found),
           "fraction_found": len(found) / len(results) if results else float("nan")}
    nan = float("nan")
    out.update(l_mean=nan, l_std=nan, b_mean=nan, b_std=nan, cz_mean=nan, cz_std=nan)
    if not found:
        return out
    lr = np.radians([r["l"] for r in found])
    C, S = float(np.mean(np.cos(lr))), float(np.mean(np.sin(lr)))
    Rbar = min(np.hypot(C, S), 1.0)
    b = np.array([r["b"] for r in found], float)
    cz = np.array([r["cz"] for r in found], float)
    out.update(l_mean=float(np.degrees(np.arctan2(S, C)) % 360.0),
               l_std=float(np.degrees(np.sqrt(max(0.0, -2.0 * np.log(Rbar))))) if Rbar > 0 else float("inf"),
               b_mean=float(b.mean()), b_std=float(b.std()), cz_mean=float(cz.mean()), cz_std=float(cz.std()))
    return out


#: Reconstruction methods of :func:`reconstruct_surveys`, with their names in tables and plots.
SEARCH_METHODS = ("vnet", "wiener", "wiener_cal", "potent")
SEARCH_LABELS = {m: METHOD_LABELS[m] for m in SEARCH_METHODS}


def reconstruct_surveys(profile, inputs, method: str = "vnet", progress: bool = False) -> dict:
    """Density contrast, potential and velocity of every survey realization by one method.

    inputs : (n, N, N, N, 2) gridded surveys (N_gal, V_pec [km/s]), e.g. from
        :func:`survey_realizations`.
    method : ``"vnet"`` — δ from the density network and v = −(2f/3H0Ωm)∇φ from the
        potential network, both trained for ``profile`` (:func:`zoa_lib.training.ensure_trained`
        reuses or trains them), as in the paper; ``"wiener"``, ``"wiener_cal"``, ``"potent"``
        — the classical baselines of :func:`zoa_lib.evaluation.reconstruct` (δ and v of the
        same reconstruction; ``wiener_cal`` needs the profile's training shards).

    The work is :func:`zoa_lib.reconstruct.reconstruct_inputs`'s (the same code as ``zoa
    reconstruct``). Returns {"delta": (n, N, N, N) float32, "phi": (n, N, N, N) float32 in
    (km/s)² with each cube's mean removed, "velocity": (n, N, N, N, 3) float32 km/s}."""
    from .reconstruct import reconstruct_inputs

    x = np.asarray(inputs, np.float32)
    n_grid = profile.box.grid
    if x.ndim != 5 or x.shape[1:] != (n_grid,) * 3 + (2,):
        raise LocalUniverseError(f"reconstruct_surveys: inputs must have shape (n, {n_grid}, {n_grid}, "
                                 f"{n_grid}, 2) for profile {profile.name!r}, got {x.shape}")
    if method not in SEARCH_METHODS:
        raise LocalUniverseError(f"reconstruct_surveys: unknown method {method!r} "
                                 f"(known: {', '.join(SEARCH_METHODS)})")
    return reconstruct_inputs(profile, x, [method], train=True, progress=progress)[method]


def attractor_search(delta, velocity, size: float, guess_sg, search_radius: float,
                     smoothing: float = 0.0) -> dict:
    """Locate the GA in each realization two ways, as a density peak
    (:func:`locate_attractor` on δ) and as the point of strongest flow convergence
    (:func:`locate_convergence` on v), within ``search_radius`` Mpc/h of ``guess_sg``.

    delta : (n, N, N, N); velocity : (n, N, N, N, 3) km/s (either may be None to skip).
    Returns {"density": {...}, "convergence": {...}}, each with ``results`` (one dict of
    :func:`locate_attractor` per realization) and the :func:`attractor_statistics`."""
    results = {}
    for how, stack in (("density", delta), ("convergence", velocity)):
        if stack is not None:
            results[how] = [_locate(how, f, size, guess_sg, search_radius, smoothing) for f in stack]
    return _search_summary(results)


def _locate(how: str, field: np.ndarray, size: float, guess_sg, search_radius: float, smoothing: float) -> dict:
    """:func:`locate_attractor` on δ (``how`` = density) or :func:`locate_convergence` on v."""
    locate = locate_attractor if how == "density" else locate_convergence
    return locate(field, size, guess_sg, search_radius, smoothing)


def _search_summary(results: dict) -> dict:
    """{how: {"results": [...], **attractor_statistics}} from {how: [per-realization results]}."""
    return {how: {"results": res, **attractor_statistics(res)} for how, res in results.items()}


# --------------------------------------------------------------------------- structures in the ZOA
def in_zoa(structures, zoa_b: float) -> np.ndarray:
    """Boolean per structure: |b| < ``zoa_b`` degrees, i.e. hidden by the survey's mask."""
    return np.array([abs(s.b) < float(zoa_b) for s in structures], bool)


def _cube_index(size: float, n: int, sg) -> tuple[int, int, int]:
    """Index of the voxel that holds SG point ``sg`` (Mpc/h) in a cube of side ``size``,
    ``n`` voxels per side, observer at the centre (clipped to the cube)."""
    i = np.floor((np.asarray(sg, float) + size / 2.0) / (size / n)).astype(int)
    return tuple(int(v) for v in np.clip(i, 0, n - 1))


def structure_probe(delta, size: float, structures, search_radius: float, smoothing: float) -> list[dict]:
    """Each known structure as one density field shows it.

    δ (N, N, N) is smoothed with a Gaussian of σ = ``smoothing`` Mpc/h (the constraints'
    R_s, so that the value compares with the imposed ν σ_s), then per structure:

    - ``delta_s``: the smoothed δ in the voxel of the literature position;
    - the extremum nearest it: the highest maximum (attractor) or deepest minimum (void,
      located as the maximum of −δ_s) within ``search_radius`` Mpc/h
      (:func:`locate_attractor`), with ``found`` (a true local extremum of the right sign),
      its position ``sg`` (Mpc/h) and ``extremum`` (δ_s there).

    Returns one dict per structure: name, kind, b, delta_s, found, sg, extremum."""
    from .fields import gaussian_smooth

    d = check_cube(np.asarray(delta, np.float64), "structure_probe: delta", error=LocalUniverseError)
    ds = gaussian_smooth(d, size, float(smoothing)) if smoothing and smoothing > 0 else d
    out = []
    for s in structures:
        sign = 1.0 if s.kind == "attractor" else -1.0
        r = locate_attractor(sign * ds, size, s.sg, search_radius)
        out.append({"name": s.name, "kind": s.kind, "b": s.b, "delta_s": float(ds[_cube_index(size, ds.shape[0], s.sg)]),
                    "found": r["found"], "sg": r["sg"], "extremum": sign * r["peak_value"]})
    return out


def structure_recovery(truth: list[dict], probes: dict, zoa_b: float) -> list[dict]:
    """Rows comparing :func:`structure_probe` of reconstructions with that of the truth.

    truth : structure_probe of the true field (one realization).
    probes : {method: [structure_probe of realization i, ...]}.
    Returns per structure and method {structure, kind, b, in_zoa, method, delta_true,
    delta_mean, delta_std (scatter over realizations, ddof = 0), found_fraction,
    offset_mean (Mpc/h, mean distance of the found extremum from the truth's extremum,
    NaN when none is found)}."""
    rows = []
    for j, t in enumerate(truth):
        for m, per_real in probes.items():
            recs = [p[j] for p in per_real]
            vals = np.array([r["delta_s"] for r in recs], float)
            found = [r for r in recs if r["found"]]
            off = [float(np.linalg.norm(np.subtract(r["sg"], t["sg"]))) for r in found]
            rows.append({"structure": t["name"], "kind": t["kind"], "b": t["b"], "in_zoa": abs(t["b"]) < zoa_b,
                         "method": m, "delta_true": t["delta_s"], "delta_mean": float(vals.mean()),
                         "delta_std": float(vals.std()), "found_fraction": len(found) / len(recs),
                         "offset_mean": float(np.mean(off)) if off else float("nan")})
    return rows


def recovery_summary(rows, method: str, inside_zoa: bool) -> dict:
    """Mean over the structures inside (or outside) the ZOA of one method's
    :func:`structure_recovery` rows: ``ratio`` = mean of δ_s recovered / δ_s true, ``found``
    = mean fraction of realizations with the extremum found, ``n`` structures (NaN when none)."""
    sel = [r for r in rows if r["method"] == method and bool(r["in_zoa"]) == bool(inside_zoa)]
    if not sel:
        return {"ratio": float("nan"), "found": float("nan"), "n": 0}
    return {"ratio": float(np.mean([r["delta_mean"] / r["delta_true"] for r in sel])),
            "found": float(np.mean([r["found_fraction"] for r in sel])), "n": len(sel)}


class SearchAccumulator:
    """The GA search and the structure probes, fed one batch of reconstructions at a time.

    ``acc(out)`` with ``out`` = {method: {"delta": (n, N, N, N), "velocity": (n, N, N, N, 3),
    ...}} (what :class:`zoa_lib.reconstruct.Reconstructor` returns) locates the GA in every
    realization as a density peak and as a flow convergence within ``search_radius`` Mpc/h
    of the GA's literature position (:func:`attractor_search`), probes every structure
    (:func:`structure_probe`, smoothing ``smoothing`` Mpc/h), and keeps realization 0's
    fields (``first``); nothing else is kept, so memory does not grow with the number of
    realizations. ``search`` and ``probes`` give the results so far."""

    def __init__(self, size: float, search_radius: float, smoothing: float, structures=None):
        self.structures = known_structures() if structures is None else list(structures)
        self.guess = great_attractor(self.structures).sg
        self.size, self.radius, self.smoothing = float(size), float(search_radius), float(smoothing)
        self.results: dict = {}
        self.probes: dict = {}
        self.first: dict = {}

    def __call__(self, out: dict) -> None:
        for m, f in out.items():
            res = self.results.setdefault(m, {"density": [], "convergence": []})
            for d, v in zip(f["delta"], f["velocity"]):
                res["density"].append(_locate("density", d, self.size, self.guess, self.radius, 0.0))
                res["convergence"].append(_locate("convergence", v, self.size, self.guess, self.radius, 0.0))
                self.probes.setdefault(m, []).append(
                    structure_probe(d, self.size, self.structures, self.radius, self.smoothing))
            if m not in self.first and len(f["delta"]):
                self.first[m] = {"delta": np.array(f["delta"][0]), "velocity": np.array(f["velocity"][0])}

    @property
    def search(self) -> dict:
        """{method: :func:`attractor_search`-shaped results of every realization so far}."""
        return {m: _search_summary(r) for m, r in self.results.items()}


@dataclass
class RealizationSearch:
    """What :func:`search_realizations` keeps of ``n`` survey realizations: the GA search
    (``search[method]``, as :func:`attractor_search` returns), the structure probes
    (``probes[method]``, one :func:`structure_probe` list per realization), realization 0
    itself (``first[method]`` = {"delta", "velocity"}, ``first_catalog``) and the mean
    number of galaxies per survey. Its size does not grow with the fields of ``n``."""

    methods: list
    n: int
    search: dict
    probes: dict
    first: dict
    first_catalog: np.ndarray
    n_gal_mean: float


def search_realizations(profile, cube, methods, n: int, structures=None, batch: int | None = None,
                        progress: bool = False) -> RealizationSearch:
    """Survey ``cube`` ``n`` times, reconstruct each survey by each method and search it, in
    batches: memory is that of ``batch`` realizations whatever ``n`` (the paper's 1,000).

    Each batch of :func:`survey_realizations` goes through one
    :class:`zoa_lib.reconstruct.Reconstructor` (the code of ``zoa reconstruct``; missing
    V-Nets are trained), then through a :class:`SearchAccumulator` (GA search within
    ``local_universe.ga_match_radius``, structure probes smoothed on
    ``local_universe.constraint_smoothing``). ``batch`` default
    :data:`zoa_lib.reconstruct.BATCH`. The results equal those of the whole stack at once."""
    from tqdm.auto import tqdm

    from .reconstruct import BATCH, Reconstructor

    batch = BATCH if batch is None else int(batch)
    if int(n) < 1 or batch < 1:
        raise LocalUniverseError(f"search_realizations: need n >= 1 and batch >= 1, got n={n}, batch={batch}")
    lu_cfg = profile.local_universe
    acc = SearchAccumulator(profile.box.size, lu_cfg.ga_match_radius, lu_cfg.constraint_smoothing, structures)
    rec_fn = Reconstructor(profile, methods, train=True)
    first_catalog, n_gal = None, []
    bar = tqdm(total=int(n), desc="survey realizations", unit="survey", disable=not progress)
    for start in range(0, int(n), batch):
        surveys = survey_realizations(profile, cube, min(batch, int(n) - start), start)
        n_gal += [len(c) for c, _ in surveys]
        if first_catalog is None:
            first_catalog = surveys[0][0]
        x = np.stack([inp for _, inp in surveys])
        del surveys
        acc(rec_fn(x))
        bar.update(len(x))
    bar.close()
    return RealizationSearch(methods=list(rec_fn.methods), n=int(n), search=acc.search, probes=acc.probes,
                             first=acc.first, first_catalog=first_catalog, n_gal_mean=float(np.mean(n_gal)))


def search_methods(profile, baseline: str | None = "wiener_cal") -> list[str]:
    """``["vnet"]`` plus the classical ``baseline`` (None: none); ``wiener_cal`` falls back to
    the plain ``wiener`` when the profile has no training shards to calibrate it on."""
    from .evaluation import has_training_shards

    if baseline == "wiener_cal" and not has_training_shards(profile):
        baseline = "wiener"
    if baseline is not None and baseline not in SEARCH_METHODS[1:]:
        raise LocalUniverseError(f"baseline: unknown method {baseline!r} (known: {', '.join(SEARCH_METHODS[1:])})")
    return ["vnet"] + ([baseline] if baseline else [])


def attractor_table(search: dict) -> list[dict]:
    """Rows for a table of :func:`attractor_search` results by method: ``{"method": label,
    "located by", "found": "k / n (p %)", "l [deg]", "b [deg]", "cz [km/s]"}`` with
    mean ± scatter over the realizations that found the GA (the mean alone for a single
    realization, "—" when none did). ``search``: {method: attractor_search(...)}."""
    rows = []
    for m, by_how in search.items():
        for how, st in by_how.items():
            def fmt(mean, std, digits):
                if not np.isfinite(mean):
                    return "—"
                return f"{mean:.{digits}f}" if st["n"] == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"
            rows.append({"method": SEARCH_LABELS.get(m, m),
                         "located by": "density peak" if how == "density" else "flow convergence",
                         "found": f"{st['n_found']} / {st['n']} ({st['fraction_found']:.0%})",
                         "l [deg]": fmt(st["l_mean"], st["l_std"], 1), "b [deg]": fmt(st["b_mean"], st["b_std"], 1),
                         "cz [km/s]": fmt(st["cz_mean"], st["cz_std"], 0)})
    return rows


#: Where :func:`write_attractor_results` puts the GA search of the local-universe chapter,
#: relative to the profile's data folder (``profile.data_path``); the landing page's
#: scorecard (:mod:`zoa_lib.scorecard`) reads it.
ATTRACTOR_RESULTS = "local_universe/great-attractor.json"


def attractor_results_path(profile) -> Path:
    """``<data_path>/local_universe/great-attractor.json`` (:data:`ATTRACTOR_RESULTS`)."""
    return profile.data_path / ATTRACTOR_RESULTS


def attractor_summary(search: dict, truth: dict | None = None) -> dict:
    """A JSON-able summary of :func:`attractor_search` results by method.

    ``search``: {method: attractor_search(...)}; ``truth``: the attractor_search of the
    true field of the same universe (one realization), or None. Returns {"labels",
    "methods": {method: {how: {statistics of :func:`attractor_statistics`, "offset_mean",
    "offset_std", "results"}}}, "truth": {how: {l, b, cz, sg, found}}}, where the offsets
    (Mpc/h) are the mean and scatter, over the realizations that find the GA, of the
    3D distance between the found position and the truth's (located the same way);
    NaN without a truth or when nothing was found."""
    truth_pos = {}
    out_truth = {}
    for how, st in (truth or {}).items():
        r = st["results"][0]
        truth_pos[how] = np.asarray(r["sg"], float)
        out_truth[how] = {k: r[k] for k in ("l", "b", "cz", "sg", "found")}
    methods = {}
    for m, by_how in search.items():
        methods[m] = {}
        for how, st in by_how.items():
            stats = {k: v for k, v in st.items() if k != "results"}
            found = [r for r in st["results"] if r["found"]]
            off = (np.array([np.linalg.norm(np.asarray(r["sg"], float) - truth_pos[how]) for r in found])
                   if how in truth_pos else np.array([]))
            stats["offset_mean"] = float(off.mean()) if off.size else float("nan")
            stats["offset_std"] = float(off.std()) if off.size else float("nan")
            stats["results"] = st["results"]
            methods[m][how] = stats
    return {"labels": {m: SEARCH_LABELS.get(m, m) for m in search}, "methods": methods, "truth": out_truth,
            "offset_units": "Mpc/h"}


def write_attractor_results(profile, search: dict, truth: dict | None = None, structures=None) -> Path:
    """Write :func:`attractor_summary` of the GA search, with the literature GA position,
    the profile and provenance, to :func:`attractor_results_path` (atomically); return
    the path."""
    from .io import provenance, write_json_atomic

    ga = great_attractor(structures)
    doc = {"profile": profile.name, "literature": {"name": ga.name, "l": ga.l, "b": ga.b, "cz": ga.cz,
                                                   "sg": list(ga.sg), "reference": ga.reference},
           "search_radius": profile.local_universe.ga_match_radius,
           **attractor_summary(search, truth), "provenance": provenance(profile)}
    return write_json_atomic(attractor_results_path(profile), doc)


# --------------------------------------------------------------------------- CF4 format
MOCK_PREAMBLE = (
    "# MOCK CATALOG - NOT COSMICFLOWS-4 DATA.",
    "# A CF4-like survey of zoa's constrained local-universe mock (zoa_lib.local_universe):",
    "# a Hoffman-Ribak constrained realization with the Great Attractor, Virgo, Coma, ... at their",
    "# literature positions, evolved with 2LPT and surveyed like CF4 (ZOA masked). Written in the",
    "# EDD Cosmicflows CSV layout (zoa_lib.catalogs.write_cf4_csv) so that CF4 readers run on it.",
    "# Vcmb in km/s; DM in mag for H0 = {h0:g} km/s/Mpc; RA, DE (J2000), glon, glat in degrees.",
)


def write_local_universe_cf4(path, catalog, h0_catalog: float = 74.6, note: str | None = None) -> Path:
    """Write a local-universe survey catalog in CF4's EDD CSV layout (atomically) with a
    header saying plainly that it is a MOCK, not Cosmicflows-4 (:data:`MOCK_PREAMBLE`);
    ``note`` adds one more comment line (e.g. profile and realization). DM is for
    ``h0_catalog`` km/s/Mpc, as CF4's (74.6). Returns the path."""
    from .catalogs import write_cf4_csv

    pre = list(MOCK_PREAMBLE)
    if note:
        pre.append("# " + " ".join(str(note).split()).replace("{", "{{").replace("}", "}}"))
    return write_cf4_csv(path, catalog, h0_catalog=h0_catalog, preamble=pre)

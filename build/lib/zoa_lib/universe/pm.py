"""Particle-mesh N-body evolution of a parent box (``simulation.engine: pm``).

The gravity solver (:func:`pm_force`) is jaxpm's (`jaxpm <https://github.com/DifferentiableUniverseInitiative/JaxPM>`_
0.1.6, :func:`jaxpm.pm.pm_forces` as this module called it before its compiled CIC kernels) with the same
operators, run on compiled CPU kernels: cloud-in-cell painting of the particles on the
force mesh (:func:`zoa_lib.universe.cic.paint`, numba, all cores), a real FFT (scipy.fft, all
cores), the CIC compensation W_CIC(k)⁻² = Π_a sinc(k_a/2π)⁻⁴ (k_a in radians per cell;
the window of painting and of reading, Jing 2005 eq. 18 with p = 2), the exact inverse
Laplacian −1/k², the 4-point finite-difference gradient i (8 sin k_a − sin 2k_a)/6, three
inverse FFTs and CIC read-back (:func:`zoa_lib.universe.cic.read`). Per force evaluation: one
rfftn and three irfftn (their time is the "FFT floor" of ``zoa bench sim``). The jaxpm
force itself is kept as the reference (``evolve(..., backend="jaxpm")``, used by the tests
when jax and jaxpm are installed). Measured side by side at 128³ on 2 cores (both runs
slowed alike by another job): 0.30 s per force here against 1.30 s for jaxpm (whose XLA
scatter painting alone takes 0.52 s), with an FFT floor of 0.043 s; the two forces agree
to 2e-6 rms (relative). jaxpm also drops a particle whose lattice site + displacement
rounds, in float32, onto the next node (2 of 2.1 M particles lost per force in that
test; :mod:`zoa_lib.universe.cic`, tests/test_pm.py); the kernels here keep it.

This module chooses the time steps and applies FastPM's kick and drift factors (Feng et
al. 2016, MNRAS 463, 2273, §2.3), which make each step exact for linear (Zel'dovich)
growth, so few steps suffice on large scales. jaxpm's own ``lpt`` and growth functions
are not used: with the registry's jax-cosmo 0.1.0 they fail (``KeyError: 'h'`` in
``growth.dGfa``); the growth factors here solve the ΛCDM growth equations (:func:`growth_table`).

Units. Inside the integrator lengths are in mesh cells Δ = L/M (L = ``parent_size``
Mpc/h, M = ``parent_mesh``) and time is the scale factor a, with H0 = 1::

    dx/da = p / (a³ E),        dp/da = F / (a² E),     E² = Ωm a⁻³ + 1 − Ωm
    F = −(3/2) Ωm ∇φ,  ∇²φ = δ   (δ of the CIC-painted particles; cells)

p = a² dx/dt / H0 is the canonical momentum (cells); the peculiar velocity is
v = H0 Δ p / a km/s (H0 = 100 km/s per Mpc/h), i.e. ``100 Δ p`` at a = 1. The particle
of lattice site (i, j, k) sits at (i, j, k) + 1/2 + disp: the lattice is at the cell
centres of the force mesh, whose nodes are at integer positions.

Growth (flat ΛCDM without radiation; y = ln a, ' = d/dy)::

    D₁'' + (2 + d ln E/d ln a) D₁' = (3/2) Ωm(a) D₁
    D₂'' + (2 + d ln E/d ln a) D₂' − (3/2) Ωm(a) D₂ = −(3/2) Ωm(a) D₁²

from the matter era (D₁ = a, D₂ = −(3/7) a²), normalised to D₁(1) = 1 (D₂ by the same
constant squared). With G_p(a) = a² E D₁' (the momentum per unit Ψ₁ in linear theory)
and G_f = (3/2) Ωm D₁ (the force per unit Ψ₁), FastPM's factors are::

    drift a₀ → a₁ with p at a_c:   Δx = p (D₁(a₁) − D₁(a₀)) / G_p(a_c)
    kick  a₀ → a₁ with F at a_f:   Δp = F (G_p(a₁) − G_p(a₀)) / G_f(a_f)

Start (``simulation.pm_a_start``): the particles of the same initial conditions as the
2LPT engine (:func:`zoa_lib.universe.lpt.lpt_displacements`, Ψ₁ and Ψ₂ at a = 1), scaled
back to a_start: x = q + D₁ Ψ₁ + (D₂ / D₂,LPT) Ψ₂, p = a² E (f₁ D₁ Ψ₁ + f₂ (D₂ / D₂,LPT) Ψ₂)
with D₂,LPT = −(3/7) Ωm^(−1/143) the constant in Ψ₂. Then ``simulation.pm_steps``
kick-drift-kick steps uniform in a to a = 1 (FastPM's default: 10 steps from a = 0.1),
i.e. ``pm_steps + 1`` force evaluations.

Reproducibility: the same seed gives the same particles bit for bit on one machine,
whatever the number of threads: CIC painting adds each node's contributions in one fixed
order (:mod:`zoa_lib.universe.cic`: particles sorted by mesh plane, even planes then odd planes),
read-back is a gather, pocketfft's result does not depend on its worker count, and the
kicks and drifts are elementwise float32. Across machines (another CPU's vector units,
another numpy/scipy/numba) expect float32 round-off, amplified by the nonlinear evolution.
"""
from __future__ import annotations

import functools
import time

import numpy as np
from scipy.integrate import solve_ivp

from zoa_lib.errors import ZoaError

#: Install hint printed when numba (the engine's kernels) is missing.
INSTALL_HINT = "simulation.engine 'pm' needs the optional extra 'pm': pip install 'zoa[pm]' (numba)"
#: Install hint printed when the jaxpm reference force is asked for without jax/jaxpm.
JAXPM_HINT = ("the jaxpm reference force (evolve(..., backend='jaxpm')) needs jax and jaxpm, "
              "in the extra 'test': pip install 'zoa[test]'")

#: Wall-clock timings of the last :func:`evolve` with the numba backend (seconds; for
#: ``zoa bench sim``): n_forces, seconds_evolve and the force's seconds_paint, seconds_fft,
#: seconds_kernels (Fourier-space products), seconds_read.
LAST_RUN: dict = {}


class PMError(ZoaError, ValueError):
    """Bad input to the particle-mesh engine, or the engine is not installed."""


def require_engine():
    """Import the engine's compiled kernels (:mod:`zoa_lib.universe.cic`, numba), or raise
    :class:`PMError` with one line saying how to install them."""
    from zoa_lib.universe import cic

    try:
        cic.require_numba()
    except cic.CICError as exc:
        raise PMError(f"{INSTALL_HINT} ({exc.__context__ or exc})") from None
    return cic


def available() -> bool:
    """True when the engine's kernels (numba) import."""
    try:
        require_engine()
    except PMError:
        return False
    return True


def require_jaxpm():
    """Import and return (jax, jax.numpy, jaxpm.pm.pm_forces) for the reference force, or
    raise :class:`PMError` with one line saying how to install them."""
    try:
        import jax
        import jax.numpy as jnp
        from jaxpm.pm import pm_forces
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PMError(f"{JAXPM_HINT} ({exc})") from None
    return jax, jnp, pm_forces


def jaxpm_available() -> bool:
    """True when jax and jaxpm (the reference force) import."""
    try:
        require_jaxpm()
    except PMError:
        return False
    return True


# --------------------------------------------------------------------------- growth
@functools.lru_cache(maxsize=16)
def growth_table(Om0: float, a_min: float = 1e-3):
    """Dense solution of the growth equations (module docstring) for flat ΛCDM.

    Returns a function ``g(a) -> dict`` with D1, f1 = d ln D₁/d ln a, D2 (normalised so
    that D₂ → −(3/7) D₁² early), f2 = d ln D₂/d ln a and E = H/H0, for a in [a_min, 1]."""
    Om0 = float(Om0)
    if not 0 < Om0 <= 1:
        raise PMError(f"growth_table: Om0 must be in (0, 1], got {Om0}")

    def rhs(y, s):
        a = np.exp(y)
        e2 = Om0 * a ** -3 + (1.0 - Om0)
        om = Om0 * a ** -3 / e2
        dlne = -1.5 * om
        d1, d1p, d2, d2p = s
        return [d1p, -(2.0 + dlne) * d1p + 1.5 * om * d1,
                d2p, -(2.0 + dlne) * d2p + 1.5 * om * (d2 - d1 * d1)]

    y0 = np.log(a_min)
    sol = solve_ivp(rhs, (y0, 0.0), [a_min, a_min, -3.0 / 7.0 * a_min ** 2, -6.0 / 7.0 * a_min ** 2],
                    method="DOP853", rtol=1e-10, atol=1e-14, dense_output=True)
    norm = sol.sol(0.0)[0]

    def g(a):
        a = np.asarray(a, np.float64)
        d1, d1p, d2, d2p = sol.sol(np.log(a))
        return {"D1": d1 / norm, "f1": d1p / d1, "D2": d2 / norm ** 2, "f2": d2p / d2,
                "E": np.sqrt(Om0 * a ** -3 + 1.0 - Om0)}

    return g


def fastpm_factors(Om0: float):
    """The growth functions of FastPM's factors (module docstring) as a dict of callables
    of a: ``Gp`` = a² E dD₁/d ln a, ``D1``, ``Gf`` = (3/2) Ωm D₁ (all per unit Ψ₁)."""
    g = growth_table(float(Om0))

    def gp(a):
        r = g(a)
        return a * a * r["E"] * r["f1"] * r["D1"]

    def d1(a):
        return g(a)["D1"]

    def gf(a):
        return 1.5 * Om0 * g(a)["D1"]

    return {"Gp": gp, "D1": d1, "Gf": gf}


def time_steps(a_start: float, n_steps: int) -> np.ndarray:
    """Scale factors of the step boundaries: n_steps + 1 values uniform in a from a_start to 1."""
    if not 0 < a_start < 1:
        raise PMError(f"simulation.pm_a_start must be in (0, 1), got {a_start}")
    if int(n_steps) < 1:
        raise PMError(f"simulation.pm_steps must be >= 1, got {n_steps}")
    return np.linspace(float(a_start), 1.0, int(n_steps) + 1)


# --------------------------------------------------------------------------- integrator
def initial_state(psi1: np.ndarray, psi2, cell: float, Om0: float, a_start: float):
    """Displacement (M, M, M, 3) and momentum (M, M, M, 3) in cells at ``a_start``
    (float32) from the a = 1 LPT fields ``psi1``, ``psi2`` (M, M, M, 3) in Mpc/h
    (``psi2`` may be None) and the cell size ``cell`` in Mpc/h."""
    g = growth_table(float(Om0))(a_start)
    amp = a_start ** 2 * g["E"]
    disp = psi1 * np.float32(g["D1"] / cell)
    mom = psi1 * np.float32(amp * g["f1"] * g["D1"] / cell)
    if psi2 is not None:
        d2_lpt = -3.0 / 7.0 * Om0 ** (-1.0 / 143.0)
        s = g["D2"] / d2_lpt
        disp += psi2 * np.float32(s / cell)
        mom += psi2 * np.float32(amp * g["f2"] * s / cell)
    return disp.astype(np.float32, copy=False), mom.astype(np.float32, copy=False)


# --------------------------------------------------------------------------- force
@functools.lru_cache(maxsize=4)
def force_kernels(mesh: int, compensate: bool = True):
    """The Fourier-space operators of :func:`pm_force` on the rfftn grid of an M³ mesh
    (k in radians per cell, numpy FFT order):

    * ``green`` (M, M, M//2 + 1) float32: W_CIC(k)⁻² / k² with W_CIC⁻² = Π_a sinc(k_a/2π)⁻⁴
      when ``compensate`` (else 1 / k²), 0 at k = 0; −∇φ of ∇²φ = δ is then
      ``i g_a(k) · green · δ_k`` (the sign of −1/k² and of −∇ cancel);
    * ``grad`` three 1-D complex64 arrays i g_a(k_a), g_a = (8 sin k_a − sin 2k_a)/6 (the
      4-point finite difference), shaped to broadcast along axis a.

    Computed in float64, stored in single precision (jaxpm computes them in float32)."""
    M = int(mesh)
    w = 2.0 * np.pi * np.fft.fftfreq(M)
    wz = 2.0 * np.pi * np.fft.rfftfreq(M)
    kx, ky, kz = w[:, None, None], w[None, :, None], wz[None, None, :]
    k2 = kx * kx + ky * ky + kz * kz
    k2[0, 0, 0] = 1.0
    green = 1.0 / k2
    green[0, 0, 0] = 0.0
    if compensate:
        green *= (np.sinc(kx / (2 * np.pi)) * np.sinc(ky / (2 * np.pi)) * np.sinc(kz / (2 * np.pi))) ** -4
    green = green.astype(np.float32)
    grad = []
    for a, k in enumerate((w, w, wz)):
        shape = [1, 1, 1]
        shape[a] = len(k)
        grad.append((1j * (8.0 * np.sin(k) - np.sin(2.0 * k)) / 6.0).astype(np.complex64).reshape(shape))
    green.setflags(write=False)
    for g in grad:
        g.setflags(write=False)
    return green, tuple(grad)


def fft_seconds(mesh: int, workers: int | None = None, repeats: int = 3) -> float:
    """The FFT floor of one force evaluation: the least wall-clock seconds, over
    ``repeats`` tries, of the transforms :func:`pm_force` does (one float32 rfftn and three
    irfftn of an M³ mesh, scipy.fft with ``workers`` threads)."""
    import scipy.fft as sfft

    from zoa_lib.universe.fourier import fft_workers

    w = fft_workers(workers)
    M = int(mesh)
    rho = np.random.default_rng(0).random((M, M, M), dtype=np.float32)
    best = np.inf
    for _ in range(max(1, int(repeats))):
        t = time.perf_counter()
        dk = sfft.rfftn(rho, workers=w)
        for _ in range(3):
            sfft.irfftn(dk, s=(M,) * 3, workers=w)
        best = min(best, time.perf_counter() - t)
    return float(best)


def pm_force(disp, compensate: bool = True, workers: int | None = None, timings: dict | None = None) -> np.ndarray:
    """−∇φ with ∇²φ = δ (δ the CIC-painted density of the particles, mean 1; cells) at the
    particles: (M, M, M, 3) float32 in cells, for the displacements ``disp`` (M, M, M, 3)
    float32 from the lattice (cells; particle (i, j, k) at (i, j, k) + 1/2 + disp).

    The operators of jaxpm's ``pm_forces`` (module docstring, :func:`force_kernels`) with
    numba CIC kernels and scipy.fft (``workers`` threads; default all cores). Deterministic
    (module docstring). ``timings``, if given, accumulates seconds_paint, seconds_fft,
    seconds_kernels and seconds_read."""
    import scipy.fft as sfft

    from zoa_lib.universe.fourier import fft_workers

    cic = require_engine()
    d = np.asarray(disp)
    M = d.shape[0]
    if d.shape != (M, M, M, 3):
        raise PMError(f"pm_force: disp must be (M, M, M, 3), got {d.shape}")
    w = fft_workers(workers)
    green, grad = force_kernels(int(M), bool(compensate))
    t0 = time.perf_counter()
    rho = cic.paint(d, M, 0.5)
    t1 = time.perf_counter()
    dk = sfft.rfftn(rho, workers=w)
    del rho
    t2 = time.perf_counter()
    dk *= green
    fmesh = np.empty((3, M, M, M), np.float32)
    buf = np.empty_like(dk)
    tk = time.perf_counter() - t2
    tf = t2 - t1
    for a in range(3):
        t = time.perf_counter()
        np.multiply(dk, grad[a], out=buf)
        t3 = time.perf_counter()
        fmesh[a] = sfft.irfftn(buf, s=(M,) * 3, workers=w, overwrite_x=True)
        t4 = time.perf_counter()
        tk += t3 - t
        tf += t4 - t3
    del dk, buf
    t5 = time.perf_counter()
    out = cic.read(fmesh, d, 0.5).reshape(M, M, M, 3)
    t6 = time.perf_counter()
    if timings is not None:
        for key, v in (("seconds_paint", t1 - t0), ("seconds_fft", tf), ("seconds_kernels", tk),
                       ("seconds_read", t6 - t5)):
            timings[key] = timings.get(key, 0.0) + v
    return out


# --------------------------------------------------------------------------- integrator
@functools.lru_cache(maxsize=4)
def _jaxpm_step_functions(mesh: int, compensate: bool = True):
    """Jitted (force, kick, drift) of the jaxpm reference for an M³ mesh; the factors are
    traced arguments, so one compilation serves every step."""
    jax, jnp, pm_forces = require_jaxpm()
    shape = (mesh,) * 3

    from jaxpm.distributed import fft3d
    from jaxpm.kernels import cic_compensation, fftk
    from jaxpm.painting import cic_paint_dx

    @jax.jit
    def force(disp):  # −∇φ, ∇²φ = δ, cells; relative (chunked) painting from the lattice
        x = disp + 0.5  # the particle lattice sits at the cell centres of the force mesh
        delta_k = fft3d(cic_paint_dx(x))
        if compensate:  # divide by the CIC window of painting and of reading: W_CIC(k)²
            delta_k = delta_k * cic_compensation(fftk(delta_k)) ** 2
        return pm_forces(x, mesh_shape=shape, delta=delta_k, paint_absolute_pos=False)

    @jax.jit
    def kick(mom, f, k):
        return mom + f * k

    @jax.jit
    def drift(disp, mom, d):
        return disp + mom * d

    return force, kick, drift


def jaxpm_force(disp, compensate: bool = True) -> np.ndarray:
    """jaxpm's force (the reference of :func:`pm_force`; same arguments and units)."""
    force, _, _ = _jaxpm_step_functions(int(np.shape(disp)[0]), bool(compensate))
    return np.asarray(force(np.asarray(disp, np.float32)), np.float32)


def _evolve_jaxpm(disp, mom, Om0: float, a_steps: np.ndarray):
    jax, jnp, _ = require_jaxpm()
    disp = jnp.asarray(disp)
    mom = jnp.asarray(mom)
    force, kick, drift = _jaxpm_step_functions(int(disp.shape[0]))
    fac = fastpm_factors(float(Om0))
    Gp, D1, Gf = fac["Gp"], fac["D1"], fac["Gf"]
    f = force(disp) * (1.5 * Om0)
    for a0, a1 in zip(a_steps[:-1], a_steps[1:]):
        ac = 0.5 * (a0 + a1)
        mom = kick(mom, f, np.float32((Gp(ac) - Gp(a0)) / Gf(a0)))
        disp = drift(disp, mom, np.float32((D1(a1) - D1(a0)) / Gp(ac)))
        f = force(disp) * (1.5 * Om0)
        mom = kick(mom, f, np.float32((Gp(a1) - Gp(ac)) / Gf(a1)))
    return np.asarray(disp, np.float32), np.asarray(mom, np.float32)


def evolve(disp, mom, Om0: float, a_steps: np.ndarray, backend: str = "numba", workers: int | None = None):
    """Kick-drift-kick from ``a_steps[0]`` to ``a_steps[-1]`` with FastPM factors.

    disp, mom : (M, M, M, 3) float32 displacement from the lattice and momentum, cells,
    at a_steps[0]. Returns (disp, mom) at a_steps[-1] as numpy float32 (cells).
    ``backend``: ``"numba"`` (:func:`pm_force`, the engine) or ``"jaxpm"`` (the reference:
    jaxpm's force and jitted kicks and drifts, the engine before the compiled CIC kernels). The numba
    backend records its timings in :data:`LAST_RUN`; it runs its FFTs and its CIC kernels
    on ``workers`` threads (default $ZOA_FFT_WORKERS, else all cores; the result does not
    depend on it)."""
    d_shape, m_shape = np.shape(disp), np.shape(mom)
    mesh = d_shape[0] if d_shape else 0
    if d_shape != (mesh,) * 3 + (3,) or m_shape != d_shape:
        raise PMError(f"evolve: disp and mom must be (M, M, M, 3), got {d_shape}, {m_shape}")
    if backend == "jaxpm":
        return _evolve_jaxpm(disp, mom, Om0, a_steps)
    if backend != "numba":
        raise PMError(f"evolve: backend must be 'numba' or 'jaxpm', got {backend!r}")
    require_engine()
    import numba

    from zoa_lib.universe.fourier import fft_workers

    threads = numba.get_num_threads()
    numba.set_num_threads(max(1, min(fft_workers(workers), numba.config.NUMBA_NUM_THREADS)))
    try:
        return _evolve_numba(disp, mom, Om0, a_steps, workers)
    finally:
        numba.set_num_threads(threads)


def _evolve_numba(disp, mom, Om0: float, a_steps: np.ndarray, workers):
    t0 = time.perf_counter()
    mesh = np.shape(disp)[0]
    disp = np.array(disp, np.float32)  # copies: updated in place below
    mom = np.array(mom, np.float32)
    fac = fastpm_factors(float(Om0))
    Gp, D1, Gf = fac["Gp"], fac["D1"], fac["Gf"]
    timings: dict = {}
    n_forces = 1
    f = pm_force(disp, workers=workers, timings=timings)
    f *= 1.5 * Om0
    tmp = np.empty_like(mom)
    for a0, a1 in zip(a_steps[:-1], a_steps[1:]):
        ac = 0.5 * (a0 + a1)
        mom += np.multiply(f, np.float32((Gp(ac) - Gp(a0)) / Gf(a0)), out=tmp)
        disp += np.multiply(mom, np.float32((D1(a1) - D1(a0)) / Gp(ac)), out=tmp)
        f = pm_force(disp, workers=workers, timings=timings)
        f *= 1.5 * Om0
        n_forces += 1
        mom += np.multiply(f, np.float32((Gp(a1) - Gp(ac)) / Gf(a1)), out=tmp)
    LAST_RUN.clear()
    LAST_RUN.update(mesh=int(mesh), n_forces=n_forces, seconds_evolve=time.perf_counter() - t0, **timings)
    return disp, mom


def particles_pm(delta_lin: np.ndarray, size: float, cosmo, order: int = 2, a_start: float = 0.1,
                 n_steps: int = 10, workers: int | None = None):
    """Positions (M³, 3) float32 in [0, size) Mpc/h and velocities (M³, 3) float32 km/s
    at a = 1 of the particles of the linear field ``delta_lin`` (M³, z = 0), started with
    LPT of ``order`` at ``a_start`` and evolved with ``n_steps`` PM steps (module
    docstring). Same particle order and units as :func:`zoa_lib.universe.simulation.particles_from_ics`."""
    from zoa_lib.universe.lpt import lpt_displacements

    require_engine()
    mesh = delta_lin.shape[0]
    cell = float(size) / mesh
    a_steps = time_steps(a_start, n_steps)
    psi1, psi2 = lpt_displacements(delta_lin, size, cosmo.Om0, order, workers)
    disp, mom = initial_state(psi1, psi2, cell, cosmo.Om0, float(a_steps[0]))
    del psi1, psi2
    disp, mom = evolve(disp, mom, cosmo.Om0, a_steps, workers=workers)
    q = (np.arange(mesh, dtype=np.float32) * np.float32(cell))
    pos = np.empty((mesh ** 3, 3), np.float32)
    for a in range(3):
        shp = [1, 1, 1]
        shp[a] = mesh
        x = disp[..., a] * np.float32(cell) + q.reshape(shp)
        x = np.mod(x, np.float32(size))
        x[x >= size] = 0.0
        pos[:, a] = x.reshape(-1)
    vel = (mom * np.float32(100.0 * cell)).reshape(-1, 3)  # v = H0 Δ p / a at a = 1
    return pos, np.ascontiguousarray(vel, np.float32)

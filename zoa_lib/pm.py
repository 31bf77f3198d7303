"""Particle-mesh N-body evolution of a parent box (``simulation.engine: pm``).

The gravity solver is `jaxpm <https://github.com/DifferentiableUniverseInitiative/JaxPM>`_
(:func:`jaxpm.pm.pm_forces`: cloud-in-cell painting of the particles on the mesh, exact
inverse Laplacian, 4-point finite-difference gradient, CIC read-back); this module only
chooses the time steps and applies FastPM's kick and drift factors (Feng et al. 2016,
MNRAS 463, 2273, §2.3), which make each step exact for linear (Zel'dovich) growth, so few
steps suffice on large scales. jaxpm's own ``lpt`` and growth functions are not used:
with the registry's jax-cosmo 0.1.0 they fail (``KeyError: 'h'`` in ``growth.dGfa``);
the growth factors here solve the ΛCDM growth equations (:func:`growth_table`).

Units. Inside the integrator lengths are in mesh cells Δ = L/M (L = ``parent_size``
Mpc/h, M = ``parent_mesh``) and time is the scale factor a, with H0 = 1::

    dx/da = p / (a³ E),        dp/da = F / (a² E),     E² = Ωm a⁻³ + 1 − Ωm
    F = −(3/2) Ωm ∇φ,  ∇²φ = δ   (δ of the CIC-painted particles; cells)

p = a² dx/dt / H0 is the canonical momentum (cells); the peculiar velocity is
v = H0 Δ p / a km/s (H0 = 100 km/s per Mpc/h), i.e. ``100 Δ p`` at a = 1.

Growth (flat ΛCDM without radiation; y = ln a, ' = d/dy)::

    D₁'' + (2 + d ln E/d ln a) D₁' = (3/2) Ωm(a) D₁
    D₂'' + (2 + d ln E/d ln a) D₂' − (3/2) Ωm(a) D₂ = −(3/2) Ωm(a) D₁²

from the matter era (D₁ = a, D₂ = −(3/7) a²), normalised to D₁(1) = 1 (D₂ by the same
constant squared). With G_p(a) = a² E D₁' (the momentum per unit Ψ₁ in linear theory)
and G_f = (3/2) Ωm D₁ (the force per unit Ψ₁), FastPM's factors are::

    drift a₀ → a₁ with p at a_c:   Δx = p (D₁(a₁) − D₁(a₀)) / G_p(a_c)
    kick  a₀ → a₁ with F at a_f:   Δp = F (G_p(a₁) − G_p(a₀)) / G_f(a_f)

Start (``simulation.pm_a_start``): the particles of the same initial conditions as the
2LPT engine (:func:`zoa_lib.simulation.lpt_displacements`, Ψ₁ and Ψ₂ at a = 1), scaled
back to a_start: x = q + D₁ Ψ₁ + (D₂ / D₂,LPT) Ψ₂, p = a² E (f₁ D₁ Ψ₁ + f₂ (D₂ / D₂,LPT) Ψ₂)
with D₂,LPT = −(3/7) Ωm^(−1/143) the constant in Ψ₂. Then ``simulation.pm_steps``
kick-drift-kick steps uniform in a to a = 1 (FastPM's default: 10 steps from a = 0.1).

Reproducibility: XLA on CPU sums the scatter-add of CIC painting in an order that is
fixed for one build and thread count, so reruns on one machine gave identical particles
here; across machines or jax versions expect float32 round-off (tests use a tolerance).
"""
from __future__ import annotations

import functools

import numpy as np
from scipy.integrate import solve_ivp

from .errors import ZoaError

#: Install hint printed when jax/jaxpm are missing.
INSTALL_HINT = "simulation.engine 'pm' needs the optional extra 'pm': pip install 'zoa[pm]' (jax[cpu], jaxpm)"


class PMError(ZoaError, ValueError):
    """Bad input to the particle-mesh engine, or the engine is not installed."""


def require_jaxpm():
    """Import and return (jax, jax.numpy, jaxpm.pm.pm_forces), or raise :class:`PMError`
    with one line saying how to install them."""
    try:
        import jax
        import jax.numpy as jnp
        from jaxpm.pm import pm_forces
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PMError(f"{INSTALL_HINT} ({exc})") from None
    return jax, jnp, pm_forces


def available() -> bool:
    """True when jax and jaxpm import."""
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


@functools.lru_cache(maxsize=4)
def _step_functions(mesh: int, compensate: bool = True):
    """Jitted (force, kick, drift) for an M³ mesh; the factors are traced arguments, so
    one compilation serves every step."""
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


def evolve(disp, mom, Om0: float, a_steps: np.ndarray):
    """Kick-drift-kick from ``a_steps[0]`` to ``a_steps[-1]`` with FastPM factors.

    disp, mom : (M, M, M, 3) float32 displacement from the lattice and momentum, cells,
    at a_steps[0]. Returns (disp, mom) at a_steps[-1] as numpy float32 (cells)."""
    jax, jnp, _ = require_jaxpm()
    disp = jnp.asarray(disp)
    mom = jnp.asarray(mom)
    mesh = disp.shape[0]
    if disp.shape != (mesh,) * 3 + (3,) or mom.shape != disp.shape:
        raise PMError(f"evolve: disp and mom must be (M, M, M, 3), got {disp.shape}, {mom.shape}")
    force, kick, drift = _step_functions(int(mesh))
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


def particles_pm(delta_lin: np.ndarray, size: float, cosmo, order: int = 2, a_start: float = 0.1,
                 n_steps: int = 10, workers: int | None = None):
    """Positions (M³, 3) float32 in [0, size) Mpc/h and velocities (M³, 3) float32 km/s
    at a = 1 of the particles of the linear field ``delta_lin`` (M³, z = 0), started with
    LPT of ``order`` at ``a_start`` and evolved with ``n_steps`` PM steps (module
    docstring). Same particle order and units as :func:`zoa_lib.simulation.particles_from_ics`."""
    from .simulation import lpt_displacements

    require_jaxpm()
    mesh = delta_lin.shape[0]
    cell = float(size) / mesh
    a_steps = time_steps(a_start, n_steps)
    psi1, psi2 = lpt_displacements(delta_lin, size, cosmo.Om0, order, workers)
    disp, mom = initial_state(psi1, psi2, cell, cosmo.Om0, float(a_steps[0]))
    del psi1, psi2
    disp, mom = evolve(disp, mom, cosmo.Om0, a_steps)
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

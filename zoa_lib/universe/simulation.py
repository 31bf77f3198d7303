"""Simulated universes: Gaussian initial conditions, 2LPT particles, observer cubes.

Units (DESIGN.md): comoving positions in Mpc/h, wavenumbers in h/Mpc, P(k) in (Mpc/h)³,
velocities in km/s, H0 = 100 km/s per Mpc/h; everything at a = 1 (z = 0).

**Parent box.** A periodic box of side L = ``profile.simulation.parent_size`` with
M³ particles, M = ``parent_mesh``, and the same M³ FFT mesh. Mesh node (i, j, k) sits
at q = (i, j, k) L/M; particle p = (i M + j) M + k starts on that node (a lattice on
the mesh nodes, the "corners" of the cells of a cell-centred view).

*Gaussian ICs* (:func:`gaussian_field`): real-space white noise w(x) ~ N(0, 1) drawn
from the ``("initial_conditions", box_index)`` stream, then, with the numpy DFT
convention (⟨|w_k|²⟩ = M³)::

    δ_k = w_k · [P(k) / ΔV]^½,   ΔV = (L/M)³,   δ_{k=0} = 0

so that ⟨|δ_k|²⟩ = M⁶ P(k) / V, i.e. the estimator P̂(k) = |δ_k|² V / M⁶ is unbiased.
The Nyquist planes are kept (real noise keeps them Hermitian).

*Lagrangian perturbation theory* (Scoccimarro 1998; Crocce, Pueblas & Scoccimarro
2006), with D₁ = 1 today and δ_lin the linear density at z = 0::

    x = q + Ψ₁ + Ψ₂,            Ψ₁ = −∇φ⁽¹⁾,  ∇²φ⁽¹⁾ = δ_lin
    Ψ₂ = D₂ ∇φ⁽²⁾,              ∇²φ⁽²⁾ = Σ_{i>j} [φ⁽¹⁾,ii φ⁽¹⁾,jj − (φ⁽¹⁾,ij)²]
    D₂ = −(3/7) Ωm^(−1/143)
    v = H0 (f₁ Ψ₁ + f₂ Ψ₂),     f₁ = f (cosmology), f₂ = 2 Ωm^(6/11)

``lpt_order = 1`` is the Zel'dovich approximation (Ψ₂ = 0). For a uniform spherical
overdensity this gives 1 + δ = 1 + δ₀ + (17/21) δ₀² + …, the exact second order.

**Observers.** Observer i of a box takes its position (uniform in the box) and a
rotation (uniform among ``simulation.rotations`` symmetries of the cube) from the
``("observers", box_index, i)`` stream. Supergalactic coordinates of a parent point
y are x_SG = R (y − o), wrapped periodically; velocities rotate the same way,
v_SG = R v. The cube keeps the particles with x_SG in [−s/2, s/2)³, s =
``profile.box.size``. Because R is a symmetry of the cube, the rotated cube is
axis-aligned in the parent box too.

Targets (δ, φ, v) of a cube are in :mod:`zoa_lib.universe.fields`; they are cached per parent box
(:meth:`ParentBox.fields`) so many cubes per box are cheap.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.fft as sfft

from zoa_lib.universe.fourier import fft_workers, wavevectors
from zoa_lib.universe.lpt import SimulationError, lpt_components, second_order_growth_rate
from zoa_lib.universe.rng import generator


# --------------------------------------------------------------------------- data classes
@dataclass(eq=False)
class ParentBox:
    """A periodic parent box of 2LPT (or Zel'dovich, or particle-mesh) particles at z = 0.

    size : side, Mpc/h; mesh : particles and FFT mesh per side;
    positions : (mesh³, 3) float32 comoving positions in [0, size), Mpc/h;
    velocities : (mesh³, 3) float32 peculiar velocities, km/s;
    delta_lin : (mesh, mesh, mesh) float32 linear density contrast at z = 0 (the ICs),
    node (i, j, k) at (i, j, k) size/mesh; box_index, seed : its random stream.
    """

    size: float
    mesh: int
    positions: np.ndarray
    velocities: np.ndarray
    delta_lin: np.ndarray
    box_index: int
    seed: int
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def fields(self, profile):
        """Smoothed δ, φ, v on this box's mesh for ``profile`` (cached):
        :func:`zoa_lib.universe.fields.parent_fields`."""
        from zoa_lib.universe.fields import parent_fields

        return parent_fields(profile, self)

    @property
    def mean_density(self) -> float:
        """Particles per (Mpc/h)³."""
        return len(self.positions) / self.size ** 3

    @property
    def nbytes(self) -> int:
        return self.positions.nbytes + self.velocities.nbytes + self.delta_lin.nbytes


@dataclass(eq=False)
class ObserverCube:
    """Particles of one observer-centred cube in supergalactic axes.

    size : cube side, Mpc/h; observer : (3,) position in the parent box, Mpc/h;
    rotation : (3, 3) int8, x_SG = R (x_parent − observer) (wrapped);
    positions : (n, 3) float32 in [−size/2, size/2)³, Mpc/h, SG axes;
    velocities : (n, 3) float32 km/s, SG axes; mean_density : parent particles per
    (Mpc/h)³; box_index, index : which parent box and which observer of it.
    """

    size: float
    observer: np.ndarray
    rotation: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    mean_density: float
    box_index: int = -1
    index: int = -1


# --------------------------------------------------------------------------- initial conditions
def _power_table(cosmo, size: float, mesh: int):
    """(ln k, ln P) on a fine log grid covering the mesh's wavenumbers."""
    kmin = np.pi / size
    kmax = np.sqrt(3.0) * np.pi * mesh / size * 1.01
    lnk = np.linspace(np.log(kmin), np.log(kmax), 4096)
    pk = cosmo.power_spectrum(np.exp(lnk))
    return lnk, np.log(pk)


def gaussian_field(cosmo, size: float, mesh: int, rng: np.random.Generator,
                   workers: int | None = None) -> np.ndarray:
    """A Gaussian random field δ (mesh³, float32) with power spectrum ``cosmo.power_spectrum``
    in a periodic box of side ``size`` Mpc/h (module docstring for the normalisation).

    Deterministic in ``rng``: white noise is drawn in real space (float32, C order)."""
    size, mesh = float(size), int(mesh)
    if mesh < 2 or size <= 0:
        raise SimulationError(f"gaussian_field: need mesh >= 2 and size > 0, got mesh={mesh}, size={size}")
    w = fft_workers(workers)
    noise = rng.standard_normal((mesh,) * 3, dtype=np.float32)
    wk = sfft.rfftn(noise, workers=w, overwrite_x=True)
    del noise
    for i, var in enumerate(_mode_variance_slabs(cosmo, size, mesh)):  # no full-size float64 temporaries
        wk[i] *= np.sqrt(var).astype(np.float32)
    return sfft.irfftn(wk, s=(mesh,) * 3, workers=w, overwrite_x=True).astype(np.float32, copy=False)


def _mode_variance_slabs(cosmo, size: float, mesh: int):
    """Yield, slab by slab along the first axis of the rfft grid, the variance P(k)/ΔV by
    which :func:`gaussian_field` multiplies the transform of unit white noise (0 at k = 0)."""
    lnk, lnp = _power_table(cosmo, size, mesh)
    dV = (size / mesh) ** 3
    kx, ky, kz = wavevectors(mesh, size)
    kyz2 = ky[0] ** 2 + kz[0] ** 2  # (mesh, mesh//2+1)
    for i in range(mesh):
        k = np.sqrt(kx[i, 0, 0] ** 2 + kyz2)
        with np.errstate(divide="ignore"):
            var = np.exp(np.interp(np.log(k), lnk, lnp)) / dV
        if i == 0:
            var[0, 0] = 0.0
        yield var


def mode_variance(cosmo, size: float, mesh: int) -> np.ndarray:
    """Variance of each rfft mode of :func:`gaussian_field` relative to unit white noise,
    P(k)/ΔV on the (mesh, mesh, mesh//2+1) grid. The field's covariance is exactly
    ⟨δ(x) δ(x + r)⟩ = irfftn(mode_variance)(r) (numpy's FFT normalisation)."""
    return np.stack(list(_mode_variance_slabs(cosmo, float(size), int(mesh))))


def particles_from_ics(delta_lin: np.ndarray, size: float, cosmo, order: int = 2,
                       workers: int | None = None):
    """Positions (M³, 3) float32 in [0, size) and velocities (M³, 3) float32 km/s of
    particles started on the mesh nodes and moved with LPT of ``order``."""
    mesh = delta_lin.shape[0]
    n = mesh ** 3
    dx = size / mesh
    f1 = float(cosmo.growth_rate)
    f2 = second_order_growth_rate(cosmo.Om0)
    pos = np.empty((n, 3), np.float32)
    vel = np.empty((n, 3), np.float32)
    q1d = (np.arange(mesh) * dx).astype(np.float32)
    for a, psi1, psi2 in lpt_components(delta_lin, size, cosmo.Om0, order, fft_workers(workers)):
        qshape = [1, 1, 1]
        qshape[a] = mesh
        v = psi1 * np.float32(f1 * 100.0)
        x = psi1
        x += q1d.reshape(qshape)
        if psi2 is not None:
            v += psi2 * np.float32(f2 * 100.0)
            x += psi2
            del psi2
        x = np.mod(x, np.float32(size), out=x)
        x[x >= size] = 0.0  # float32 rounding of tiny negatives
        pos[:, a] = x.reshape(-1)
        vel[:, a] = v.reshape(-1)
        del x, v
    return pos, vel


def evolve_particles(delta_lin: np.ndarray, profile, cosmo, workers: int | None = None):
    """Positions and velocities at z = 0 of the particles of ``delta_lin`` with the
    profile's ``simulation.engine``: ``2lpt`` (:func:`particles_from_ics`) or ``pm``
    (:func:`zoa_lib.universe.pm.particles_pm`, the same LPT start evolved by particle mesh)."""
    sim = profile.simulation
    engine = getattr(sim, "engine", "2lpt")
    if engine == "pm":
        from zoa_lib.universe.pm import particles_pm

        return particles_pm(delta_lin, sim.parent_size, cosmo, sim.lpt_order, sim.pm_a_start,
                            sim.pm_steps, workers)
    if engine != "2lpt":
        raise SimulationError(f"simulation.engine must be '2lpt' or 'pm', got {engine!r}")
    return particles_from_ics(delta_lin, sim.parent_size, cosmo, sim.lpt_order, workers)


def make_parent_box(profile, box_index: int, workers: int | None = None) -> ParentBox:
    """Parent box ``box_index`` of a profile: Gaussian ICs from the stream
    ``("initial_conditions", box_index)``, then LPT of order ``simulation.lpt_order``
    (and particle-mesh evolution from there when ``simulation.engine`` is ``pm``)."""
    from zoa_lib.universe.cosmology import from_profile

    if int(box_index) < 0:
        raise SimulationError(f"make_parent_box: box_index must be >= 0, got {box_index}")
    sim = profile.simulation
    cosmo = from_profile(profile)
    rng = generator(profile.seed, "initial_conditions", int(box_index))
    delta = gaussian_field(cosmo, sim.parent_size, sim.parent_mesh, rng, workers)
    pos, vel = evolve_particles(delta, profile, cosmo, workers)
    return ParentBox(size=float(sim.parent_size), mesh=int(sim.parent_mesh), positions=pos,
                     velocities=vel, delta_lin=delta, box_index=int(box_index), seed=int(profile.seed))


# --------------------------------------------------------------------------- observers
from zoa_lib.universe.symmetries import cube_rotations  # noqa: E402  (one table of the 48 cube symmetries)


def rotate_vectors(rotation, v: np.ndarray) -> np.ndarray:
    """R v for each row of ``v`` (n, 3) (i.e. ``v @ R.T``), R a signed permutation matrix,
    by exact index and sign operations (much faster than a matmul with a 3x3)."""
    R = np.asarray(rotation)
    perm = np.argmax(np.abs(R), axis=1)
    sign = R[np.arange(3), perm].astype(v.dtype)
    out = np.empty(v.shape, v.dtype)
    for i in range(3):
        np.multiply(v[..., perm[i]], sign[i], out=out[..., i])
    return out


def _cell_index(box: ParentBox, ncell: int):
    """(order, starts): particle indices sorted (stably) by coarse cell of side L/ncell, and
    the start of each cell's run; cached on the box."""
    key = ("cells", ncell)
    if key not in box._cache:
        c = box.size / ncell
        cell = np.zeros(len(box.positions), np.int32)  # ncell <= 64: ids < 2**18
        for a in range(3):
            ia = np.minimum((box.positions[:, a] / np.float32(c)).astype(np.int32), ncell - 1)
            np.maximum(ia, 0, out=ia)
            cell *= ncell
            cell += ia
            del ia
        order = np.argsort(cell, kind="stable")
        counts = np.bincount(cell, minlength=ncell ** 3)
        del cell
        if len(order) < 2 ** 31:
            order = order.astype(np.int32)
        starts = np.zeros(ncell ** 3 + 1, np.int64)
        np.cumsum(counts, out=starts[1:])
        # kept beside the other sizes' (the observer cubes and the wider survey cuts of one box
        # alternate; 4 bytes per particle each)
        box._cache[key] = (order, starts)
    return box._cache[key]


def _candidates(box: ParentBox, obs: np.ndarray, half: float) -> np.ndarray:
    """Indices of the particles in the coarse cells overlapping [obs − half, obs + half]³ (periodic)."""
    L = float(box.size)
    ncell = max(1, min(64, int(L // (half / 4.0))))
    order, starts = _cell_index(box, ncell)
    c = L / ncell
    ranges = []
    for a in range(3):
        eps = 1e-3  # Mpc/h: covers float32 rounding of the cell assignment
        lo, hi = int(np.floor((obs[a] - half - eps) / c)), int(np.floor((obs[a] + half + eps) / c))
        ranges.append(np.arange(ncell) if hi - lo + 1 >= ncell else np.mod(np.arange(lo, hi + 1), ncell))
    if all(len(r) == ncell for r in ranges):  # every cell: the runs below concatenate to ``order``
        return order
    pieces = []
    for ix in ranges[0]:
        for iy in ranges[1]:
            base = (ix * ncell + iy) * ncell
            zs = np.sort(ranges[2])
            # contiguous runs of z cells -> one slice each
            breaks = np.flatnonzero(np.diff(zs) != 1) + 1
            for run in np.split(zs, breaks):
                pieces.append(order[starts[base + run[0]]:starts[base + run[-1] + 1]])
    return np.concatenate(pieces) if pieces else np.zeros(0, np.int64)


def cut_cube(box: ParentBox, observer, rotation, size: float, box_index: int | None = None,
             index: int = -1) -> ObserverCube:
    """The particles of ``box`` in the cube of side ``size`` Mpc/h centred on ``observer``
    (Mpc/h, parent axes) in SG axes x_SG = R (x − observer), periodic (module docstring)."""
    L = float(box.size)
    if not 0 < size <= L:
        raise SimulationError(f"cut_cube: cube size {size} Mpc/h must be in (0, {L}] (the parent box)")
    R = np.asarray(rotation)
    if R.shape != (3, 3) or not np.array_equal(np.abs(R).sum(0), [1, 1, 1]) or \
            not np.array_equal(np.abs(R).sum(1), [1, 1, 1]) or not np.all(np.isin(R, (-1, 0, 1))):
        raise SimulationError(f"cut_cube: rotation must be a 3x3 signed permutation matrix, got {R.tolist()}")
    obs = np.mod(np.asarray(observer, dtype=np.float64).reshape(3), L)
    half = size / 2.0
    # candidates: the particles in the coarse cells the cube overlaps (it is axis-aligned in
    # the parent box too); then the exact cut on the minimum image
    idx = _candidates(box, obs, half)
    d = np.take(box.positions, idx, axis=0).astype(np.float64)
    d -= obs
    d -= L * np.floor(d / L + 0.5)
    near = (np.abs(d[:, 0]) <= half) & (np.abs(d[:, 1]) <= half) & (np.abs(d[:, 2]) <= half)
    idx, d = idx[near], d[near]
    x = rotate_vectors(R, d)
    if size >= L:
        x -= L * np.floor(x / L + 0.5)
    inside = ((x[:, 0] >= -half) & (x[:, 0] < half) & (x[:, 1] >= -half) & (x[:, 1] < half)
              & (x[:, 2] >= -half) & (x[:, 2] < half))
    x = x[inside]
    v = rotate_vectors(R, np.take(box.velocities, idx[inside], axis=0))
    return ObserverCube(size=float(size), observer=obs, rotation=R.astype(np.int8),
                        positions=x.astype(np.float32), velocities=np.ascontiguousarray(v, np.float32),
                        mean_density=box.mean_density,
                        box_index=box.box_index if box_index is None else int(box_index), index=int(index))


def observer_placement(profile, box_index: int, index: int):
    """(observer (3,) Mpc/h, rotation (3,3) int8) of observer ``index`` of parent box
    ``box_index``: position uniform in [0, L)³, then a rotation uniform among
    ``simulation.rotations``, both from the stream ``("observers", box_index, index)``."""
    rng = generator(profile.seed, "observers", int(box_index), int(index))
    obs = rng.uniform(0.0, profile.simulation.parent_size, size=3)
    rots = cube_rotations(profile.simulation.rotations)
    R = rots[int(rng.integers(len(rots)))]
    return obs, R


def observer_cubes(profile, box: ParentBox, indices: Sequence[int]) -> list[ObserverCube]:
    """The observer cubes ``indices`` of a parent box (:func:`observer_placement`), each of
    side ``profile.box.size`` Mpc/h."""
    out = []
    for i in indices:
        obs, R = observer_placement(profile, box.box_index, i)
        out.append(cut_cube(box, obs, R, profile.box.size, index=int(i)))
    return out


# --------------------------------------------------------------------------- benchmark
from zoa_lib.io.machine import peak_rss_mib as _peak_rss_mib  # noqa: E402
from zoa_lib.io.machine import rss_mib as _rss_mib


def benchmark(profile, n_cubes: int | None = None) -> dict:
    """Time one parent box and its observer cubes at the profile's sizes.

    Returns seconds for the ICs + LPT (+ PM evolution for ``simulation.engine: pm``;
    ``seconds_ics_lpt``, and ``particles_per_second`` for that stage), for the box's smoothed fields
    (``seconds_parent_fields``, CIC + FFTs), for sorting its particles into cells for cube
    cuts (``seconds_cell_index``), their sum (``seconds_per_parent_box``), the
    mean seconds per observer cube after that (particle cut + targets on the
    ``box.grid``³ mesh) and the process's peak resident memory (MiB) before and after.

    For ``engine: pm`` also the particle-mesh evolution inside ``seconds_ics_lpt``
    (``seconds_pm_evolve``: ``pm_force_evaluations`` forces, split into CIC painting,
    FFTs, Fourier-space products and CIC read-back), the FFT floor measured in the same
    run (``seconds_fft_floor``: the least time of the transforms of one force, one rfftn
    and three irfftn, :func:`zoa_lib.universe.pm.fft_seconds`, times the number of forces) and
    ``pm_evolve_over_fft_floor``; the kernels are compiled (or loaded from numba's disk
    cache) before the clock starts (``seconds_pm_kernels_compile``)."""
    from zoa_lib.universe.fields import cube_targets

    sim = profile.simulation
    n = int(n_cubes or min(sim.observers_per_box, 32))
    pm_extra = {}
    if sim.engine == "pm":
        from zoa_lib.universe import cic
        from zoa_lib.universe import pm as PM

        PM.require_engine()
        tc = time.perf_counter()
        cic.warm_up()
        pm_extra["seconds_pm_kernels_compile"] = round(time.perf_counter() - tc, 3)
        PM.LAST_RUN.clear()
    rss0 = _rss_mib()
    t0 = time.perf_counter()
    box = make_parent_box(profile, 0)
    t1 = time.perf_counter()
    peak_box = _peak_rss_mib()
    if sim.engine == "pm" and PM.LAST_RUN:
        run = dict(PM.LAST_RUN)
        floor1 = PM.fft_seconds(sim.parent_mesh, fft_workers())
        floor = floor1 * run["n_forces"]
        pm_extra.update({
            "pm_force_evaluations": run["n_forces"],
            "seconds_pm_evolve": round(run["seconds_evolve"], 3),
            **{f"seconds_pm_{k}": round(run[f"seconds_{k}"], 3) for k in ("paint", "fft", "kernels", "read")},
            "seconds_fft_floor_per_force": round(floor1, 5),
            "seconds_fft_floor": round(floor, 4),
            "pm_evolve_over_fft_floor": round(run["seconds_evolve"] / floor, 2),
        })
    box.fields(profile)
    t2 = time.perf_counter()
    peak_fields = _peak_rss_mib()
    observer_cubes(profile, box, [0])  # builds the box's cell index for cube cuts
    t3 = time.perf_counter()
    t_cut = t_tgt = 0.0
    for i in range(n):
        a = time.perf_counter()
        cube = observer_cubes(profile, box, [i])[0]
        b = time.perf_counter()
        cube_targets(profile, box, cube)
        c = time.perf_counter()
        t_cut += b - a
        t_tgt += c - b
    return {
        "parent_size_mpc_h": sim.parent_size,
        "parent_mesh": sim.parent_mesh,
        "particles": sim.parent_mesh ** 3,
        "lpt_order": sim.lpt_order,
        "engine": sim.engine,
        **({"pm_steps": sim.pm_steps, "pm_a_start": sim.pm_a_start} if sim.engine == "pm" else {}),
        **pm_extra,
        "cube_grid": profile.box.grid,
        "fft_workers": fft_workers(),
        "seconds_ics_lpt": round(t1 - t0, 3),
        "particles_per_second": round(sim.parent_mesh ** 3 / (t1 - t0), 1),
        "seconds_parent_fields": round(t2 - t1, 3),
        "seconds_cell_index": round(t3 - t2, 3),
        "seconds_per_parent_box": round(t3 - t0, 3),
        "n_cubes_timed": n,
        "seconds_per_cube_cut": round(t_cut / n, 5),
        "seconds_per_cube_targets": round(t_tgt / n, 5),
        "seconds_per_observer_cube": round((t_cut + t_tgt) / n, 5),
        "observer_cubes_per_second": round(n / (t_cut + t_tgt), 2),
        "box_arrays_mib": round(box.nbytes / 2 ** 20, 1),
        "field_arrays_mib": round(box.fields(profile).nbytes / 2 ** 20, 1),
        "rss_before_mib": round(rss0, 1),
        "peak_rss_after_box_mib": round(peak_box, 1),
        "peak_rss_after_fields_mib": round(peak_fields, 1),
    }


# --------------------------------------------------------------------------- engines side by side
def compare_engines(profile, box_index: int = 0, mesh: int | None = None, size: float | None = None,
                    engines: Sequence[str] = ("2lpt", "pm"), workers: int | None = None) -> dict:
    """Parent box ``box_index`` of a profile built once per engine from the same initial
    conditions (:func:`make_parent_box` with ``simulation.engine`` overridden): {engine:
    :class:`ParentBox`}, in the order of ``engines``. ``mesh`` / ``size`` override
    ``simulation.parent_mesh`` / ``parent_size`` (a smaller mesh keeps a comparison cheap;
    the ICs then are those of the smaller box, the same for every engine)."""
    import dataclasses

    sim = profile.simulation
    changes = {k: v for k, v in (("parent_mesh", mesh), ("parent_size", size)) if v is not None}
    if "parent_mesh" in changes and (int(mesh) < 2 or int(mesh) & (int(mesh) - 1)):
        raise SimulationError(f"compare_engines: mesh must be a power of two >= 2, got {mesh}")
    if "parent_size" in changes and not float(size) > 0:
        raise SimulationError(f"compare_engines: size must be > 0 Mpc/h, got {size}")
    out = {}
    for e in engines:
        if e not in ("2lpt", "pm"):
            raise SimulationError(f"compare_engines: engine must be '2lpt' or 'pm', got {e!r}")
        p = dataclasses.replace(profile, simulation=dataclasses.replace(sim, engine=e, **changes))
        out[e] = make_parent_box(p, box_index, workers)
    return out

"""A constrained local universe and the search for the Great Attractor.

The paper applies its networks to Cosmicflows-4 and finds the Great Attractor (GA) at
(l, b) = (308.4° ± 2.4, 29.0° ± 1.9), cz = 4960 ± 404 km/s in 64 % of 1,000 HAMLET
realizations. The build has no CF4 data, so this module makes a **mock** local universe
whose structures sit at their literature positions (``data/known_structures.csv``) and
runs the same analysis on it. The concepts live in their own modules: the structure table
(:mod:`zoa_lib.analysis.structures`), generic constrained Gaussian fields
(:mod:`zoa_lib.universe.constrained`), the GA search (:mod:`zoa_lib.analysis.ga_search`) and the
CF4-format writer (:mod:`zoa_lib.survey.catalog_files`); this module builds the constrained box,
its cube and its surveys.

1. **Structures** (:func:`known_structures`): Galactic (l, b) and cz from the table; the
   distance is d = cz / H0 in Mpc/h (H0 = 100 km/s per Mpc/h, so d [Mpc/h] = cz / 100,
   no peculiar-velocity correction), and the supergalactic position comes from astropy
   (:func:`zoa_lib.survey.sky.galactic_to_sg`).

2. **Constrained realization** (Hoffman & Ribak 1991; :func:`~zoa_lib.universe.constrained.constrained_field`, the
   generic method and its equations in :mod:`zoa_lib.universe.constrained`): the linear density
   contrast at z = 0, smoothed with a Gaussian of σ = R_s =
   ``local_universe.constraint_smoothing`` Mpc/h, is a *peak* of height c = ν σ_s at each
   structure (value, zero gradient and the Hessian of a typical peak of that height:
   a maximum for attractors, a minimum for voids), with ν from
   :data:`zoa_lib.analysis.structures.HEIGHTS` (a choice of this module, not of the paper).

3. **Box and cube** (:func:`local_universe_box`, :func:`local_universe_cube`). The
   observer sits at the centre of a periodic parent box of side
   ``simulation.parent_size`` (SG position s is box point s + L/2). The literature
   positions are today's (Eulerian), the constraints act on the initial (Lagrangian)
   field: they are placed at q with q + Ψ(q) = x by a few reverse-Zel'dovich iterations
   (Doumler et al. 2013), Ψ the displacement of the constrained field smoothed on R_s —
   without this the structures land ≈ 10 Mpc/h (the rms displacement) away from their
   positions. The constrained linear field is evolved like the training mocks
   (:func:`zoa_lib.universe.simulation.evolve_particles`: 2LPT, or PM from the 2LPT start) and its cube is cut with the
   identity rotation: **the parent axes are the supergalactic axes here** (a mock cube
   has a random rotation; this one must not, or the structures would leave their sky
   positions). Random numbers: stream ``local_universe``, indices (0, realization).

4. **Surveys** (:func:`survey_realizations`): CF4-like catalogs of the cube drawn with
   the profile's survey configuration (ZOA |b| < ``survey.zoa_b`` empty), independent
   galaxies and distance errors per realization, each gridded like the mocks.

5. **Great Attractor** (:func:`~zoa_lib.analysis.ga_search.locate_attractor`, :func:`~zoa_lib.analysis.ga_search.locate_convergence`,
   :func:`~zoa_lib.analysis.ga_search.attractor_statistics`): the highest peak of the (predicted) density — or of
   the velocity convergence −∇·v — within ``local_universe.ga_match_radius`` Mpc/h of the
   literature GA, refined to sub-voxel precision, converted to (l, b) and cz = H0 d; then
   its mean and scatter over the realizations and the fraction of realizations that find
   it (the paper's 64 % for CF4).

6. **CF4 file format** (:func:`~zoa_lib.survey.catalog_files.write_local_universe_cf4`): a survey written in EDD's CSV
   layout so that the CF4 chapter runs on it; its header says it is a mock, not CF4.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoa_lib.analysis.structures import LocalUniverseError, constraint_heights, known_structures
from zoa_lib.universe.constrained import ConstrainedField, constrain, constraint_system, zeldovich_displacement
from zoa_lib.universe.cosmology import from_profile
from zoa_lib.universe.rng import generator
from zoa_lib.universe.simulation import ParentBox

#: Damping ω of the reverse-Zel'dovich iteration q ← q + ω (x − Ψ(q) − q).
RZA_DAMPING = 0.7


# --------------------------------------------------------------------------- box and cube
@dataclass(eq=False)
class LocalUniverseBox(ParentBox):
    """A :class:`zoa_lib.universe.simulation.ParentBox` made from a constrained realization, observer
    at the box centre, parent axes = SG axes. ``constraints``: the
    :class:`ConstrainedField` (without its ``delta``, which is ``delta_lin``);
    ``structures``: the constrained structures; ``realization``: its index."""

    constraints: ConstrainedField | None = None
    structures: tuple = ()
    realization: int = 0


def local_universe_box(profile, realization: int = 0, structures=None, lagrangian_iterations: int = 5,
                       workers: int | None = None) -> LocalUniverseBox:
    """The constrained parent box of a profile (module docstring, items 2–3).

    Linear field: :func:`~zoa_lib.universe.constrained.constrained_field` on the profile's parent box
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
    from zoa_lib.universe.simulation import evolve_particles, gaussian_field

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
        cf = constrain(sysm, field, constraint_heights(structures, sysm.sigma_s))
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
    from zoa_lib.universe.simulation import cut_cube

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
    and nonlinear scatter with :func:`zoa_lib.survey.selection.draw_survey` and the profile's
    survey configuration (the training mocks' selection: analytic, or copied from
    ``survey.catalogue`` out to the depth the cube's particles reach) from the stream
    ``("local_universe", *key, i)`` (:func:`_survey_key`), and is gridded with
    :func:`zoa_lib.survey.galaxies.grid_inputs` like the mocks. ``catalog["sample"]`` = i."""
    from zoa_lib.survey.galaxies import grid_inputs
    from zoa_lib.survey.selection import draw_survey

    if int(n) < 0 or int(start) < 0:
        raise LocalUniverseError(f"survey_realizations: need n >= 0 and start >= 0, got n={n}, start={start}")
    key = _survey_key(cube)
    out = []
    for i in range(int(start), int(start) + int(n)):
        cat = draw_survey(profile, cube, generator(profile.seed, "local_universe", *key, i), sample=i)
        out.append((cat, grid_inputs(cat, profile)))
    return out

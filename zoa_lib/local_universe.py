"""A constrained local universe and the search for the Great Attractor.

The paper applies its networks to Cosmicflows-4 and finds the Great Attractor (GA) at
(l, b) = (308.4° ± 2.4, 29.0° ± 1.9), cz = 4960 ± 404 km/s in 64 % of 1,000 HAMLET
realizations. Without CF4 data in the build, this module makes a *mock* local universe
whose structures sit at their literature positions (``data/known_structures.csv``):

1. a constrained realization (Hoffman & Ribak 1991) of the linear density field: a
   Gaussian field drawn from P(k), corrected so that its Gaussian-smoothed value at each
   structure equals a prescribed height, δ = δ̃ + Σ_ij ξ_i(x) (C⁻¹)_ij (c_j − c̃_j), with
   ξ_i(x) = ⟨δ(x) c_i⟩ and C_ij = ⟨c_i c_j⟩ computed exactly for the discrete field;
2. evolved with the same 2LPT as the training mocks, observed from the box centre with
   the parent axes taken as the supergalactic axes (no rotation);
3. surveyed like CF4 many times (independent galaxy draws and distance errors), each
   realization gridded and given to the trained networks;
4. the GA located in each predicted density field as the highest peak within
   ``local_universe.ga_match_radius`` Mpc/h of its literature position.

Heights: attractors get ν σ_s (ν = 3 for the GA, 2 for the clusters), voids −1.5 σ_s,
where σ_s is the rms of the linear field smoothed on ``constraint_smoothing`` Mpc/h —
a choice of this module, not of the paper. Distances: d = cz / H0 (Mpc/h, H0 = 100).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft as sfft

from .cosmology import H0, from_profile
from .errors import ZoaError
from .fields import fft_workers, gaussian_kernel_k
from .rng import generator

#: Height ν (in units of σ_s) of each kind of constraint; the GA is the strongest.
HEIGHTS = {"Great Attractor": 3.0, "attractor": 2.0, "void": -1.5}
GREAT_ATTRACTOR = "Great Attractor"


class LocalUniverseError(ZoaError, ValueError):
    """Bad structure table or constraint set."""


@dataclass(frozen=True)
class Structure:
    """A known structure: Galactic (l, b) in deg, cz in km/s, SG position in Mpc/h."""

    name: str
    l: float
    b: float
    cz: float
    kind: str
    reference: str
    sg: tuple[float, float, float]

    @property
    def distance(self) -> float:
        """cz / H0 in Mpc/h."""
        return self.cz / H0


def known_structures(path=None) -> list[Structure]:
    """Read the shipped (or given) structure table; SG positions via astropy."""
    from .book import KNOWN_STRUCTURES
    from .survey import galactic_to_sg

    path = Path(path or KNOWN_STRUCTURES)
    rows = [r for r in csv.DictReader(line for line in path.open(encoding="utf-8") if not line.startswith("#"))]
    if not rows:
        raise LocalUniverseError(f"{path}: no structures")
    out = []
    for i, r in enumerate(rows, start=1):
        try:
            l, b, cz = float(r["l"]), float(r["b"]), float(r["cz"])
        except (KeyError, TypeError, ValueError) as e:
            raise LocalUniverseError(f"{path}: row {i}: bad or missing l, b, cz ({e})") from None
        if r.get("kind") not in ("attractor", "void"):
            raise LocalUniverseError(f"{path}: row {i}: kind must be attractor or void, got {r.get('kind')!r}")
        x, y, z = galactic_to_sg(np.array([l]), np.array([b]), np.array([cz / H0]))
        out.append(Structure(r["name"], l, b, cz, r["kind"], r.get("reference", ""),
                             (float(x[0]), float(y[0]), float(z[0]))))
    return out


def constraint_heights(structures, sigma_s: float) -> np.ndarray:
    """Smoothed linear δ imposed at each structure (module docstring)."""
    return np.array([sigma_s * HEIGHTS.get(s.name if s.name == GREAT_ATTRACTOR else s.kind, 0.0)
                     for s in structures])


def _node_index(positions, size: float, mesh: int) -> np.ndarray:
    """Nearest mesh node (i·L/M, the particles' lattice) of box positions, (m, 3) int."""
    return np.mod(np.rint(np.asarray(positions, float) / (size / mesh)).astype(int), mesh)


@dataclass
class ConstrainedField:
    """A constrained realization: the linear field, the constraints and what they reach."""

    delta: np.ndarray          # (M, M, M) float32 linear δ at z = 0
    nodes: np.ndarray          # (m, 3) mesh nodes of the constraints
    targets: np.ndarray        # (m,) imposed smoothed δ
    achieved: np.ndarray       # (m,) smoothed δ of the result at the nodes
    unconstrained: np.ndarray  # (m,) smoothed δ of the random field before correction
    sigma_s: float             # rms of the smoothed linear field


def smoothing_covariances(cosmo, size: float, mesh: int, smoothing: float):
    """(ξ_W, ξ_WW, σ_s): covariance of δ with the smoothed field, of the smoothed field
    with itself (mesh³ arrays indexed by separation), and σ_s = √ξ_WW(0), exactly for
    :func:`zoa_lib.simulation.gaussian_field` on this mesh."""
    from .simulation import mode_variance

    var = mode_variance(cosmo, size, mesh)
    W = gaussian_kernel_k(mesh, size, smoothing)
    s = (mesh,) * 3
    xi_w = sfft.irfftn(var * W, s=s, workers=fft_workers())
    xi_ww = sfft.irfftn(var * W * W, s=s, workers=fft_workers())
    return xi_w, xi_ww, float(np.sqrt(xi_ww[0, 0, 0]))


def smoothed(delta: np.ndarray, size: float, smoothing: float) -> np.ndarray:
    """δ convolved with the Gaussian of ``smoothing`` Mpc/h (periodic, float64)."""
    mesh = delta.shape[0]
    W = gaussian_kernel_k(mesh, size, smoothing)
    w = fft_workers()
    return sfft.irfftn(sfft.rfftn(delta.astype(np.float64), workers=w) * W, s=delta.shape, workers=w)


def constrained_field(cosmo, size: float, mesh: int, positions, values, rng: np.random.Generator,
                      smoothing: float) -> ConstrainedField:
    """Hoffman–Ribak constrained realization on a periodic box.

    positions : (m, 3) box coordinates (Mpc/h) of the constraints, moved to the nearest
    mesh node; values : (m,) smoothed δ to impose there (``None`` entries not allowed);
    smoothing : Gaussian σ of the constraints (Mpc/h)."""
    from .simulation import gaussian_field

    nodes = _node_index(positions, size, mesh)
    values = np.asarray(values, float)
    if len({tuple(n) for n in nodes}) != len(nodes):
        raise LocalUniverseError("two constraints fall on the same mesh node: use a finer mesh")
    xi_w, xi_ww, sigma_s = smoothing_covariances(cosmo, size, mesh, smoothing)
    field = gaussian_field(cosmo, size, mesh, rng).astype(np.float64)
    c0 = smoothed(field, size, smoothing)[tuple(nodes.T)]
    sep = np.mod(nodes[None, :, :] - nodes[:, None, :], mesh)
    C = xi_ww[sep[..., 0], sep[..., 1], sep[..., 2]]
    coef = np.linalg.solve(C, values - c0)
    for a, node in zip(coef, nodes):
        field += a * np.roll(xi_w, shift=tuple(node), axis=(0, 1, 2))
    achieved = smoothed(field, size, smoothing)[tuple(nodes.T)]
    return ConstrainedField(field.astype(np.float32), nodes, values, achieved, c0, sigma_s)


def local_universe_box(profile, realization: int = 0):
    """(ParentBox, ConstrainedField, structures): the constrained parent box with the
    observer at its centre, evolved with the profile's LPT."""
    from .simulation import ParentBox, particles_from_ics

    sim = profile.simulation
    cosmo = from_profile(profile)
    structures = known_structures()
    size, mesh = float(sim.parent_size), int(sim.parent_mesh)
    pos = np.array([s.sg for s in structures]) + size / 2
    _, _, sigma_s = smoothing_covariances(cosmo, size, mesh, profile.local_universe.constraint_smoothing)
    cf = constrained_field(cosmo, size, mesh, pos, constraint_heights(structures, sigma_s),
                           generator(profile.seed, "local_universe", 0, int(realization)),
                           profile.local_universe.constraint_smoothing)
    p, v = particles_from_ics(cf.delta, size, cosmo, sim.lpt_order)
    box = ParentBox(size=size, mesh=mesh, positions=p, velocities=v, delta_lin=cf.delta,
                    box_index=-1 - int(realization), seed=int(profile.seed))
    return box, cf, structures


def local_universe_cube(profile, box):
    """The observer cube at the box centre; parent axes are the SG axes (identity rotation)."""
    from .simulation import cut_cube

    return cut_cube(box, np.full(3, box.size / 2), np.eye(3, dtype=np.int8), profile.box.size)


def survey_realizations(profile, cube, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """n CF4-like surveys of the same cube (independent galaxies and distance errors):
    [(catalog, inputs (N, N, N, 2))], the ZOA masked as in the training mocks."""
    from .survey import draw_galaxies, grid_catalog

    out = []
    for i in range(n):
        cat = draw_galaxies(cube, profile.survey, generator(profile.seed, "local_universe", 1, i),
                            profile.box.size, sample=i)
        inp = grid_catalog(cat, profile.box.size, profile.box.grid, position=profile.survey.grid_position,
                           error_weighting=profile.survey.error_weighting)
        out.append((cat, inp))
    return out


def locate_attractor(delta, size: float, guess_sg, search_radius: float) -> dict:
    """The highest density peak within ``search_radius`` (Mpc/h) of ``guess_sg``.

    The peak is refined to the δ-weighted centre of its 3×3×3 neighbourhood (positive δ
    only). ``found``: the peak is a local maximum with δ > 0 that does not sit on the
    search sphere's edge. Returns l, b (deg), cz (km/s, = H0 d), sg (Mpc/h), peak δ."""
    from .fields import voxel_centres
    from .survey import sg_to_galactic

    delta = np.asarray(delta, float)
    n = delta.shape[0]
    x = voxel_centres(size, n)
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    g = np.asarray(guess_sg, float)
    dist = np.sqrt((X - g[0]) ** 2 + (Y - g[1]) ** 2 + (Z - g[2]) ** 2)
    inside = dist <= search_radius
    if not inside.any():
        raise LocalUniverseError(f"no voxel within {search_radius} Mpc/h of {g.tolist()}")
    masked = np.where(inside, delta, -np.inf)
    i, j, k = np.unravel_index(np.argmax(masked), delta.shape)
    sl = tuple(slice(max(a - 1, 0), min(a + 2, n)) for a in (i, j, k))
    w = np.clip(delta[sl], 0, None)
    if w.sum() > 0:
        sg = np.array([(c[sl] * w).sum() / w.sum() for c in (X, Y, Z)])
    else:
        sg = np.array([X[i, j, k], Y[i, j, k], Z[i, j, k]])
    local_max = delta[i, j, k] >= delta[sl].max()
    on_edge = dist[i, j, k] > search_radius - size / n
    l, b, d = sg_to_galactic(sg[0:1], sg[1:2], sg[2:3])
    return {"l": float(l[0]) % 360.0, "b": float(b[0]), "cz": float(H0 * d[0]), "sg": sg.tolist(),
            "peak_delta": float(delta[i, j, k]),
            "found": bool(local_max and delta[i, j, k] > 0 and not on_edge)}


def attractor_statistics(results) -> dict:
    """Mean and scatter of (l, b, cz) over the realizations that found the attractor
    (circular mean and standard deviation for l), and the fraction that found it."""
    found = [r for r in results if r["found"]]
    out = {"n": len(results), "n_found": len(found),
           "fraction_found": len(found) / len(results) if results else float("nan")}
    if not found:
        return out
    lr = np.radians([r["l"] for r in found])
    C, S = np.mean(np.cos(lr)), np.mean(np.sin(lr))
    Rbar = np.hypot(C, S)
    out.update(l_mean=float(np.degrees(np.arctan2(S, C)) % 360.0),
               l_std=float(np.degrees(np.sqrt(max(-2 * np.log(max(Rbar, 1e-300)), 0.0)))),
               b_mean=float(np.mean([r["b"] for r in found])), b_std=float(np.std([r["b"] for r in found])),
               cz_mean=float(np.mean([r["cz"] for r in found])), cz_std=float(np.std([r["cz"] for r in found])))
    return out

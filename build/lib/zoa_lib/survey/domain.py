"""Is a catalogue like the mocks a profile's networks were trained on?

A network trained on mocks of one selection says nothing reliable about a catalogue of another
(a partial sky, galaxies far beyond the mocks' depth, a tenth of the galaxies). Before
``zoa reconstruct`` runs a trained method (the V-Net, and the calibrated Wiener filter whose
Malmquist correction was measured on the same mocks) it compares the catalogue with the
training mocks' own catalogues (:func:`training_reference`) on four axes (:func:`check`):

``sky``
    the fraction of the training sky (HEALPix pixels of nside :data:`NSIDE`, Galactic, that
    the training mocks fill) left empty by the catalogue, and the fraction of the catalogue's
    galaxies in the cube that sit where the training mocks have none; each at most
    :data:`SKY_LIMIT`.
``n(s)``
    the two-sample Kolmogorov–Smirnov distance D between the redshift distances s = d_C(cz/c)
    (Mpc/h) of the galaxies observed inside the cube, real and mock; at most :data:`KS_LIMIT`.
``n_in_cube``
    the ratio of the numbers of galaxies gridded in the cube, within [1/:data:`RATIO_LIMIT`,
    :data:`RATIO_LIMIT`] of the mocks' median.
``v_rms``
    the ratio of the rms observed radial velocities in the cube, within the same bounds.

Each failure is a :class:`Mismatch`; :func:`summary_line` makes the one line the CLI prints.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from zoa_lib.errors import ZoaError

#: HEALPix resolution of the sky comparison (≈ 54 deg² pixels).
NSIDE = 8
#: Largest fraction of the training sky a catalogue may leave empty, and of its galaxies
#: that may sit where the training mocks have none.
SKY_LIMIT = 0.10
#: Largest Kolmogorov–Smirnov distance between the real and mock n(s) in the cube.
KS_LIMIT = 0.12
#: Largest ratio (either way) of the galaxy counts, and of the velocity rms, in the cube.
RATIO_LIMIT = 1.5
#: Training mocks read for the reference (from the shards)...
N_REFERENCE = 8
#: ...or drawn afresh when there are no shards (one per parent box).
N_DRAWN = 4


class DomainError(ZoaError, ValueError):
    """No reference to compare a catalogue with."""


@dataclass(frozen=True)
class Mismatch:
    """One axis on which a catalogue differs from the training mocks: ``key`` (sky, sky_extra,
    n_s, n_in_cube, v_rms), the catalogue's value, the mocks' value, the limit, a sentence."""

    key: str
    real: float
    trained: float
    limit: float
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


def training_reference(profile, n: int = N_REFERENCE) -> list[np.ndarray]:
    """Catalogues of up to ``n`` training mocks of ``profile``: read from its shards when they
    exist (``data/<profile>/mocks``), else :data:`N_DRAWN` drawn afresh, one per training parent
    box (:func:`zoa_lib.survey.mocks.make_sample`: the same bytes the shards would hold)."""
    from zoa_lib.survey import mocks, shards

    out = []
    folder = shards.mocks_dir(profile)
    try:
        paths = shards.shard_paths(folder, "train") if folder.is_dir() else []
    except ZoaError:
        paths = []
    for p in paths:
        try:
            cat = shards.read_shard(p).catalog
        except (ZoaError, OSError):
            continue
        for s in np.unique(cat["sample"])[: n - len(out)]:
            out.append(cat[cat["sample"] == s])
        if len(out) >= n:
            return out
    if out:
        return out
    lo, hi = mocks.split_ranges(profile)["train"]
    step = max(1, int(profile.simulation.observers_per_box))  # one mock per parent box: independent
    for s in list(range(lo, hi, step))[:min(n, N_DRAWN)]:
        out.append(mocks.make_sample(profile, s).catalog)
    if not out:
        raise DomainError(f"profile {profile.name!r} has no training mocks to compare a catalogue with")
    return out


def _cube_rows(cat, box_size: float) -> np.ndarray:
    from zoa_lib.survey.selection import in_cube

    return np.asarray(cat)[in_cube(cat, box_size)]


def check(catalog, reference, box_size: float) -> list[Mismatch]:
    """The axes (module docstring) on which ``catalog`` differs from the ``reference`` mock
    catalogues (a list of tables of :data:`zoa_lib.survey.shards.CATALOG_DTYPE`); empty when it is alike."""
    from scipy.stats import ks_2samp

    from zoa_lib.survey.selection import redshift_distances, sky_pixels

    if not reference:
        raise DomainError("no reference mocks to compare the catalogue with")
    real = _cube_rows(catalog, box_size)
    mocks_in = [_cube_rows(c, box_size) for c in reference]
    pooled = np.concatenate(mocks_in)
    out = []
    npix = 12 * NSIDE * NSIDE
    # the training sky: the pixels filled in more than half of the training mocks
    filled = np.mean([np.bincount(sky_pixels(c["l"], c["b"], NSIDE), minlength=npix) > 0 for c in mocks_in], axis=0)
    train_sky = filled > 0.5
    real_pix = sky_pixels(real["l"], real["b"], NSIDE) if real.size else np.zeros(0, np.int64)
    real_sky = np.bincount(real_pix, minlength=npix) > 0
    empty = float(np.mean(~real_sky[train_sky])) if train_sky.any() else 0.0
    if empty > SKY_LIMIT:
        out.append(Mismatch("sky", empty, 0.0, SKY_LIMIT,
                            f"{100 * empty:.0f}% of the training sky holds no galaxy of this catalogue"))
    extra = float(np.mean(~train_sky[real_pix])) if real_pix.size else 0.0
    if extra > SKY_LIMIT:
        out.append(Mismatch("sky_extra", extra, 0.0, SKY_LIMIT,
                            f"{100 * extra:.0f}% of its galaxies in the cube lie where the training mocks have none "
                            "(e.g. in their Zone of Avoidance)"))
    if real.size and pooled.size:
        s_real, s_mock = redshift_distances(real), redshift_distances(pooled)
        D = float(ks_2samp(s_real, s_mock).statistic)
        if D > KS_LIMIT:
            med_r, med_m = np.median(s_real), np.median(s_mock)
            out.append(Mismatch("n_s", D, 0.0, KS_LIMIT,
                                f"its n(s) in the cube differs (KS D = {D:.2f}; median redshift distance "
                                f"{med_r:.0f} against {med_m:.0f} Mpc/h)"))
    n_mock = float(np.median([len(c) for c in mocks_in]))
    ratio = len(real) / max(n_mock, 1.0)
    if not 1.0 / RATIO_LIMIT <= ratio <= RATIO_LIMIT:
        out.append(Mismatch("n_in_cube", float(len(real)), n_mock, RATIO_LIMIT,
                            f"{len(real)} galaxies in the cube against {n_mock:.0f} in a training mock"))
    if real.size and pooled.size:
        v_real = float(np.sqrt(np.mean(np.asarray(real["v_r_obs"], np.float64) ** 2)))
        v_mock = float(np.sqrt(np.mean(np.asarray(pooled["v_r_obs"], np.float64) ** 2)))
        rv = v_real / max(v_mock, 1e-9)
        if not 1.0 / RATIO_LIMIT <= rv <= RATIO_LIMIT:
            out.append(Mismatch("v_rms", v_real, v_mock, RATIO_LIMIT,
                                f"its radial velocities in the cube have an rms of {v_real:.0f} km/s against "
                                f"{v_mock:.0f} in the training mocks"))
    return out


def summary_line(mismatches, source: str, profile) -> str:
    """One line: what differs, and how to train networks that match (or ``--force``)."""
    what = "; ".join(m.message for m in mismatches)
    return (f"{source}: unlike the mocks the networks of profile {profile.name!r} were trained on — {what}. "
            f"Train networks on mocks that copy it (`zoa run --profile {profile.name} -p survey.catalogue={source}`, "
            f"or a profile with that key), or pass --force to reconstruct anyway (the mismatch is recorded)")

"""The calibration of the classical methods on training mocks (never test mocks).
"""
from __future__ import annotations

import math

import numpy as np

from zoa_lib.errors import ZoaError
from zoa_lib.methods import baselines


class CalibrationError(ZoaError, ValueError):
    """The classical methods cannot be calibrated: no training shards."""


#: Training mocks used to measure the radial bias of ``wiener_cal`` and σ_nl.
N_CALIBRATION = 64


def _train_shards(profile):
    from zoa_lib.survey import shards

    for p in shards.shard_paths(shards.mocks_dir(profile), "train"):
        shards.validate_shard(p, grid=profile.box.grid)
        yield p


def _train_fields(profile, n_max, names=("inputs", "targets/velocity")):
    """Yield the datasets ``names`` (a tuple) of up to ``n_max`` training mocks, one mock at a time."""
    import h5py

    got = 0
    for p in _train_shards(profile):
        with h5py.File(p, "r") as f:
            for i in range(f["inputs"].shape[0]):
                if got >= n_max:
                    return
                yield tuple(f[name][i] for name in names)
                got += 1


def _train_mocks(profile, n_max):
    """Yield (inputs, velocity) of up to ``n_max`` training mocks, one at a time."""
    return _train_fields(profile, n_max, ("inputs", "targets/velocity"))


def _train_catalogs(profile, n_max):
    """Yield (catalog rows, velocity) of up to ``n_max`` training mocks, one at a time."""
    import h5py

    from zoa_lib.survey.shards import CATALOG_DTYPE

    got = 0
    for p in _train_shards(profile):
        with h5py.File(p, "r") as f:
            cat = f["catalog"][()] if "catalog" in f else np.zeros(0, CATALOG_DTYPE)
            samples = f["samples"][()]
            for i in range(f["inputs"].shape[0]):
                if got >= n_max:
                    return
                yield (cat[cat["sample"] == samples[i]] if len(cat) else cat), f["targets/velocity"][i]
                got += 1


def has_training_shards(profile) -> bool:
    """Whether the manifest lists training shards that exist."""
    from zoa_lib.survey import shards

    try:
        return any(p.exists() for p in shards.shard_paths(shards.mocks_dir(profile), "train"))
    except ZoaError:
        return False


def calibration(profile, n_max: int = N_CALIBRATION) -> "baselines.RadialBias":
    """What the classical methods learn from training mocks: the radial bias profile b(r)
    of the gridded V_pec (:func:`zoa_lib.methods.baselines.radial_bias`) and, in its ``sigma_nl``,
    the small-scale velocity dispersion of galaxies about the smoothed field
    (:func:`zoa_lib.methods.baselines.velocity_dispersion`, galaxies within ``survey.r_max``; None
    when the shards carry no catalog)."""
    if not has_training_shards(profile):
        raise CalibrationError(f"{profile.data_path / 'mocks'}: no training shards to calibrate "
                              f"'wiener_cal'; run `zoa mocks --profile {profile.name}` or leave the "
                              f"method out")
    bias = baselines.radial_bias(_train_mocks(profile, n_max), profile.box.size)
    disp = baselines.velocity_dispersion(_train_catalogs(profile, n_max), profile.box.size,
                                         r_max=profile.survey.r_max)
    if math.isfinite(disp["sigma_nl"]):
        bias.sigma_nl, bias.n_galaxies = disp["sigma_nl"], disp["n_galaxies"]
    return bias


def _train_counts(profile, n_max):
    """Yield (inputs, δ target) of up to ``n_max`` training mocks, one at a time."""
    return _train_fields(profile, n_max, ("inputs", "targets/delta"))


def counts_calibration(profile, n_max: int | None = None):
    """What the joint Wiener filter learns from training mocks (never test mocks): the expected
    galaxies per voxel n̄, the linear bias b and the shot-noise factor α of the galaxy counts
    (:func:`zoa_lib.methods.wiener_joint.fit_counts_model`), from up to ``n_max`` (default every)
    training mocks."""
    from zoa_lib.methods import wiener_joint

    if not has_training_shards(profile):
        raise CalibrationError(f"{profile.data_path / 'mocks'}: no training shards to calibrate "
                              f"'wiener_joint'; run `zoa mocks --profile {profile.name}` or leave the "
                              f"method out")
    n_max = profile.mocks.n_train if n_max is None else n_max
    return wiener_joint.fit_counts_model(lambda: _train_counts(profile, n_max), profile.box.size,
                                         r_max=profile.survey.r_max)

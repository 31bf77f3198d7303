"""Gridding at corrected positions (``survey.grid_position: corrected``).

A corrected catalogue (the paper's HAMLET-corrected CF4 realizations) puts each galaxy at
its true distance plus a residual scatter σ = √(corrected_scatter² + (fraction d_true)²)
along its line of sight. Checked here against the stated σ (statistically, from the grid
itself), the shard attrs that say which positions the inputs hold, and the one-line errors.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from zoa_lib.config import ProfileError, load_profile
from zoa_lib.survey import distances, galaxies, mocks
from zoa_lib.survey.shards import CATALOG_DTYPE

L = 160.0


def line_catalog(n=40000, d=60.0, sample=3):
    """n galaxies on one line of sight (SGX axis) at true distance d, observed at 1.3 d."""
    cat = np.zeros(n, CATALOG_DTYPE)
    cat["sample"] = sample
    cat["d_true"] = d
    cat["d_obs"] = 1.3 * d
    cat["SGX"] = 1.3 * d
    cat["v_r_obs"] = 100.0
    cat["sigma_v"] = 300.0
    return cat


@pytest.mark.parametrize("scatter,fraction", [(2.0, 0.0), (0.0, 0.05), (2.0, 0.05)])
def test_corrected_grid_sits_within_the_stated_scatter_of_the_true_positions(scatter, fraction):
    """The N_gal channel along the line of sight: mean at d_true, width √(σ² + Δ²/12)
    (σ the stated scatter, Δ the voxel: nearest-grid-point binning), within 3 %."""
    d, grid = 60.0, 128
    cat = line_catalog(d=d)
    inputs = galaxies.grid_catalog(cat, L, grid, position="corrected", corrected_scatter=scatter,
                                 corrected_fraction=fraction)
    assert inputs[..., 0].sum() == len(cat)  # none leaves the cube at 60 Mpc/h
    h = L / grid
    line = inputs[:, grid // 2, grid // 2, 0]
    assert line.sum() == len(cat)  # all on the one line: the direction is exact
    x = -L / 2 + (np.arange(grid) + 0.5) * h
    mean = (line * x).sum() / line.sum()
    sd = np.sqrt((line * (x - mean) ** 2).sum() / line.sum())
    sigma = np.hypot(scatter, fraction * d)
    assert mean == pytest.approx(d, abs=4 * sigma / np.sqrt(len(cat)) + h / 10)
    assert sd == pytest.approx(np.sqrt(sigma ** 2 + h ** 2 / 12), rel=0.03)
    # the observed and true modes put the same galaxies at 1.3 d and at d, exactly
    obs = galaxies.grid_catalog(cat, L, grid, position="observed")
    tru = galaxies.grid_catalog(cat, L, grid, position="true")
    assert obs[grid // 2 + int(1.3 * d // h), grid // 2, grid // 2, 0] == len(cat)
    assert tru[grid // 2 + int(d // h), grid // 2, grid // 2, 0] == len(cat)
    # the velocity channel is the observed velocity in every mode
    assert np.all(inputs[..., 1][line_mask(inputs)] == 100.0)


def line_mask(inputs):
    return inputs[..., 0] > 0


def test_corrected_distances_are_gaussian_about_the_truth():
    """Per galaxy (not binned): (d_corr − d_true)/σ has mean 0 and standard deviation 1."""
    g = np.random.default_rng(5)
    d = g.uniform(5.0, 80.0, 50000)
    out = galaxies.corrected_distances(d, 1.5, 0.05, np.random.default_rng(6))
    z = (out - d) / np.hypot(1.5, 0.05 * d)
    assert abs(z.mean()) < 4 / np.sqrt(d.size)
    assert z.std() == pytest.approx(1.0, abs=0.02)
    assert np.all(out > 0)
    assert np.array_equal(galaxies.corrected_distances(d, 0.0, 0.0, np.random.default_rng(6)), d)


def test_corrected_positions_are_a_pure_function_of_the_catalog():
    cat = line_catalog(n=2000)
    a = galaxies.catalog_positions(cat, "corrected", corrected_scatter=2.0, corrected_fraction=0.0)
    b = galaxies.catalog_positions(cat.copy(), "corrected", corrected_scatter=2.0, corrected_fraction=0.0)
    np.testing.assert_array_equal(a, b)
    other = line_catalog(n=2000, sample=4)  # another mock: other draws
    c = galaxies.catalog_positions(other, "corrected", corrected_scatter=2.0, corrected_fraction=0.0)
    assert not np.array_equal(a, c)
    np.testing.assert_allclose(a[:, 1:], 0.0)  # on the line of sight


def test_bad_corrected_input_gives_one_line_errors():
    cat = line_catalog(n=10)
    with pytest.raises(distances.SurveyError, match="corrected_scatter") as e:
        galaxies.grid_catalog(cat, L, 8, position="corrected")  # no scatter given
    assert "\n" not in str(e.value)
    with pytest.raises(distances.SurveyError, match="'observed', 'true', 'corrected'") as e:
        galaxies.grid_catalog(cat, L, 8, position="hamlet")
    assert "\n" not in str(e.value)
    real = cat.copy()
    real["d_true"] = np.nan
    with pytest.raises(distances.SurveyError, match="true distances"):
        galaxies.grid_catalog(real, L, 8, position="corrected", corrected_scatter=1.0)


@pytest.mark.parametrize("overrides,key", [
    ({"survey.grid_position": "hamlet"}, "survey.grid_position"),
    ({"survey.corrected_scatter": -1.0}, "survey.corrected_scatter"),
    ({"survey.corrected_scatter_fraction": 1.5}, "survey.corrected_scatter_fraction"),
])
def test_profile_with_unknown_mode_fails_with_one_clear_line(overrides, key):
    with pytest.raises(ProfileError, match=key) as e:
        load_profile("ci", overrides)
    assert "\n" not in str(e.value)
    if key == "survey.grid_position":
        assert "'corrected'" in str(e.value)


def test_checksum_ignores_scatter_keys_unless_corrected():
    """Existing observed-distance data sets keep their checksum; a corrected profile's
    scatter is part of it."""
    ci = load_profile("ci")
    assert mocks.config_checksum(ci) == mocks.config_checksum(load_profile("ci", {"survey.corrected_scatter": 3.0}))
    c1 = load_profile("ci", {"survey.grid_position": "corrected"})
    c2 = load_profile("ci", {"survey.grid_position": "corrected", "survey.corrected_scatter": 3.0})
    assert len({mocks.config_checksum(p) for p in (ci, c1, c2)}) == 3


@pytest.mark.parametrize("mode", ["observed", "corrected"])
def test_shards_state_which_positions_they_grid(tmp_path, mode):
    """One one-mock shard per mode: the file's and the inputs dataset's ``grid_position``
    attrs, the scatter attrs for ``corrected``, and inputs = the stored catalogue gridded
    again with the profile (the corrected draw is reproducible from the shard alone)."""
    p = load_profile("ci", {"survey.grid_position": mode, "survey.corrected_scatter": 1.5,
                            "survey.n_galaxies": 1500})
    spec = mocks.ShardSpec(0, "one.h5", "train", 0, 1)
    mocks.make_shard(p, spec, tmp_path)
    with h5py.File(tmp_path / "one.h5") as f:
        assert f.attrs["grid_position"] == mode
        assert f["inputs"].attrs["grid_position"] == mode
        assert f.attrs["grid_position_note"] == mocks.GRID_POSITION_NOTES[mode]
        if mode == "corrected":
            assert f.attrs["corrected_scatter"] == 1.5
            assert f.attrs["corrected_scatter_fraction"] == p.survey.corrected_scatter_fraction
        else:
            assert "corrected_scatter" not in f.attrs
        cat = f["catalog"][...]
        inputs = f["inputs"][0]
    assert len(cat) > 500
    np.testing.assert_array_equal(inputs, galaxies.grid_inputs(cat, p))
    if mode == "corrected":  # differs from the observed and from the true grid
        obs = galaxies.grid_catalog(cat, p.box.size, p.box.grid, position="observed")
        tru = galaxies.grid_catalog(cat, p.box.size, p.box.grid, position="true")
        assert not np.array_equal(inputs[..., 0], obs[..., 0])
        assert not np.array_equal(inputs[..., 0], tru[..., 0])
        # closer to the true grid than the observed one is (σ_μ = 0.4 mag ≫ 1.5 Mpc/h + 5 %)
        assert np.abs(inputs[..., 0] - tru[..., 0]).sum() < np.abs(obs[..., 0] - tru[..., 0]).sum()


"""``zoa reconstruct`` (zoa_lib.analysis.reconstruct): the documented HDF5 + JSON schema on the real CF4
table at the ci profile, one-line errors with exit status 2, realizations' mean and scatter."""
from __future__ import annotations

import json
import math

import astropy.units as u
import h5py
import numpy as np
import pytest
from astropy.coordinates import CartesianRepresentation, SkyCoord

from zoa_lib.analysis import ga_search
from zoa_lib.analysis import reconstruct as rc
from zoa_lib.cli import main
from zoa_lib.config import load_profile
from zoa_lib.methods import calibration, reconstruction, registry
from zoa_lib.methods.training import fitting, inference, model_files
from zoa_lib.survey import catalogs, mock_set
from zoa_lib.universe import velocity
from zoa_lib.universe.cosmology import from_profile


@pytest.fixture(scope="module")
def ci():
    return load_profile("ci")


def positions_table(path, xyz, vr, sigma=150.0):
    lines = ["# one realization: SG positions (Mpc/h), radial velocities (km/s)", "SGX,SGY,SGZ,v_r,e_v"]
    lines += [f"{x:.4f},{y:.4f},{z:.4f},{v:.2f},{sigma}" for (x, y, z), v in zip(xyz, vr)]
    path.write_text("\n".join(lines) + "\n")
    return path


def realization(path, seed, n=400):
    g = np.random.default_rng(seed)
    xyz = g.uniform(-75, 75, (n, 3))
    return positions_table(path, xyz, 300 * xyz[:, 0] / 75 + g.normal(0, 100, n))


def one_line_error(capsys, argv, words):
    assert main(argv) == 2
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert err.startswith(f"zoa {argv[0]}: error: ") and "\n" not in err and not cap.out, cap
    for w in words:
        assert w in err, (w, err)
    return err


# --------------------------------------------------------------------------- arguments and errors
def test_methods_radii_and_paths(ci, tmp_path):
    def parse(methods):
        return registry.parse_methods(methods, registry.SEARCH_METHODS, rc.DEFAULT_METHODS)

    assert parse(None) == ["vnet", "wiener_cal"]
    assert parse("potent, wiener,potent") == ["wiener", "potent"]  # the table's order, whatever the typed one
    with pytest.raises(registry.MethodError, match=r"unknown method 'kriging' \(known: vnet, wiener, wiener_cal"):
        parse(["vnet", "kriging"])
    with pytest.raises(registry.MethodError, match="empty method name"):
        parse("vnet,,wiener")
    assert list(rc.bulk_flow_radii(ci)) == [10, 20, 30, 40, 50, 60, 70, 80]  # ci: 10 Mpc/h voxels
    assert list(rc.bulk_flow_radii(load_profile("laptop"))) == list(np.arange(5, 81, 5))
    assert list(rc.bulk_flow_radii(ci, "37,50")) == [37, 50]
    with pytest.raises(rc.ReconstructError, match="at most L/2 = 80 Mpc/h"):
        rc.bulk_flow_radii(ci, [50, 81])
    assert rc.bulk_flow_path(tmp_path / "cf4.h5") == tmp_path / "cf4.bulk_flows.json"
    with pytest.raises(rc.ReconstructError, match="matches no file"):
        rc.catalog_paths(str(tmp_path / "hamlet-*.csv"))
    for i in (1, 0):
        realization(tmp_path / f"r-{i}.csv", i)
    assert [p.name for p in rc.catalog_paths(str(tmp_path / "r-*.csv"))] == ["r-0.csv", "r-1.csv"]


def test_unknown_method_exit_2_one_line(zoa_data, tmp_path, capsys):
    out = tmp_path / "x.h5"
    one_line_error(capsys, ["reconstruct", str(catalogs.CF4_SAMPLE), "--profile", "ci", "--output", str(out),
                            "--methods", "vnet,kriging"], ["unknown method 'kriging'", "known: vnet"])
    assert not out.exists()


def test_catalogue_outside_the_cube_exit_2_one_line(zoa_data, tmp_path, capsys):
    g = np.random.default_rng(1)
    far = positions_table(tmp_path / "far.csv", g.uniform(90, 300, (50, 3)), g.normal(0, 300, 50))
    out = tmp_path / "far.h5"
    one_line_error(capsys, ["reconstruct", str(far), "--profile", "ci", "--output", str(out), "--methods", "potent"],
                   ["far.csv: all 50 galaxies lie outside the 160 Mpc/h cube", "nothing to reconstruct"])
    assert not out.exists() and not rc.bulk_flow_path(out).exists()
    # checked before the models: the same line when none is trained
    one_line_error(capsys, ["reconstruct", str(far), "--profile", "ci", "--output", str(out)], ["outside the 160 Mpc/h"])


def test_missing_models_name_zoa_train_and_train_nothing(zoa_data, tmp_path, capsys):
    out = tmp_path / "cf4.h5"
    one_line_error(capsys, ["reconstruct", str(catalogs.CF4_SAMPLE), "--profile", "ci", "--output", str(out),
                            "--methods", "vnet"],
                   ["no trained V-Net for profile 'ci'", "`zoa train --profile ci --target delta`",
                    "`zoa train --profile ci --target phi`", "leave vnet out of --methods"])
    assert not out.exists() and not (zoa_data / "ci" / "models").exists()
    # wiener_cal without training mocks or models: the command that makes them
    one_line_error(capsys, ["reconstruct", str(catalogs.CF4_SAMPLE), "--profile", "ci", "--output", str(out),
                            "--methods", "wiener_cal"], ["`zoa mocks --profile ci`"])


def test_glob_of_realizations_mean_scatter_and_bulk_flows(ci, zoa_data, tmp_path):
    for i in range(3):
        realization(tmp_path / f"real-{i:03d}.csv", 10 + i)
    rec = rc.reconstruct_catalogs(ci, str(tmp_path / "real-*.csv"), "wiener,potent", radii=[20, 40, 80],
                                  keep_realizations=True, batch=2)
    assert rec.n == 3 and [c.path.endswith(f"real-{i:03d}.csv") for i, c in enumerate(rec.catalogs)] == [True] * 3
    one = [rc.reconstruct_catalogs(ci, tmp_path / f"real-{i:03d}.csv", ["wiener", "potent"], radii=[20, 40, 80])
           for i in range(3)]
    for m in ("wiener", "potent"):
        for k in ("delta", "phi", "velocity"):
            stack = np.stack([o.fields[m][k] for o in one])
            np.testing.assert_allclose(rec.realizations[m][k], stack, rtol=1e-5, atol=1e-3 * np.abs(stack).max())
            np.testing.assert_allclose(rec.fields[m][k], stack.mean(0), rtol=1e-4, atol=1e-5 * np.abs(stack).max())
            np.testing.assert_allclose(rec.scatter[m][k], stack.std(0, ddof=1), rtol=1e-3,
                                       atol=1e-4 * np.abs(stack).max())
        # the realizations' bulk flows are velocity.bulk_flow_profile's
        for i in range(3):
            np.testing.assert_allclose(rec.bulk_flows[m][i], velocity.bulk_flow_profile(
                rec.realizations[m]["velocity"][i], ci.box.size, [20, 40, 80]), rtol=1e-5, atol=1e-3)
    h5, js = rc.write(rec, tmp_path / "hamlet.h5")
    back = rc.read(h5)
    assert back["attrs"]["n_realizations"] == 3 and "mean over 3 realizations" in back["attrs"]["statistic"]
    assert "catalog_sha256" not in back["attrs"] and len(back["catalogs"]) == 3
    for m in ("wiener", "potent"):
        assert set(back[m]) == {"delta", "phi", "velocity", "delta_std", "phi_std", "velocity_std"}
        np.testing.assert_array_equal(back[m]["velocity_std"], rec.scatter[m]["velocity"])
    doc = json.loads(js.read_text())
    assert doc["n_realizations"] == 3 and len(doc["methods"]["potent"]["realizations"]) == 3
    rows = doc["methods"]["potent"]["bulk_flow"]
    mags = np.linalg.norm(rec.bulk_flows["potent"], axis=-1)
    assert [r["B_std"] for r in rows] == pytest.approx(list(mags.std(0, ddof=1)))
    assert [r["B"] for r in rows] == pytest.approx(list(np.linalg.norm(rec.bulk_flows["potent"].mean(0), axis=-1)))
    # the command, with the files as the shell expands a glob: the same mean
    out = tmp_path / "cli.h5"
    files = [str(tmp_path / f"real-{i:03d}.csv") for i in range(3)]
    assert main(["reconstruct", *files, "--profile", "ci", "--output", str(out), "--methods", "potent",
                 "--radii", "20,40,80", "--no-progress"]) == 0
    cli = rc.read(out)
    assert cli["attrs"]["catalog"].startswith("3 files: ") and cli["attrs"]["n_realizations"] == 3
    np.testing.assert_allclose(cli["potent"]["delta"], rec.fields["potent"]["delta"], rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- the real table, trained ci networks
@pytest.fixture(scope="module")
def trained_ci(tmp_path_factory):
    """Mocks and both networks of the ci profile in a temporary data folder (about 30 s)."""

    folder = tmp_path_factory.mktemp("zoa-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOA_DATA", str(folder))
        prof = load_profile("ci")
        mock_set.generate(prof, progress=False)
        for t in ("delta", "phi"):
            fitting.train(prof, t, progress=False)
        yield prof


@pytest.mark.slow
def test_reconstruct_real_cf4_writes_the_documented_schema(trained_ci, tmp_path, capsys, monkeypatch):

    prof = trained_ci
    monkeypatch.setenv("ZOA_DATA", str(prof.data_path.parent))
    out = tmp_path / "cf4.h5"
    # the ci networks learned from mocks that copy Cosmicflows-3 (the whole sky): the partial CF4 table
    # (RA 0-203 deg) is refused with one line naming the mismatch, and nothing is written
    one_line_error(capsys, ["reconstruct", str(catalogs.CF4_SAMPLE), "--profile", "ci", "--output", str(out),
                            "--no-progress"], ["unlike the mocks", "training sky", "--force"])
    assert not out.exists()
    assert main(["reconstruct", str(catalogs.CF4_SAMPLE), "--profile", "ci", "--output", str(out), "--no-progress",
                 "--force", "--zero-point", "none"]) == 0
    text = capsys.readouterr().out
    assert "9999 rows, 9999 kept (0 dropped, 39 with cz <= 0" in text and "7961 in the 160 Mpc/h cube" in text
    assert f"written: {out}" in text
    N = prof.box.grid
    with h5py.File(out, "r") as f:
        a = f.attrs
        assert a["box_size"] == 160.0 and a["grid"] == N and a["axes"] == "SGX, SGY, SGZ"
        assert a["catalog_sha256"] == catalogs.CF4_SAMPLE_SHA256 and a["catalog_kind"] == "cf4"
        assert (a["n_rows"], a["n_kept"], a["n_dropped"], a["n_cz_nonpositive"]) == (9999, 9999, 0, 39)
        assert (a["n_in_cube"], a["n_outside"]) == (7961, 2038) and a["n_realizations"] == 1
        assert a["profile"] == "ci" and "zoa_version" in a and "git_commit" in a and a["h0_catalog"] == 74.6
        assert a["bulk_flows"] == "cf4.bulk_flows.json" and json.loads(a["methods"]) == ["vnet", "wiener_cal"]
        assert "sky" in {m["key"] for m in json.loads(a["domain_mismatch"])}
        assert any("force" in n for n in json.loads(a["notes"]))
        assert set(f) == {"catalogs", "vnet", "wiener_cal"}
        for m in ("vnet", "wiener_cal"):
            g = f[m]
            assert set(g) == {"delta", "phi", "velocity"}
            assert g["delta"].shape == g["phi"].shape == (N, N, N) and g["velocity"].shape == (N, N, N, 3)
            assert all(g[k].dtype == np.float32 for k in g)
            assert g["phi"].attrs["units"].startswith("(km/s)^2") and g["velocity"].attrs["units"].startswith("km/s")
            phi = g["phi"][...].astype(np.float64)
            assert abs(phi.mean()) < 1e-5 * np.abs(phi).max() and np.all(np.isfinite(g["velocity"][...]))
        vnet = {k: f["vnet"][k][...] for k in ("delta", "phi", "velocity")}
        wcal = {k: f["wiener_cal"][k][...] for k in ("delta", "phi", "velocity")}
        info = json.loads(f["vnet"].attrs["info"])
        assert info["phi_model"].endswith(".keras") and "V-Net" in f["vnet"].attrs["label"]
    # velocity = −(2f/3H0Ωm)∇φ of the stored φ (a constant does not change it)
    cosmo = from_profile(prof)
    np.testing.assert_allclose(vnet["velocity"], velocity.velocity_from_potential(
        vnet["phi"].astype(np.float64), prof.box.size, cosmo, method="finite_difference"),
        rtol=1e-4, atol=1e-3 * np.abs(vnet["velocity"]).max())
    # the same numbers as the library, model by model
    inputs, _ = catalogs.grid(catalogs.read_catalog(catalogs.CF4_SAMPLE)[0], prof, return_outside=True)
    model, tr = model_files.load_model(prof, "delta")
    np.testing.assert_allclose(vnet["delta"], inference.predict_array(model, tr, inputs, profile=prof),
                               rtol=1e-4, atol=1e-4)
    # bulk flows: B(R) of the stored field, (l, b) of its direction through astropy
    doc = json.loads(rc.bulk_flow_path(out).read_text())
    assert doc["radii"] == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0] and doc["n_realizations"] == 1
    assert doc["units"]["B"] == "km/s" and "top-hat" in doc["window"] and len(doc["lcdm_rms"]) == 8
    for m, field in (("vnet", vnet), ("wiener_cal", wcal)):
        rows = doc["methods"][m]["bulk_flow"]
        B = velocity.bulk_flow_profile(field["velocity"], prof.box.size, doc["radii"])
        np.testing.assert_allclose([[r["SGX"], r["SGY"], r["SGZ"]] for r in rows], B, rtol=1e-4, atol=1e-2)
        gal = SkyCoord(CartesianRepresentation(*B.T, unit=u.km / u.s), frame="supergalactic").galactic
        assert [r["l"] for r in rows] == pytest.approx(list(gal.spherical.lon.deg), abs=1e-6)
        assert [r["b"] for r in rows] == pytest.approx(list(gal.spherical.lat.deg), abs=1e-6)
        assert [r["B"] for r in rows] == pytest.approx(list(np.linalg.norm(B, axis=1)), rel=1e-5)
        assert all(math.isnan(r["B_err_method"]) for r in rows)  # unlike the mocks: their errors do not apply
    assert doc["domain_mismatch"] and doc["errors"] == {"vnet": None, "wiener_cal": None}
    # Cosmicflows-3, the catalogue the ci mocks copy: no flags, no mismatch, the zero point fitted
    out3 = tmp_path / "cf3.h5"
    assert main(["reconstruct", str(catalogs.CF3_SAMPLE), "--profile", "ci", "--output", str(out3), "--no-progress"]) == 0
    assert "zero point: H0 of the distances" in capsys.readouterr().out
    rec3 = rc.read(out3)
    assert json.loads(rec3["attrs"]["domain_mismatch"]) == [] and rec3["attrs"]["h0_catalog"] == 75.0
    assert rec3["catalogs"][0]["zero_point"]["n"] > 1000 and rec3["catalogs"][0]["frame"] == "heliocentric"


@pytest.mark.slow
def test_wiener_cal_solution_serves_as_the_vnet_channels(trained_ci, monkeypatch):
    """With wiener_cal requested too, the V-Net reuses its solution: the same V-Net fields as alone."""
    prof = trained_ci
    monkeypatch.setenv("ZOA_DATA", str(prof.data_path.parent))
    inputs = np.stack([catalogs.grid(catalogs.read_catalog(realization_path)[0], prof)
                       for realization_path in [catalogs.CF4_SAMPLE]])
    both = rc.reconstruct_inputs(prof, inputs, ["vnet", "wiener_cal"])
    alone = rc.reconstruct_inputs(prof, inputs, ["vnet"])
    for k in ("delta", "phi", "velocity"):
        np.testing.assert_allclose(both["vnet"][k], alone["vnet"][k], rtol=1e-5,
                                   atol=1e-5 * np.abs(alone["vnet"][k]).max())
    # and the chapter's path (local_universe.reconstruct_surveys) is the same code

    lu_rec = ga_search.reconstruct_surveys(prof, inputs, "vnet")
    np.testing.assert_array_equal(lu_rec["velocity"], alone["vnet"]["velocity"])


# --------------------------------------------------------------------------- the joint Wiener filter
def synthetic_training_mocks(profile, seed=0):
    """Tiny synthetic shards (tests/synthetic_shards.py) as the profile's training mocks."""
    import sys
    from pathlib import Path

    from zoa_lib.survey import shards

    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic_shards import write_mocks

    return write_mocks(shards.mocks_dir(profile), grid=profile.box.grid, seed=seed)


def test_wiener_joint_reconstructs_a_catalogue_with_the_cached_counts_model(ci, zoa_data, tmp_path, monkeypatch,
                                                                            capsys):
    """wiener_joint runs like wiener_cal (the radial bias subtracted) plus the counts model of the
    training mocks, fitted once and cached in <data>/wiener/counts_model.json (refitted when the
    training shards change); the domain check applies to it; its info records b, α, s², n_mocks."""
    assert "wiener_joint" in registry.SEARCH_METHODS and "wiener_joint" in rc.TRAINED_METHODS
    assert registry.parse_methods("wiener_joint", registry.SEARCH_METHODS, ()) == ["wiener_joint"]
    path = realization(tmp_path / "one.csv", 5, n=1500)
    # no training shards: one line naming zoa mocks, before any work
    with pytest.raises(rc.ReconstructError, match="`zoa mocks --profile ci`"):
        rc.counts_model(ci)
    one_line_error(capsys, ["reconstruct", str(path), "--profile", "ci", "--output", str(tmp_path / "x.h5"),
                            "--methods", "wiener_joint", "--force"], ["`zoa mocks --profile ci`"])
    synthetic_training_mocks(ci)
    fits = []
    real_fit = calibration.counts_calibration
    monkeypatch.setattr(calibration, "counts_calibration", lambda p, *a, **k: fits.append(1) or real_fit(p, *a, **k))
    rc._COUNTS.clear()
    # the domain check applies: a catalogue unlike the training mocks is refused without force
    table = rc.read_table(ci, path)[0]
    assert rc.domain_mismatches(ci, table, ["wiener_joint"]) and rc.domain_mismatches(ci, table, ["wiener"]) == []
    with pytest.raises(rc.ReconstructError, match="unlike the mocks"):
        rc.reconstruct_catalogs(ci, path, ["wiener_joint"], zero_point=False)
    rec = rc.reconstruct_catalogs(ci, path, ["wiener_cal", "wiener_joint"], zero_point=False, force=True)
    assert len(fits) == 1 and rec.mismatches
    cache = rc.counts_model_path(ci)
    assert cache == ci.data_path / "wiener" / "counts_model.json" and cache.exists()
    model = rc.counts_model(ci)
    assert len(fits) == 1  # once per process
    info = rec.info["wiener_joint"]
    assert info["calibration"] == rec.info["wiener_cal"]["calibration"] == "measured on the profile's training mocks"
    summ = info["counts_model"]
    assert summ["bias"] == pytest.approx(model.bias) and summ["shot_noise"] == pytest.approx(model.shot_noise)
    assert summ["scatter"] == pytest.approx(model.scatter) and summ["n_mocks"] == 8 and summ["bias"] > 0
    # the fields are evaluation.reconstruct's wiener_joint with the calibration and the counts model (φ's mean removed)
    inputs = rc.read_and_grid(ci, path)[0]
    want = reconstruction.reconstruct("wiener_joint", inputs, ci, bias=calibration.calibration(ci), counts=model)
    want["phi"] = want["phi"] - want["phi"].mean()
    for k in ("delta", "phi", "velocity"):
        np.testing.assert_allclose(rec.fields["wiener_joint"][k], want[k], rtol=1e-4,
                                   atol=1e-4 * np.abs(want[k]).max())
    # it reads the counts: not the calibrated velocity-only filter
    assert not np.allclose(rec.fields["wiener_joint"]["delta"], rec.fields["wiener_cal"]["delta"], atol=1e-3)
    # the file records the counts model
    h5, js = rc.write(rec, tmp_path / "joint.h5")
    with h5py.File(h5, "r") as f:
        assert json.loads(f["wiener_joint"].attrs["info"])["counts_model"]["n_mocks"] == 8
        assert "joint Wiener filter" in f["wiener_joint"].attrs["label"]
    assert json.loads(js.read_text())["methods"]["wiener_joint"]["bulk_flow"]
    # a new process reads the cache instead of refitting
    rc._COUNTS.clear()
    again = rc.counts_model(ci)
    assert len(fits) == 1 and again.bias == model.bias and np.allclose(again.nbar, model.nbar)
    stamp = json.loads(cache.read_text())["training_shards"]
    # new training shards: the cache is stale and the model refitted
    synthetic_training_mocks(ci, seed=11)
    rc._COUNTS.clear()
    new = rc.counts_model(ci)
    assert len(fits) == 2 and json.loads(cache.read_text())["training_shards"] != stamp and new.bias != model.bias


def test_cli_help_lists_wiener_joint(capsys):
    for cmd in ("reconstruct", "crossval"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "wiener_joint" in text and "wiener_cal" in text, cmd

"""CF4-format reader: good tables in several layouts, every kind of bad file, drop_bad reports;
the shipped real CF4 table and the VizieR download.

The tables written here, in Cosmicflows-4's EDD layout, are not CF4 data; the tests at the end
read the shipped real table (data/cf4-table2-first9999.csv) or a slice of it.
"""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import CartesianRepresentation, SkyCoord
from astropy.cosmology import FlatLambdaCDM

from zoa_lib.config import load_profile
from zoa_lib.errors import ZoaError
from zoa_lib.survey import catalog_files, catalogs, distances, galaxies
from zoa_lib.survey.catalog_files import write_cf4_csv
from zoa_lib.survey.catalogs import CatalogError, read_catalog
from zoa_lib.survey.shards import CATALOG_DTYPE
from zoa_lib.universe.rng import generator

C = 299792.458
L = 160.0


@pytest.fixture(scope="module")
def mock():
    g = np.random.default_rng(11)
    n = 30000
    cube = SimpleNamespace(positions=g.uniform(-L / 2, L / 2, (n, 3)).astype(np.float32),
                           velocities=g.normal(0, 300, (n, 3)).astype(np.float32), mean_density=n / L ** 3)
    cfg = dataclasses.replace(load_profile("ci").survey, n_galaxies=600)
    return galaxies.draw_galaxies(cube, cfg, generator(1, "survey", 0), L)


def write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return p


HEADER = "pgc, 1PGC, T17, Vcmb, DM, eDM, DMsnIa, eDMsn1, DMtf, eDMtf, RA, DE, glon, glat, sgl, sgb"


def edd_row(pgc, vcmb, dm, edm, ra=10.0, de=20.0, glon=120.0, glat=45.0):
    return f"{pgc}, {pgc}, 1, {vcmb}, {dm}, {edm}, , , {dm}, {edm}, {ra}, {de}, {glon}, {glat}, 1.0, 2.0"


def edd_file(tmp_path, rows, name="cf4like.csv"):
    pre = ["Cosmicflows-4 style test table (written by the test, not CF4 data)",
           "# distances in mag, velocities in km/s", ""]
    return write(tmp_path, name, "\n".join(pre + [HEADER] + rows) + "\n")


# --------------------------------------------------------------------------- good files
def test_edd_csv_values_are_the_stated_physics(tmp_path):
    rows = [edd_row(1, 3000.0, 33.0, 0.4, glon=308.4, glat=29.0), edd_row(2, 5000.0, 34.2, 0.1, glon=10, glat=-60)]
    cat, rep = read_catalog(edd_file(tmp_path, rows))
    assert cat.dtype == CATALOG_DTYPE and len(cat) == 2
    assert rep.kind == "cf4" and rep.header_line == 4 and rep.n_kept == 2 and not rep.dropped
    assert rep.columns["velocity"] == "Vcmb" and rep.columns["dm"] == "DM" and rep.columns["e_dm"] == "eDM"
    # d_L = 10^((DM−25)/5) Mpc × 0.746 → Mpc/h; comoving = d_L/(1+z) in a flat ΛCDM (Ωm = 0.3)
    dL = 10 ** ((np.array([33.0, 34.2]) - 25) / 5) * 0.746
    cosmo = FlatLambdaCDM(H0=100, Om0=0.3)
    zg = np.linspace(0, 0.1, 20001)
    z = np.interp(dL, cosmo.luminosity_distance(zg).to_value(u.Mpc), zg)
    assert np.allclose(cat["d_obs"], dL / (1 + z), rtol=2e-4)
    # WF15 with z_mod, q0 = −0.55, j0 = 1, written out
    zo = np.array([3000.0, 5000.0]) / C
    zm = zo * (1 + 0.775 * zo - (1 + 0.55 - 3 * 0.3025 + 1) / 6 * zo ** 2)
    v = C * zm / (1 + zm) * np.log(C * zm / (100 * dL))
    assert np.allclose(cat["v_r_obs"], v, rtol=1e-5, atol=1e-3)
    assert np.allclose(cat["sigma_v"], C * zm / (1 + zm) * np.log(10) / 5 * np.array([0.4, 0.1]), rtol=1e-5)
    assert np.allclose(cat["cz"], [3000, 5000])
    # position: (l, b) → supergalactic with astropy, at d_obs
    sg = SkyCoord(l=[308.4, 10] * u.deg, b=[29.0, -60] * u.deg, distance=cat["d_obs"] * u.Mpc,
                  frame="galactic").supergalactic.cartesian
    assert np.allclose(cat["SGX"], sg.x.to_value(u.Mpc), atol=1e-4)
    assert np.allclose(cat["SGY"], sg.y.to_value(u.Mpc), atol=1e-4)
    assert np.allclose(cat["SGZ"], sg.z.to_value(u.Mpc), atol=1e-4)
    assert np.allclose(cat["l"], [308.4, 10]) and np.allclose(cat["b"], [29.0, -60])
    assert np.all(np.isnan(cat["d_true"])) and np.all(np.isnan(cat["v_r_true"]))
    # a different H0 of the catalog scales distances by h
    cat2, _ = read_catalog(edd_file(tmp_path, rows, "b.csv"), h0_catalog=100.0)
    dL2 = dL / 0.746
    assert np.allclose(cat2["d_obs"], dL2 / (1 + np.interp(dL2, cosmo.luminosity_distance(zg).to_value(u.Mpc), zg)),
                       rtol=2e-4)


@pytest.mark.parametrize("spelling,spaces,coords", [("edd", True, "both"), ("vizier", False, "galactic"),
                                                    ("edd", False, "equatorial")])
def test_round_trip_of_a_mock_through_the_cf4_layout(tmp_path, mock, spelling, spaces, coords):
    p = write_cf4_csv(tmp_path / "mock.csv", mock, spelling=spelling, spaces=spaces, coords=coords)
    text = p.read_text()
    assert "NOT Cosmicflows-4" in text
    cat, rep = read_catalog(p)
    assert len(cat) == len(mock) and rep.n_kept == len(mock)
    for k in ("SGX", "SGY", "SGZ", "d_obs"):
        assert np.allclose(cat[k], mock[k], atol=2e-3), k
    assert np.allclose(cat["cz"], mock["cz"], atol=1e-3)
    # the same estimator as the mocks: the velocities come back
    assert np.allclose(cat["v_r_obs"], mock["v_r_obs"], atol=0.1)
    assert np.allclose(cat["sigma_v"], mock["sigma_v"], rtol=1e-3)
    dl = (cat["l"] - mock["l"] + 180) % 360 - 180
    assert np.max(np.abs(dl * np.cos(np.radians(mock["b"])))) < 1e-5 and np.allclose(cat["b"], mock["b"], atol=1e-5)
    # and grids identically
    prof = load_profile("ci")
    assert np.array_equal(catalogs.grid(cat, prof)[..., 0], galaxies.grid_catalog(mock, L, prof.box.grid)[..., 0])


def test_radec_only_uses_astropy_and_vls_is_noted(tmp_path):
    text = "# test table\nPGC Vls DM e_DM RAJ2000 DEJ2000\n1 4000 34 0.3 201.365 -43.019\n2 1100 31.1 0.1 187.706 12.391\n"
    cat, rep = read_catalog(write(tmp_path, "ws.txt", text))
    ref = SkyCoord(ra=[201.365, 187.706] * u.deg, dec=[-43.019, 12.391] * u.deg, frame="icrs").galactic
    assert np.allclose(cat["l"], ref.l.deg, atol=1e-5) and np.allclose(cat["b"], ref.b.deg, atol=1e-5)
    assert rep.columns["velocity"] == "Vls"
    assert any("Local Sheet" in n for n in rep.notes) and any("RA/Dec" in n for n in rep.notes)


def test_commented_header_and_capitalised_glon(tmp_path):
    text = "# Glon, Glat, Vcmb, DM, e_DM\n  120.5 , 33.0 , 2500 , 32.5 , 0.45\n"
    cat, rep = read_catalog(write(tmp_path, "c.csv", text))
    assert len(cat) == 1 and rep.columns["glon"] == "Glon"
    assert cat["l"][0] == pytest.approx(120.5) and cat["b"][0] == pytest.approx(33.0)


def test_positions_table_hamlet_like(tmp_path):
    g = np.random.default_rng(2)
    xyz = g.uniform(-70, 70, (50, 3))
    vr = g.normal(0, 300, 50)
    lines = ["# one realization: SG positions (Mpc/h) and radial velocities (km/s)", "SGX,SGY,SGZ,v_r,e_v"]
    lines += [f"{x:.5f},{y:.5f},{z:.5f},{v:.3f},120" for (x, y, z), v in zip(xyz, vr)]
    cat, rep = read_catalog(write(tmp_path, "hamlet_000.csv", "\n".join(lines)), sample=3)
    assert rep.kind == "positions" and len(cat) == 50
    assert np.all(cat["sample"] == 3)
    ref = SkyCoord(CartesianRepresentation(*xyz.T, unit="Mpc"), frame="supergalactic").galactic.spherical
    assert np.allclose(cat["b"], ref.lat.deg, atol=1e-4)
    assert np.allclose(cat["d_obs"], np.linalg.norm(xyz, axis=1), rtol=1e-6)
    assert np.allclose(cat["v_r_obs"], vr, atol=1e-3) and np.all(cat["sigma_v"] == 120)
    # a mapping override for other column names
    lines2 = ["x_sg y_sg z_sg vrad"] + [f"{x} {y} {z} {v}" for (x, y, z), v in zip(xyz, vr)]
    cat2, rep2 = read_catalog(write(tmp_path, "other.txt", "\n".join(lines2)), kind="positions",
                              columns={"sgx": "x_sg", "sgy": "y_sg", "sgz": "z_sg", "v_r": "vrad"})
    assert rep2.columns["v_r"] == "vrad"
    assert np.allclose(cat2["SGX"], cat["SGX"], atol=1e-4) and np.allclose(cat2["v_r_obs"], cat["v_r_obs"], atol=1e-3)
    assert any("sigma_v = 0" in n for n in rep2.notes)


def test_linear_estimator_option(tmp_path):
    rows = [edd_row(1, 3000.0, 33.0, 0.4)]
    cat, _ = read_catalog(edd_file(tmp_path, rows), estimator="linear")
    dL = 10 ** (8 / 5) * 0.746
    assert cat["v_r_obs"][0] == pytest.approx(float(distances.linear_velocity(3000.0, dL)), abs=1e-3)


# --------------------------------------------------------------------------- bad files
GOOD = edd_row(1, 3000.0, 33.0, 0.4)


@pytest.mark.parametrize("row,column,words", [
    (edd_row(2, 3000.0, "abc", 0.4), "DM", "non-numeric value 'abc'"),
    (edd_row(2, "nan", 33.0, 0.4), "Vcmb", "not finite"),
    (edd_row(2, 3000.0, "inf", 0.4), "DM", "not finite"),
    (edd_row(2, -6000.0, 33.0, 0.4), "Vcmb", "out of range (< -5000"),
    (edd_row(2, 65000.0, 33.0, 0.4), "Vcmb", "out of range"),
    (edd_row(2, 3000.0, 33.0, -0.4), "eDM", "negative error"),
    (edd_row(2, 3000.0, 33.0, 0.4, glat=95.0), "glat", "outside [-90, 90]"),
    (edd_row(2, 3000.0, "", 0.4), "DM", "missing value"),
])
def test_bad_value_names_file_line_and_column(tmp_path, row, column, words):
    p = edd_file(tmp_path, [GOOD, row])
    with pytest.raises(CatalogError) as e:
        read_catalog(p)
    msg = str(e.value)
    assert str(p) in msg and "line 6" in msg and f"column {column!r}" in msg and words in msg
    assert "\n" not in msg
    assert isinstance(e.value, ZoaError)


def test_ragged_row(tmp_path):
    p = edd_file(tmp_path, [GOOD, "2, 2, 1, 3000"])
    with pytest.raises(CatalogError, match=r"line 6: 4 fields, the header \(line 4\) has 16"):
        read_catalog(p)


def test_missing_column(tmp_path):
    p = write(tmp_path, "noerr.csv", "pgc, Vcmb, DM, glon, glat\n1, 3000, 33, 10, 20\n")
    with pytest.raises(CatalogError, match=r"noerr.csv: missing column distance-modulus error \(eDM"):
        read_catalog(p)
    p = write(tmp_path, "nosky.csv", "pgc, Vcmb, DM, eDM\n1, 3000, 33, 0.4\n")
    with pytest.raises(CatalogError, match="missing column sky position"):
        read_catalog(p)
    p = write(tmp_path, "novel.csv", "pgc, DM, eDM, glon, glat\n1, 33, 0.4, 10, 20\n")
    with pytest.raises(CatalogError, match=r"missing column velocity \(Vcmb"):
        read_catalog(p)
    with pytest.raises(CatalogError, match="missing column 'Vhel'"):
        read_catalog(edd_file(tmp_path, [GOOD]), columns={"velocity": "Vhel"})
    with pytest.raises(CatalogError, match="unknown field 'speed'"):
        read_catalog(edd_file(tmp_path, [GOOD]), columns={"speed": "Vcmb"})


def test_duplicate_columns(tmp_path):
    p = write(tmp_path, "dup.csv", "pgc, Vcmb, DM, eDM, DM, glon, glat\n1, 3000, 33, 0.4, 33, 10, 20\n")
    with pytest.raises(CatalogError, match=r"dup.csv: duplicate column 'DM' \(columns 3 and 5\)"):
        read_catalog(p)
    p = write(tmp_path, "dup2.csv", "pgc, Vcmb, DM, eDM, glon, GLON, glat\n1, 3000, 33, 0.4, 10, 10, 20\n")
    with pytest.raises(CatalogError, match="duplicate column 'glon'"):
        read_catalog(p)


def test_empty_and_header_only_and_no_header(tmp_path):
    with pytest.raises(CatalogError, match="empty.csv: file is empty"):
        read_catalog(write(tmp_path, "empty.csv", ""))
    with pytest.raises(CatalogError, match="blank.csv: file is empty"):
        read_catalog(write(tmp_path, "blank.csv", "\n  \n"))
    with pytest.raises(CatalogError, match="no data rows after the header on line 4"):
        read_catalog(edd_file(tmp_path, []))
    with pytest.raises(CatalogError, match="no header line"):
        read_catalog(write(tmp_path, "nohead.dat", "1 3000 33 0.4 10 20\n2 3100 33 0.4 10 20\n"))
    with pytest.raises(CatalogError, match="file not found"):
        read_catalog(tmp_path / "nope.csv")


def test_not_utf8_names_the_line(tmp_path):
    text = ("\n".join(["# test table", HEADER, GOOD]) + "\n").encode() + b"2, 2, 1, 3000, 33, 0.4 \xff\xfe\n"
    with pytest.raises(CatalogError, match=r"latin.csv: line 4: not UTF-8"):
        read_catalog(write(tmp_path, "latin.csv", text))


def test_positions_table_bad_rows(tmp_path):
    text = "SGX SGY SGZ v_r\n10 0 0 300\n0 0 0 100\n5 5 5 25000\n"
    p = write(tmp_path, "pos.txt", text)
    with pytest.raises(CatalogError, match=r"pos.txt: line 3, column 'SGX': distance ≤ 0 .*and 1 more bad rows"):
        read_catalog(p)
    cat, rep = read_catalog(p, drop_bad=True)
    assert len(cat) == 1 and rep.n_rows == 3 and rep.n_kept == 1
    assert [(d.line, d.column) for d in rep.dropped] == [(3, "SGX"), (4, "v_r")]
    assert "out of range" in rep.dropped[1].reason


def test_dist_column_must_be_positive(tmp_path):
    p = write(tmp_path, "dist.csv", "1PGC, Dist, e_DMzp, Vcmb, GLON, GLAT\n1, 40.0, 0.3, 3000, 5, 6\n2, 0, 0.3, 3000, 5, 6\n")
    with pytest.raises(CatalogError, match=r"line 3, column 'Dist': distance 0 Mpc ≤ 0"):
        read_catalog(p)


def test_drop_bad_reports_every_dropped_row(tmp_path):
    rows = [GOOD, edd_row(2, 3000.0, "x", 0.4), edd_row(3, 4000.0, 33.5, 0.4), edd_row(4, "-6000", 33.0, 0.4),
            "5, 5", edd_row(6, 3000.0, 33.0, 0.4, glat=-91), edd_row(7, 2000.0, 32.0, 0.2)]
    p = edd_file(tmp_path, rows)
    with pytest.raises(CatalogError, match="and 3 more bad rows"):
        read_catalog(p)
    cat, rep = read_catalog(p, drop_bad=True)
    assert rep.n_rows == 7 and rep.n_kept == 3 == len(cat)
    assert [d.line for d in rep.dropped] == [6, 8, 9, 10]
    assert [d.column for d in rep.dropped] == ["DM", "Vcmb", "", "glat"]
    assert np.allclose(cat["cz"], [3000, 4000, 2000])
    s = rep.summary()
    assert "7 data rows, 3 kept, 4 dropped" in s and "line 8, column 'Vcmb'" in s
    # all bad: an error, not an empty catalog
    with pytest.raises(CatalogError, match="all 1 data rows are bad"):
        read_catalog(edd_file(tmp_path, ["5, 5"], "allbad.csv"), drop_bad=True)


# --------------------------------------------------------------------------- the real CF4 table
def real_slice(tmp_path, n: int = 40):
    """The header and the first ``n`` rows of the shipped real CF4 table (row 23, PGC 143, has cz = -437)."""
    lines = catalogs.CF4_SAMPLE.read_text(encoding="utf-8").splitlines()[:n + 1]
    return write(tmp_path, "cf4-slice.csv", "\n".join(lines) + "\n"), lines


def test_real_cf4_slice_reads_and_blueshifted_galaxies_get_the_linear_estimator(tmp_path):
    p, lines = real_slice(tmp_path)
    cat, rep = read_catalog(p)  # no flags
    assert rep.n_rows == rep.n_kept == len(cat) == 40 and not rep.dropped
    assert rep.columns == {"velocity": "Vcmb", "dm": "DM", "e_dm": "e_DM", "glon": "GLON", "glat": "GLAT", "id": "PGC"}
    rows = [[t.strip() for t in line.split(",")] for line in lines[1:]]
    cz = np.array([float(r[3]) for r in rows])
    dm, edm = np.array([float(r[4]) for r in rows]), np.array([float(r[5]) for r in rows])
    blue = cz <= 0
    assert blue.sum() == 1 and rows[int(np.argmax(blue))][0] == "143" and rep.n_cz_nonpositive == 1
    assert any("1 galaxies with cz ≤ 0" in n and "v = cz − H0 d" in n for n in rep.notes)
    d_L = 10 ** ((dm - 25) / 5) * 0.746  # Mpc/h
    v_lin, s_lin = distances.linear_velocity(cz, d_L), distances.linear_sigma(cz, d_L, edm)
    v_wf = distances.watkins_feldman_velocity(cz[~blue], d_L[~blue])
    s_wf = distances.watkins_feldman_sigma(cz[~blue], edm[~blue])
    assert np.allclose(cat["v_r_obs"][blue], v_lin[blue], atol=1e-3)
    assert np.allclose(cat["sigma_v"][blue], s_lin[blue], rtol=1e-5)
    # v = cz − H0 d at these distances (PGC 143 at 0.7 Mpc/h): well below 1 km/s apart
    assert cat["v_r_obs"][blue][0] == pytest.approx(cz[blue][0] - 100.0 * d_L[blue][0], abs=0.5)
    assert np.all(np.isfinite(cat["v_r_obs"])) and np.all(cat["sigma_v"] > 0)
    assert np.allclose(cat["v_r_obs"][~blue], v_wf, rtol=1e-5, atol=1e-3)
    assert np.allclose(cat["sigma_v"][~blue], s_wf, rtol=1e-5)
    assert rep.to_dict()["n_cz_nonpositive"] == 1
    # the linear estimator everywhere: the same count, said without the WF15 remark
    _, rep_lin = read_catalog(p, estimator="linear")
    assert rep_lin.n_cz_nonpositive == 1 and not any("Watkins" in n for n in rep_lin.notes)


def test_cz_below_cz_min_is_still_an_error(tmp_path):
    p = edd_file(tmp_path, [GOOD, edd_row(2, -5001.0, 30.0, 0.4), edd_row(3, 0.0, 28.0, 0.1)])
    with pytest.raises(CatalogError, match=r"line 6, column 'Vcmb': cz = -5001 km/s out of range \(< -5000"):
        read_catalog(p)
    cat, rep = read_catalog(p, drop_bad=True)
    assert rep.n_kept == 2 and rep.n_cz_nonpositive == 1  # cz = 0 is kept: v = −H0 d
    assert cat["v_r_obs"][1] == pytest.approx(-100.0 * 10 ** (3 / 5) * 0.746, abs=1.0)  # 3 Mpc/h: within 1 km/s


def test_shipped_real_table_checksum_readme_and_cli_with_no_flags(capsys):
    import hashlib

    from zoa_lib.cli import main

    p = catalogs.CF4_SAMPLE
    assert p.name == "cf4-table2-first9999.csv" and p.parent.name == "data"
    assert hashlib.sha256(p.read_bytes()).hexdigest() == catalogs.CF4_SAMPLE_SHA256
    readme = (p.parent / "README.md").read_text(encoding="utf-8")
    for words in (catalogs.CF4_SAMPLE_SHA256, "J/ApJ/944/94", "9,999", "55,877", "RA 0° – 203°", "--fetch", "EDD"):
        assert words in readme, words
    assert main(["catalog", str(p)]) == 0
    out = capsys.readouterr().out
    assert "9999 data rows, 9999 kept, 0 dropped" in out and "39 galaxies with cz ≤ 0" in out


def test_fetch_without_astroquery_is_one_line(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "astroquery", None)
    monkeypatch.setitem(sys.modules, "astroquery.vizier", None)
    with pytest.raises(CatalogError) as e:
        catalog_files.fetch_cf4(tmp_path / "cf4.csv")
    assert "pip install 'zoa[cf4]'" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "cf4.csv").exists()
    with pytest.raises(CatalogError, match="shipped first-9,999-row table"):
        catalog_files.fetch_cf4(catalogs.CF4_SAMPLE)


def test_fetch_offline_is_one_line_and_writes_nothing(tmp_path, capsys):
    pytest.importorskip("astroquery")
    from zoa_lib.cli import main

    out = tmp_path / "cf4.csv"
    with pytest.raises(CatalogError) as e:  # nothing listens on port 9 of this machine
        catalog_files.fetch_cf4(out, server="127.0.0.1:9", timeout=5)
    msg = str(e.value)
    assert msg.startswith("cannot download J/ApJ/944/94/table2 from VizieR (127.0.0.1:9)") and "\n" not in msg
    assert "nothing written" in msg and not out.exists()
    assert main(["catalog", str(out), "--fetch", "--vizier-server", "127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zoa catalog: error: cannot download") and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_fetch_writes_what_vizier_serves_and_the_reader_reads_it(tmp_path, monkeypatch):
    """VizieR stood in for by the shipped rows (as astropy reads them): the written CSV reads back."""
    pytest.importorskip("astroquery")
    from astropy.table import Table
    from astroquery.utils import TableList
    from astroquery.vizier import VizierClass

    table = Table.read(catalogs.CF4_SAMPLE, format="ascii.csv")[:30]
    table.meta["comments"] = ["a comment VizieR might carry"]
    asked = {}

    def fake(self, catalog, **kw):
        asked.update(catalog=catalog, row_limit=self.ROW_LIMIT, columns=self.columns)
        return TableList({catalog: table})

    monkeypatch.setattr(VizierClass, "get_catalogs", fake)
    p = catalog_files.fetch_cf4(tmp_path / "full.csv")
    assert asked == {"catalog": "J/ApJ/944/94/table2", "row_limit": -1, "columns": ["**"]}
    text = p.read_text()
    assert text.startswith("# Cosmicflows-4 galaxies") and "a comment VizieR" not in text
    cat, rep = read_catalog(p)
    ref, _ = read_catalog(real_slice(tmp_path, 30)[0])
    assert rep.n_kept == 30 and rep.header_line == 4 and rep.columns["velocity"] == "Vcmb"
    for k in ("SGX", "SGY", "SGZ", "v_r_obs", "sigma_v", "cz"):
        assert np.allclose(cat[k], ref[k]), k

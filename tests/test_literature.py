"""Published bulk flows: the shipped table reads, bad tables give one clear line, and the
comparison picks the reconstruction's value at the right radius with the right tension."""
import math

import numpy as np
import pytest

from zoa_lib.analysis import literature as lit
from zoa_lib.book.viz import skymaps, statistics


def test_shipped_table_holds_the_measurements_in_the_literature():
    pub = lit.published_bulk_flows()
    by = {(p.label.split()[0], p.R if math.isfinite(p.R) else None): p for p in pub}
    assert by[("Hoffman", 50.0)].B == 250 and by[("Hoffman", 150.0)].B_err == 38
    qin = by[("Qin", 37.0)]
    assert (qin.B, qin.B_err, qin.l, qin.b, qin.window) == (259, 15, 300, 23, "mle")
    assert by[("Lilow", 50.0)].window == "gaussian" and by[("Whitford", 173.0)].B == 428
    assert by[("Courtois", 300.0)].B == 230 and by[("Carrick", None)].window == "external"
    assert all(p.window in lit.WINDOWS for p in pub)
    assert qin.label == "Qin 2019 (2MTF + CF3)"


def test_bad_tables_name_file_and_line(tmp_path):
    head = ",".join(lit.COLUMNS)
    p = tmp_path / "t.csv"
    p.write_text(f"# comment\n{head}\nX 2020,d,50,abc,10,,,,,top-hat,\n")
    with pytest.raises(lit.LiteratureError, match=r"t.csv: line 3: B must be a number"):
        lit.published_bulk_flows(p)
    p.write_text(f"{head}\nX 2020,d,50,100,10,,,,,boxcar,\n")
    with pytest.raises(lit.LiteratureError, match="window must be one of"):
        lit.published_bulk_flows(p)
    p.write_text("reference,B\nX,1\n")
    with pytest.raises(lit.LiteratureError, match="missing column"):
        lit.published_bulk_flows(p)


def test_compare_interpolates_the_vector_and_combines_the_errors():
    from zoa_lib.analysis.reconstruct import bulk_flow_rows
    from zoa_lib.survey.sky import galactic_to_sg

    pub = [lit.PublishedBulkFlow("A 2015", "d", 50.0, 250.0, 30.0, 300.0, 4.0, 20.0, 3.0, "top-hat"),
           lit.PublishedBulkFlow("B 2019", "d", 35.0, 259.0, 15.0, float("nan"), float("nan"), float("nan"),
                                 float("nan"), "mle"),
           lit.PublishedBulkFlow("C 2023", "d", 300.0, 230.0, 136.0, float("nan"), float("nan"), float("nan"),
                                 float("nan"), "top-hat")]
    radii = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    # B along (l, b) = (300°, 25°) with |B| = 100 + R km/s (SG components from astropy)
    unit = np.array(galactic_to_sg(np.array([300.0]), np.array([25.0]), np.array([1.0]))).ravel()
    rows = bulk_flow_rows((100.0 + radii)[:, None] * unit, radii)
    for r in rows:
        r["B_std"] = 40.0
    a, b, c = lit.compare(pub, radii, rows)
    assert a["B_rec"] == pytest.approx(150.0) and a["comparable"]
    assert a["tension"] == pytest.approx((150.0 - 250.0) / 50.0)            # √(30² + 40²) = 50
    assert a["angle"] == pytest.approx(5.0, abs=1e-6)                     # same l, b 20 vs 25
    assert b["B_rec"] == pytest.approx(135.0) and not b["comparable"]      # halfway between 30 and 40
    assert b["l_rec"] == pytest.approx(300.0, abs=1e-6) and b["b_rec"] == pytest.approx(25.0, abs=1e-6)
    assert math.isnan(c["B_rec"]) and math.isnan(c["tension"])            # larger than the cube
    assert math.isnan(b["tension"])                                       # another window: no tension
    # the method's error on test mocks, when rows carry it, is the reconstruction's error
    for r in rows:
        r["B_err"] = 60.0
    a2 = lit.compare(pub, radii, rows)[0]
    assert a2["tension"] == pytest.approx((150.0 - 250.0) / np.hypot(30.0, 60.0)) and a2["B_rec_std"] == 60.0


def test_method_errors_from_the_evaluation_and_attached_to_rows(tmp_path, monkeypatch):
    import json

    from zoa_lib.analysis import bulk_flow_errors as bfe
    from zoa_lib.analysis import evaluation
    from zoa_lib.config import load_profile

    prof = load_profile("ci")
    monkeypatch.setattr(evaluation, "evaluation_dir", lambda profile: tmp_path)
    assert bfe.method_errors(prof, "vnet") is None  # not evaluated yet
    g = np.random.default_rng(0)
    true = g.normal(0, 300, (400, 2, 3))
    err = np.array([50.0, 20.0])[None, :, None] * g.standard_normal((400, 2, 3))
    doc = {"velocity": {"bulk_flow": {"radii": [20.0, 60.0], "pred": (true + err).tolist(), "true": true.tolist()}}}
    (tmp_path / "vnet_phi.json").write_text(json.dumps(doc))
    e = bfe.method_errors(prof, "vnet")
    assert e["n_mocks"] == 400 and np.allclose(e["sigma_xyz"], [[50] * 3, [20] * 3], rtol=0.12)
    # |B_pred| − |B_true| for |B_true| ≫ the error: the error's projection, σ ≈ the per-component σ
    assert np.allclose(e["sigma_B"], [50.0, 20.0], rtol=0.2)
    rows = bfe.attach_errors([{"R": 40.0, "B": 1.0, "B_std": 30.0}, {"R": 80.0, "B": 1.0}], e)
    s40 = np.interp(40.0, [20.0, 60.0], e["sigma_B"])
    assert rows[0]["B_err_method"] == pytest.approx(s40) and rows[0]["B_err"] == pytest.approx(np.hypot(s40, 30.0))
    assert math.isnan(rows[1]["B_err_method"])                            # beyond the evaluated radii


def test_plot_bulk_flow_published_draws_every_measurement():
    from matplotlib.figure import Figure


    pub = lit.published_bulk_flows()
    rows = [{"R": R, "B": 300.0 - R, "l": 300.0, "b": 20.0, "B_std": 20.0} for R in (10.0, 40.0, 80.0)]
    fig = Figure()
    ax, sky = statistics.plot_bulk_flow_published(fig, {"V-Net": rows}, pub, lcdm=([10, 40, 80], [300, 200, 150]))
    labels = ax.get_legend_handles_labels()[1]
    assert sum(s.startswith("V-Net") for s in labels) == 1 and len(labels) == 1 + 1 + len(pub)
    assert ax.get_xlim()[1] == pytest.approx(1.15 * 80.0)
    with_dir = [p for p in pub if p.has_direction]
    assert len(sky.get_legend_handles_labels()[1]) == 1 + len(with_dir)
    x, y = skymaps.sky_xy([with_dir[0].l], [with_dir[0].b])
    assert np.isfinite(x).all() and np.isfinite(y).all()

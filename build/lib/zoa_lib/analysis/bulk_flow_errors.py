"""The error of a method's bulk flow, measured on held-out mocks of the same selection.

A bulk flow B(R) reconstructed from a catalogue is wrong by what the method gets wrong (noise,
the Zone of Avoidance, the sparse far side, the Malmquist bias left over) and by the cosmic
variance of what the survey does not see. Both show on the held-out test mocks, where the
truth is known: ``zoa evaluate`` keeps each test mock's B_pred(R) and B_true(R) (top-hat
spheres, km/s, SG components; ``<data>/evaluation/<method>.json``, ``velocity.bulk_flow``).
:func:`method_errors` turns them into the rms of B_pred − B_true per component and the rms of
|B_pred| − |B_true| at each evaluated radius; :func:`attach_errors` puts them on the rows of a
reconstruction's B(R) (interpolated in R; NaN outside the evaluated radii), combined in
quadrature with the scatter over survey realizations where there are several. These errors
apply to a catalogue only when the test mocks copy its selection (``survey.catalogue``): a
catalogue refused by :mod:`zoa_lib.survey.domain` and reconstructed with ``force`` does not get them.
"""
from __future__ import annotations

import numpy as np

#: The evaluation's name of each reconstruction method (the V-Net's velocity comes from φ).
EVALUATED_AS = {"vnet": "vnet_phi"}


def method_errors(profile, method: str) -> dict | None:
    """{"radii" (Mpc/h), "sigma_xyz" (R, 3) km/s, "sigma_B" (R,) km/s, "bias_B" (R,) km/s,
    "n_mocks", "source"} of ``method`` from the profile's ``zoa evaluate`` results on its test
    mocks; None when they are not there (run ``zoa evaluate``)."""
    from zoa_lib.analysis.evaluation import EvaluationError, load_method
    from zoa_lib.analysis.verdict import json_get

    name = EVALUATED_AS.get(method, method)
    try:
        doc = load_method(profile, name)
    except (EvaluationError, OSError, ValueError):
        return None
    bf = json_get(doc, "velocity", "bulk_flow")
    if not bf or bf.get("pred") is None or bf.get("true") is None:
        return None
    pred, true = np.asarray(bf["pred"], float), np.asarray(bf["true"], float)  # (n, R, 3)
    if pred.ndim != 3 or pred.shape != true.shape or pred.shape[0] < 2:
        return None
    d = pred - true
    dmag = np.linalg.norm(pred, axis=-1) - np.linalg.norm(true, axis=-1)
    return {"radii": [float(r) for r in bf["radii"]], "sigma_xyz": np.sqrt(np.mean(d ** 2, axis=0)).tolist(),
            "sigma_B": np.sqrt(np.mean(dmag ** 2, axis=0)).tolist(), "bias_B": dmag.mean(axis=0).tolist(),
            "n_mocks": int(pred.shape[0]), "source": f"zoa evaluate, {name}, test mocks",
            "units": {"radii": "Mpc/h", "sigma_xyz": "km/s", "sigma_B": "km/s", "bias_B": "km/s"}}


def attach_errors(rows, errors: dict | None) -> list[dict]:
    """Rows of B(R) ({R, B, ..., (B_std)}) with ``B_err_method`` (the rms of |B_pred| − |B_true|
    on the test mocks, interpolated in R; NaN outside the evaluated radii or without ``errors``)
    and ``B_err`` = √(B_err_method² + B_std²) (km/s)."""
    out = []
    for row in rows:
        row = dict(row)
        s = float("nan")
        if errors:
            r = np.asarray(errors["radii"], float)
            if r.size and r[0] - 1e-9 <= row["R"] <= r[-1] + 1e-9:
                s = float(np.interp(row["R"], r, np.asarray(errors["sigma_B"], float)))
        row["B_err_method"] = s
        row["B_err"] = float(np.hypot(s, row.get("B_std", 0.0)))
        out.append(row)
    return out

"""δ, φ and the 3D velocity of one mock by any method: a network's prediction turned into the
three fields (linear theory, v ∝ −∇φ), or a classical method solved (the Wiener filters, POTENT).

Units: δ dimensionless, φ in (km/s)², v in km/s, lengths in Mpc/h.
"""
from __future__ import annotations

import numpy as np

from zoa_lib.methods import baselines
from zoa_lib.methods.registry import CALIBRATED, METHODS, TARGET_OF, MethodError
from zoa_lib.universe import velocity as vel
from zoa_lib.universe.cosmology import from_profile


def reconstruct(method: str, inputs, profile, prediction=None, cosmo=None, operator=None,
                bias=None, sigma_nl: float | None = None, counts=None) -> dict:
    """δ, φ, v (float32) of one mock by ``method`` (module docstring), plus solver info;
    ``bias`` (:class:`zoa_lib.methods.baselines.RadialBias`, :func:`~zoa_lib.methods.calibration.calibration`) is needed by
    ``wiener_cal`` and ``wiener_joint``, ``counts`` (:class:`zoa_lib.methods.wiener_joint.CountsModel`,
    :func:`~zoa_lib.methods.calibration.counts_calibration`) by ``wiener_joint``; ``operator``: the method's filter
    (:class:`~zoa_lib.methods.baselines.WienerFilter`, or :class:`~zoa_lib.methods.wiener_joint.JointWienerFilter`
    for ``wiener_joint``), built here when None. ``sigma_nl`` (km/s): the small-scale
    dispersion the Wiener filters add to their noise (default: ``bias.sigma_nl`` when a
    calibration is given, else none)."""
    cosmo = cosmo or from_profile(profile)
    L = profile.box.size
    info = {}
    target = TARGET_OF.get(method)
    if target == "delta":
        d = np.asarray(prediction, dtype=float)
        v = vel.velocity_from_density(d, L, cosmo, pad=2)
        phi = vel.potential_from_density(d, L, cosmo, pad=2)
    elif target == "phi":
        phi = np.asarray(prediction, dtype=float)
        v = vel.velocity_from_potential(phi, L, cosmo, method="finite_difference")
        d = vel.density_from_potential(phi, L, cosmo, method="finite_difference")
    elif method in ("wiener", "wiener_cal", "wiener_joint"):
        if method in CALIBRATED:
            if bias is None:
                raise MethodError(f"{method}: needs the radial bias profile (evaluation.calibration)")
            inputs = baselines.subtract_radial_bias(inputs, L, bias)
        if sigma_nl is None:
            sigma_nl = getattr(bias, "sigma_nl", None) or 0.0
        if method == "wiener_joint":
            from zoa_lib.methods import wiener_joint

            if counts is None:
                raise MethodError("wiener_joint: needs the counts model (evaluation.counts_calibration)")
            r = wiener_joint.wiener_joint(inputs, profile, operator, counts=counts, sigma_nl=sigma_nl)
        else:
            r = baselines.wiener_filter(inputs, profile, operator, sigma_nl=sigma_nl)
        d, phi, v = r.delta, r.phi, r.velocity
        info = {"iterations": r.iterations, "converged": r.converged, "n_data": r.n_data}
    elif method == "potent":
        r = baselines.potent_from_profile(inputs, profile)
        d, phi, v = r.delta, r.phi, r.velocity
    else:
        raise MethodError(f"method: unknown method {method!r} (known: {', '.join(METHODS)})")
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return {"delta": f32(d), "phi": f32(phi), "velocity": f32(v), "info": info}

"""Input normalisation and target transforms of the two V-Nets (δ and φ), and the error of
the training package.

Transforms (:class:`Transforms`, saved inside every ``.keras`` file)
---------------------------------------------------------------------
Inputs, per voxel (both invertible, :meth:`Transforms.normalise_inputs` /
:meth:`Transforms.denormalise_inputs`)::

    u0 = ln(1 + N_gal) / n_gal_scale          N_gal = galaxies per voxel
    u1 = V_pec / v_pec_scale                  V_pec in km/s, 0 where the voxel is empty

Targets, with the one implementation in :mod:`zoa_lib.universe.fields`
(:func:`~zoa_lib.universe.fields.delta_to_target`,
:func:`~zoa_lib.universe.fields.phi_to_target` and their inverses)::

    δ:  t = ln max(1 + δ, 10⁻²)   (``delta_transform: log1p``; inverse δ = eᵗ − 1)  or t = δ
    φ:  t = (φ − ⟨φ⟩) / s         (``phi_transform: standardize``; s = σ_φ in (km/s)², the
                                   linear-theory rms of the smoothed potential of the parent
                                   box, :func:`zoa_lib.universe.fields.phi_target_scale`)   or s = 1;
                                   ⟨φ⟩ = the cube's mean (``phi_zero_mean``, default) or 0

The scales (``n_gal_scale``, ``v_pec_scale``, s) are stored with the model
(:func:`zoa_lib.methods.training.model_files.save_model`), so a model keeps working if the profile
changes later.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from zoa_lib.errors import ZoaError
from zoa_lib.universe import fields as _fields

TARGET_NAMES = ("delta", "phi")
UNITS = {"delta": "dimensionless (density contrast)", "phi": "(km/s)^2"}


class TrainingError(ZoaError, ValueError):
    """Missing or bad training data, models or settings; the message names the file or key."""


def check_target(target: str) -> str:
    if target not in TARGET_NAMES:
        raise TrainingError(f"target must be one of {', '.join(TARGET_NAMES)}, got {target!r}")
    return target



@dataclass(frozen=True)
class Transforms:
    """Input normalisation and target transform of one network (module docstring).

    ``phi_scale`` s is in (km/s)²; ``delta_floor`` is the floor of 1 + δ in the log.
    ``wiener_channels``: the inputs carry the calibrated Wiener filter's (φ_WF, δ_WF) as
    channels 2 and 3 (:mod:`zoa_lib.methods.wiener_channels`, whose calibration is kept in
    ``wiener_calibration``), and the network corrects channel :attr:`residual_channel`."""

    target: str
    n_gal_scale: float = 1.0
    v_pec_scale: float = 500.0
    delta_transform: str = "log1p"
    phi_transform: str = "standardize"
    phi_scale: float = 1.0
    delta_floor: float = _fields.DELTA_FLOOR
    phi_zero_mean: bool = False  # the defaults of the last three: models saved before they existed
    wiener_channels: bool = False
    wiener_calibration: dict | None = None

    @classmethod
    def from_profile(cls, profile, target: str, wiener_calibration: dict | None = None) -> "Transforms":
        """The profile's transforms; ``wiener_calibration`` (:func:`zoa_lib.methods.wiener_channels.profile_calibration`)
        is needed when ``training.wiener_channels``."""
        check_target(target)
        t = profile.training
        wiener = bool(t.wiener_channels)
        if wiener and wiener_calibration is None:
            raise TrainingError("training.wiener_channels: the transforms need the Wiener-filter calibration")
        scale = float(_fields.phi_target_scale(profile)) if (target == "phi" or wiener) else 1.0
        return cls(target=target, n_gal_scale=float(t.n_gal_scale), v_pec_scale=float(t.v_pec_scale),
                   delta_transform=t.delta_transform, phi_transform=t.phi_transform, phi_scale=scale,
                   phi_zero_mean=bool(t.phi_zero_mean) and target == "phi", wiener_channels=wiener,
                   wiener_calibration=wiener_calibration if wiener else None)

    @property
    def in_channels(self) -> int:
        """Channels of the network input: 2 (N_gal, V_pec), 4 with the Wiener channels."""
        return 4 if self.wiener_channels else 2

    @property
    def residual_channel(self) -> int | None:
        """The input channel the network corrects (φ_WF for φ, δ_WF for δ), or None."""
        if not self.wiener_channels:
            return None
        return 2 if self.target == "phi" else 3

    # inputs -----------------------------------------------------------------
    def normalise_inputs(self, x) -> np.ndarray:
        """(…, C) raw inputs → network inputs, float32. C = 2: (N_gal, V_pec [km/s]) →
        (u0, u1); C = 4 (``wiener_channels``): also (φ_WF [(km/s)²], δ_WF) → their target
        transforms, (φ_WF − ⟨φ_WF⟩_cube) / s and ln max(1 + δ_WF, floor), so that the
        residual channel is in the units of the network's output."""
        x = np.asarray(x)
        if x.shape[-1:] != (self.in_channels,):
            what = "(N_gal, V_pec, phi_WF, delta_WF)" if self.wiener_channels else "(N_gal, V_pec)"
            raise TrainingError(f"inputs must have {self.in_channels} channels {what} last, got shape {x.shape}")
        out = np.empty(x.shape, np.float32)
        out[..., 0] = np.log1p(np.maximum(x[..., 0], 0.0)) / self.n_gal_scale
        out[..., 1] = x[..., 1] / self.v_pec_scale
        if self.wiener_channels:
            out[..., 2] = _fields.phi_to_target(x[..., 2], self.phi_scale, zero_mean=True)
            out[..., 3] = _fields.delta_to_target(x[..., 3], self.delta_transform, self.delta_floor)
        return out

    def denormalise_inputs(self, u) -> np.ndarray:
        """Inverse of :meth:`normalise_inputs` for the two survey channels (N_gal, V_pec)."""
        u = np.asarray(u, np.float64)
        out = np.empty(u.shape[:-1] + (2,), np.float32)
        out[..., 0] = np.expm1(u[..., 0] * self.n_gal_scale)
        out[..., 1] = u[..., 1] * self.v_pec_scale
        return out

    # targets ----------------------------------------------------------------
    def encode_target(self, field) -> np.ndarray:
        """Physical field (δ, or φ in (km/s)²) → network target, float32."""
        if self.target == "delta":
            return _fields.delta_to_target(field, self.delta_transform, self.delta_floor)
        return _fields.phi_to_target(field, self.phi_scale, self.phi_zero_mean)

    def decode_target(self, t) -> np.ndarray:
        """Network output → physical field (δ, or φ in (km/s)², zero cube mean when
        ``phi_zero_mean``), float32."""
        if self.target == "delta":
            return _fields.target_to_delta(t, self.delta_transform)
        return _fields.target_to_phi(t, self.phi_scale)

    @property
    def units(self) -> str:
        return UNITS[self.target]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Transforms":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown or "target" not in d:
            raise TrainingError(f"transforms: unknown keys {sorted(unknown)} or no target in {d}")
        return cls(**d)

"""Profiles: every size and knob of the pipeline, in one validated YAML file per scale.

A profile is loaded into a tree of frozen pydantic dataclasses (:class:`Profile`): real
:mod:`dataclasses` (``dataclasses.replace``, ``asdict``, ``fields`` work on them), whose field
annotations pydantic checks. Loading checks every key: an unknown key, a wrong type (strictly:
an integer is a number, but ``true`` is not an integer nor ``"3"`` a number) or an impossible
value (each section's ``validate``) raises :class:`ProfileError` with a one-line message naming
the key (``profile 'ci': simulation.parent_mesh: must be a power of two, got 48``).
Constructing a section or ``dataclasses.replace``-ing one checks the types only (a pydantic
``ValidationError``), not the values: code may build what a profile file could not hold.

Overrides use dotted keys, as on the command line (``zoa run -p training.epochs=3``)
and in a notebook's ``parameters`` cell (``overrides = {"training.epochs": 3}``).

A file that is not UTF-8, not valid YAML (also: a key given twice, which PyYAML would
silently resolve to the last, or nesting deeper than Python's recursion limit), not a
mapping, or holds a number out of range (integers beyond 64 bits, floats beyond ±1.8e308)
raises :class:`ProfileError` too, with the file and line.

Units follow docs/DESIGN.md: lengths in Mpc/h, velocities in km/s, angles in
degrees, H0 = 100 h km/s/Mpc.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import typing
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, TypeVar

import yaml
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from zoa_lib.errors import ZoaError, printable
from zoa_lib.io.paths import data_root, shipped_dir

PROFILES_DIR = shipped_dir("profiles")
PROFILE_NAMES = ("ci", "laptop", "workstation", "paper")
#: Override keys that change how a run executes but not what it computes: a run that overrides
#: only these keeps the profile's data folder (:func:`run_data_tag`).
EXECUTION_KEYS = frozenset({"description", "data_dir", "data_tag", "mocks.workers", "book.cell_timeout",
                            "book.expected_minutes", "training.in_memory_gib"})
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class ProfileError(ZoaError, ValueError):
    """A profile file or override is invalid; the message names the key."""


def _power_of_two(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


# --------------------------------------------------------------------------- field types
# What a profile's YAML may give for each annotation; pydantic checks it, and
# :func:`_error_line` words its first complaint as a one-line message naming the key.
#: a number: an integer or a float, stored as a float; not a bool or a string; finite
#: (``allow_inf_nan=False`` in :data:`_CONFIG`; an integer beyond ±1.8e308 fails too)
_Float = Annotated[float, Strict()]
#: an integer (not a bool, not 2.0) that fits 64 bits
_Int = Annotated[int, Strict(), Field(ge=-2 ** 63, le=2 ** 63 - 1)]
_Bool = Annotated[bool, Strict()]
_Str = Annotated[str, Strict()]


def _list_to_tuple(value):
    return tuple(value) if isinstance(value, list) else value


#: a YAML list (or a tuple) of numbers, stored as a tuple; not a string, a set or a mapping
_Floats = Annotated[tuple[_Float, ...], Strict(), BeforeValidator(_list_to_tuple)]


def _none_to_empty(value):
    return {} if value is None else value


_S = TypeVar("_S")
#: a section: a mapping of its keys; empty (``box:`` alone, YAML null) gives its defaults
_Section = Annotated[_S, BeforeValidator(_none_to_empty)]
#: unknown keys are an error; so are NaN and infinities in any float. The validators are built
#: at the first use (the first profile loaded), not at import.
_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)
#: the validation context under which the sections' ``validate`` value checks run (:func:`_validate`)
_CHECK_VALUES = "zoa.profile.check_values"


def _fail(key: str, msg: str):
    """The ``err`` that ``validate`` methods call: ``key`` (dotted, relative to the section) is wrong."""
    raise PydanticCustomError("profile_value", "{key}: {msg}", {"key": key, "msg": msg})


class _Checked:
    """Base of the profile's sections: after pydantic's type checks, run the section's
    ``validate(err)`` value checks when a profile file is loaded (the validation context of
    :func:`_validate`). A section checks its own keys; :class:`Profile` the keys across sections,
    after every section passed."""

    @model_validator(mode="after")
    def _check_values(self, info: ValidationInfo):
        if info.context and info.context.get(_CHECK_VALUES):
            self.validate(_fail)
        return self

    def validate(self, err) -> None:
        """Call ``err(key, message)`` for an impossible value (each section has its own)."""


# --------------------------------------------------------------------------- sections
@dataclass(frozen=True, config=_CONFIG)
class CosmologyConfig(_Checked):
    """Cosmological parameters. ``name`` is a colossus cosmology (``planck18``);
    any parameter given here overrides it (H0 in km/s/Mpc, the rest dimensionless)."""

    name: _Str = "planck18"
    H0: _Float | None = None
    Om0: _Float | None = None
    Ob0: _Float | None = None
    sigma8: _Float | None = None
    ns: _Float | None = None

    def validate(self, err):
        if self.name not in ("planck18", "planck15", "planck13", "WMAP9"):
            err("name", f"unknown cosmology {self.name!r} (planck18, planck15, planck13, WMAP9)")
        for key in ("H0", "Om0", "Ob0", "sigma8", "ns"):
            v = getattr(self, key)
            if v is not None and v <= 0:
                err(key, f"must be > 0, got {v}")
        if self.Om0 is not None and self.Om0 > 1:
            err("Om0", f"must be <= 1, got {self.Om0}")


@dataclass(frozen=True, config=_CONFIG)
class BoxConfig(_Checked):
    """The observer-centred cube the network sees: side ``size`` (Mpc/h) on a
    ``grid``³ mesh; targets smoothed with a Gaussian of ``smoothing`` Mpc/h."""

    size: _Float = 160.0
    grid: _Int = 32
    smoothing: _Float = 1.25

    def validate(self, err):
        if self.size <= 0:
            err("size", f"must be > 0 Mpc/h, got {self.size}")
        if not _power_of_two(self.grid) or self.grid < 8:
            err("grid", f"must be a power of two >= 8, got {self.grid}")
        if self.smoothing < 0:
            err("smoothing", f"must be >= 0 Mpc/h, got {self.smoothing}")

    @property
    def voxel(self) -> float:
        """Voxel side in Mpc/h."""
        return self.size / self.grid


@dataclass(frozen=True, config=_CONFIG)
class SimulationConfig(_Checked):
    """Parent periodic boxes (side ``parent_size`` Mpc/h, ``parent_mesh``³ particles
    and mesh), displaced with Lagrangian perturbation theory of order ``lpt_order``
    (1 = Zel'dovich, 2 = 2LPT). Each parent box yields ``observers_per_box`` cubes at
    random observer positions, each turned by one of ``rotations`` (24 proper or 48
    with reflections) symmetries of the cube. ``engine``: ``2lpt`` (the particles are
    the LPT ones at z = 0) or ``pm`` (the same LPT particles at a = ``pm_a_start``
    evolved to a = 1 with ``pm_steps`` particle-mesh steps, :mod:`zoa_lib.universe.pm`; needs
    the optional extra ``pm``)."""

    parent_size: _Float = 640.0
    parent_mesh: _Int = 128
    lpt_order: _Int = 2
    observers_per_box: _Int = 32
    rotations: _Int = 24
    velocity: Literal["particles", "linear"] = "particles"
    engine: Literal["2lpt", "pm"] = "2lpt"
    pm_steps: _Int = 10
    pm_a_start: _Float = 0.1

    def validate(self, err):
        if self.parent_size <= 0:
            err("parent_size", f"must be > 0 Mpc/h, got {self.parent_size}")
        if not _power_of_two(self.parent_mesh):
            err("parent_mesh", f"must be a power of two, got {self.parent_mesh}")
        if self.lpt_order not in (1, 2):
            err("lpt_order", f"must be 1 (Zel'dovich) or 2 (2LPT), got {self.lpt_order}")
        if self.observers_per_box < 1:
            err("observers_per_box", f"must be >= 1, got {self.observers_per_box}")
        if self.rotations not in (1, 24, 48):
            err("rotations", f"must be 1, 24 or 48, got {self.rotations}")
        if self.pm_steps < 1:
            err("pm_steps", f"must be >= 1, got {self.pm_steps}")
        if not 0 < self.pm_a_start < 1:
            err("pm_a_start", f"must be in (0, 1), got {self.pm_a_start}")


@dataclass(frozen=True, config=_CONFIG)
class SurveyConfig(_Checked):
    """A CF4-like mock survey inside the cube.

    ``n_galaxies``: expected galaxies inside ``r_max`` (Mpc/h); the radial selection is
    n(r) ∝ exp(-(r / ``selection_r0``)^``selection_power``); galaxies at Galactic latitude
    |b| < ``zoa_b`` (deg) are removed; distance moduli carry Gaussian errors of
    ``sigma_dm`` mag (log-normal distances); ``bias`` is a linear galaxy bias;
    ``sigma_v_nl`` (km/s) an extra, velocity-independent scatter (nonlinear motions).
    ``grid_position`` says where a galaxy is gridded: ``observed`` (its observed distance
    d_obs, as a raw catalogue gives it), ``true`` (d_true) or ``corrected`` (d_true plus a
    Gaussian residual of σ = √(``corrected_scatter``² + (``corrected_scatter_fraction`` d_true)²)
    Mpc/h along the line of sight: a bias-corrected catalogue such as the HAMLET-corrected CF4
    realizations the paper feeds its networks; :func:`zoa_lib.survey.galaxies.catalog_positions`). The two
    scatter keys are a project choice (the paper does not state HAMLET's residual) and only
    matter for ``corrected``.
    ``selection``: ``redshift`` (default; as CF4) selects and weights galaxies by their
    redshift distance cz (:func:`zoa_lib.survey.galaxies.draw_galaxies`) and counts ``n_galaxies``
    after the ZOA cut; ``true_distance`` (the earlier default) by true distance, counted before it.
    ``catalogue``: a real peculiar-velocity catalogue (path: absolute, or relative to the working
    folder or to the repository, e.g. ``data/cf3-group-members.tsv``) whose selection the mocks
    copy instead of the analytic one (:mod:`zoa_lib.survey.selection`): its sky coverage as a HEALPix
    mask of ``catalogue_nside``, its distribution of redshift distances out to its full depth
    (galaxies are drawn from the parent box beyond the cube), its distance-modulus errors as they
    depend on distance, and hence its number of galaxies; ``n_galaxies``, ``r_max``,
    ``selection_r0``, ``selection_power``, ``zoa_b`` and ``sigma_dm`` then do not shape the mocks
    (``zoa_b`` still names the ZOA band the metrics score). ``catalogue_groups``: copy the
    catalogue's group averages (one row per group) instead of its galaxies."""

    n_galaxies: _Int = 17000
    r_max: _Float = 80.0
    selection_r0: _Float = 60.0
    selection_power: _Float = 2.0
    zoa_b: _Float = 10.0
    sigma_dm: _Float = 0.4
    sigma_v_nl: _Float = 0.0
    bias: _Float = 1.0
    estimator: Literal["watkins_feldman", "linear"] = "watkins_feldman"
    grid_position: Literal["observed", "true", "corrected"] = "observed"
    corrected_scatter: _Float = 0.0
    corrected_scatter_fraction: _Float = 0.05
    error_weighting: _Bool = False
    selection: Literal["redshift", "true_distance"] = "redshift"
    catalogue: _Str | None = None
    catalogue_nside: _Int = 8
    catalogue_groups: _Bool = False

    def validate(self, err):
        if self.catalogue is not None and not self.catalogue.strip():
            err("catalogue", "must be a catalogue path or null (the analytic selection)")
        if self.catalogue_nside < 1 or self.catalogue_nside & (self.catalogue_nside - 1):
            err("catalogue_nside", f"must be a power of two >= 1 (HEALPix), got {self.catalogue_nside}")
        if self.n_galaxies < 1:
            err("n_galaxies", f"must be >= 1, got {self.n_galaxies}")
        for key in ("r_max", "selection_r0", "selection_power"):
            if getattr(self, key) <= 0:
                err(key, f"must be > 0, got {getattr(self, key)}")
        if not 0 <= self.zoa_b < 90:
            err("zoa_b", f"must be in [0, 90) degrees, got {self.zoa_b}")
        if self.sigma_dm < 0:
            err("sigma_dm", f"must be >= 0 mag, got {self.sigma_dm}")
        if self.sigma_v_nl < 0:
            err("sigma_v_nl", f"must be >= 0 km/s, got {self.sigma_v_nl}")
        if self.bias <= 0:
            err("bias", f"must be > 0, got {self.bias}")
        if self.corrected_scatter < 0:
            err("corrected_scatter", f"must be >= 0 Mpc/h, got {self.corrected_scatter}")
        if not 0 <= self.corrected_scatter_fraction < 1:
            err("corrected_scatter_fraction", f"must be in [0, 1), got {self.corrected_scatter_fraction}")


@dataclass(frozen=True, config=_CONFIG)
class MocksConfig(_Checked):
    """How many mocks, and how they are sharded on disk (``shard_size`` mocks per
    HDF5 shard). Train, validation and test mocks come from disjoint parent boxes."""

    n_train: _Int = 256
    n_val: _Int = 32
    n_test: _Int = 32
    shard_size: _Int = 32
    workers: _Int = 2

    def validate(self, err):
        for key in ("n_train", "n_val", "n_test"):
            if getattr(self, key) < 0:
                err(key, f"must be >= 0, got {getattr(self, key)}")
        if self.n_train < 1:
            err("n_train", f"must be >= 1, got {self.n_train}")
        if self.shard_size < 1:
            err("shard_size", f"must be >= 1, got {self.shard_size}")
        if self.workers < 1:
            err("workers", f"must be >= 1, got {self.workers}")

    @property
    def n_total(self) -> int:
        return self.n_train + self.n_val + self.n_test


@dataclass(frozen=True, config=_CONFIG)
class ModelConfig(_Checked):
    """V-Net architecture: ``depth`` resolution levels below the input, ``base_filters``
    channels at full resolution (doubled at each level), ``convs_per_stage`` residual
    convolutions per stage, ``kernel_size``³ kernels, reflection padding."""

    depth: _Int = 3
    base_filters: _Int = 16
    convs_per_stage: _Int = 2
    kernel_size: _Int = 3
    activation: _Str = "relu"
    padding: Literal["reflect", "zeros"] = "reflect"

    def validate(self, err):
        if not 1 <= self.depth <= 6:
            err("depth", f"must be in 1..6, got {self.depth}")
        if self.base_filters < 1:
            err("base_filters", f"must be >= 1, got {self.base_filters}")
        if self.convs_per_stage < 1:
            err("convs_per_stage", f"must be >= 1, got {self.convs_per_stage}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            err("kernel_size", f"must be a positive odd integer, got {self.kernel_size}")
        if self.activation not in ("relu", "elu", "gelu", "leaky_relu", "prelu", "swish", "tanh"):
            err("activation", f"unknown activation {self.activation!r}")


@dataclass(frozen=True, config=_CONFIG)
class TrainingConfig(_Checked):
    """Adam on the MSE with a triangular cyclic learning rate (Smith 2017) between
    ``lr_min`` and ``lr_max``; one cycle lasts 2 × ``lr_half_cycle_epochs`` epochs.
    ``n_gal_scale`` and ``v_pec_scale`` (km/s) normalise the inputs. ``augment``: train on
    random symmetries of the cube about the observer (the 24 rotations, or all 48 with
    reflections when ``augment_reflections``). ``deterministic``: enable TensorFlow's op
    determinism (``tf.config.experimental.enable_op_determinism()``) before the model is built,
    so that two runs of the profile give bit-identical weights on the same machine and
    software (CPU thread reductions and GPU cuDNN/atomics otherwise differ in the last bits);
    slower, off by default. ``zoa train --deterministic`` sets it. ``phi_zero_mean``: train the
    φ network on each cube's φ with its mean removed (:func:`zoa_lib.universe.fields.phi_to_target`;
    velocities cannot measure that constant, and as a target it made the network collapse to
    a constant prediction). ``in_memory_gib``: hold the training and validation
    mocks in memory when they need at most this many GiB (0: always stream from the shards).
    ``wiener_channels``: give the network the calibrated Wiener filter's (φ, δ) as two more
    input channels and train it to correct them (:mod:`zoa_lib.methods.wiener_channels`; not in the
    paper, which feeds the two survey channels only)."""

    epochs: _Int = 20
    batch_size: _Int = 4
    lr_min: _Float = 1e-7
    lr_max: _Float = 1e-5
    lr_half_cycle_epochs: _Float = 4.0
    augment: _Bool = True
    augment_reflections: _Bool = False
    mixed_precision: _Bool = False
    xla: _Bool = False
    n_gal_scale: _Float = 1.0
    v_pec_scale: _Float = 500.0
    delta_transform: Literal["log1p", "identity"] = "log1p"
    phi_transform: Literal["standardize", "identity"] = "standardize"
    phi_zero_mean: _Bool = True
    deterministic: _Bool = False
    in_memory_gib: _Float = 4.0
    wiener_channels: _Bool = False

    def validate(self, err):
        if self.in_memory_gib < 0:
            err("in_memory_gib", f"must be >= 0 GiB, got {self.in_memory_gib}")
        if self.epochs < 1:
            err("epochs", f"must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            err("batch_size", f"must be >= 1, got {self.batch_size}")
        if not 0 < self.lr_min <= self.lr_max:
            err("lr_min", f"need 0 < lr_min <= lr_max, got {self.lr_min}, {self.lr_max}")
        if self.lr_half_cycle_epochs <= 0:
            err("lr_half_cycle_epochs", f"must be > 0, got {self.lr_half_cycle_epochs}")
        for key in ("n_gal_scale", "v_pec_scale"):
            if getattr(self, key) <= 0:
                err(key, f"must be > 0, got {getattr(self, key)}")


@dataclass(frozen=True, config=_CONFIG)
class EvaluationConfig(_Checked):
    """Held-out metrics and classical baselines. ``bulk_flow_radii`` in Mpc/h;
    ``wiener_*`` control the conjugate-gradient Wiener filter; ``potent_smoothing``
    (Mpc/h) is POTENT's Gaussian smoothing of the radial velocities. ``wiener_tol`` 10⁻³
    (relative CG residual): on laptop mocks the per-mock r(φ) of the filter agrees with
    10⁻⁵ to 4 decimals at half the iterations (10⁻² changes it in the third decimal)."""

    n_eval: _Int = 16
    bulk_flow_radii: _Floats = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0)
    distance_shells: _Floats = (0.0, 20.0, 40.0, 60.0, 80.0)
    wiener_tol: _Float = 1e-3
    wiener_maxiter: _Int = 500
    wiener_sigma_v: _Float = 0.0
    potent_smoothing: _Float = 10.0

    def validate(self, err):
        if self.n_eval < 1:
            err("n_eval", f"must be >= 1, got {self.n_eval}")
        if any(r <= 0 for r in self.bulk_flow_radii):
            err("bulk_flow_radii", "every radius must be > 0 Mpc/h")
        if list(self.distance_shells) != sorted(self.distance_shells) or len(self.distance_shells) < 2:
            err("distance_shells", "must be at least two increasing edges in Mpc/h")
        if self.wiener_tol <= 0:
            err("wiener_tol", f"must be > 0, got {self.wiener_tol}")
        if self.wiener_maxiter < 1:
            err("wiener_maxiter", f"must be >= 1, got {self.wiener_maxiter}")
        if self.potent_smoothing <= 0:
            err("potent_smoothing", f"must be > 0 Mpc/h, got {self.potent_smoothing}")


@dataclass(frozen=True, config=_CONFIG)
class LocalUniverseConfig(_Checked):
    """The constrained local-universe mock and the Great Attractor search:
    ``n_realizations`` noise realizations of the survey; the GA counts as found when a
    density peak lies within ``ga_match_radius`` Mpc/h of its literature position."""

    n_realizations: _Int = 20
    constraint_smoothing: _Float = 5.0
    ga_match_radius: _Float = 15.0

    def validate(self, err):
        if self.n_realizations < 1:
            err("n_realizations", f"must be >= 1, got {self.n_realizations}")
        if self.constraint_smoothing <= 0:
            err("constraint_smoothing", f"must be > 0, got {self.constraint_smoothing}")
        if self.ga_match_radius <= 0:
            err("ga_match_radius", f"must be > 0, got {self.ga_match_radius}")


@dataclass(frozen=True, config=_CONFIG)
class BookConfig(_Checked):
    """Notebook execution: papermill's per-cell timeout in seconds; ``variant_epochs``: the
    epochs of each φ-network variant that chapter 03 trains and compares
    (:mod:`zoa_lib.analysis.variants`; 0: show the table of an earlier ``zoa variants`` run, if any).
    ``expected_minutes``: the expected wall time (minutes) of chapters 01, 02, … in order (0 or
    absent: unknown); ``zoa run`` shows it as the estimate when this data folder holds no
    earlier timing, and gives a chapter's cells up to twice it (at least ``cell_timeout``)."""

    cell_timeout: _Int = 3600
    variant_epochs: _Int = 0
    expected_minutes: _Floats = ()

    def validate(self, err):
        if self.cell_timeout < 1:
            err("cell_timeout", f"must be >= 1 s, got {self.cell_timeout}")
        if any(m < 0 for m in self.expected_minutes):
            err("expected_minutes", "every entry must be >= 0 minutes")
        if self.variant_epochs < 0:
            err("variant_epochs", f"must be >= 0, got {self.variant_epochs}")


@dataclass(frozen=True, config=_CONFIG)
class Profile(_Checked):
    """A whole profile. ``data_dir`` is where generated data goes (relative paths are
    taken from the repository root, or from $ZOA_DATA when it is set). ``data_tag`` names a
    separate data folder ``<data_dir>/<name>-<data_tag>``: ``zoa run`` sets it to a hash of
    its overrides (:func:`run_data_tag`), and a YAML file outside ``profiles/`` gets a hash of
    its path, so neither can write into a built-in profile's ``<data_dir>/<name>``.
    ``network``: which of the profile's networks its models and predictions are
    (:data:`zoa_lib.methods.networks.NETWORKS`; set by :func:`zoa_lib.methods.networks.network_profile`, not
    in YAML files): ``vnet``, the profile's own set-up, or ``vnet_paper``, the paper's two
    input channels, whose files live in ``models/vnet_paper/`` and ``predictions/vnet_paper/``."""

    name: _Str
    description: _Str = ""
    seed: _Int = 20251105
    data_dir: _Str = "data"
    data_tag: _Str = ""
    network: _Str = "vnet"
    cosmology: _Section[CosmologyConfig] = field(default_factory=CosmologyConfig)
    box: _Section[BoxConfig] = field(default_factory=BoxConfig)
    simulation: _Section[SimulationConfig] = field(default_factory=SimulationConfig)
    survey: _Section[SurveyConfig] = field(default_factory=SurveyConfig)
    mocks: _Section[MocksConfig] = field(default_factory=MocksConfig)
    model: _Section[ModelConfig] = field(default_factory=ModelConfig)
    training: _Section[TrainingConfig] = field(default_factory=TrainingConfig)
    evaluation: _Section[EvaluationConfig] = field(default_factory=EvaluationConfig)
    local_universe: _Section[LocalUniverseConfig] = field(default_factory=LocalUniverseConfig)
    book: _Section[BookConfig] = field(default_factory=BookConfig)

    def validate(self, err):
        if self.seed < 0:
            err("seed", f"must be >= 0, got {self.seed}")
        if self.network not in ("vnet", "vnet_paper"):
            err("network", f"must be vnet or vnet_paper, got {_show(self.network)}")
        if self.network == "vnet_paper" and self.training.wiener_channels:
            err("network", "vnet_paper reads the two survey channels only: training.wiener_channels must be "
                "false (zoa_lib.methods.networks.network_profile sets both)")
        if self.data_tag and not _TAG.fullmatch(self.data_tag):
            err("data_tag", f"must be letters, digits, '.', '_' or '-' (at most 64), got {_show(self.data_tag)}")
        if self.simulation.parent_size < self.box.size:
            err("simulation.parent_size",
                f"parent box ({self.simulation.parent_size} Mpc/h) must be at least the cube "
                f"({self.box.size} Mpc/h)")
        if self.survey.r_max > self.box.size / 2 * 3 ** 0.5:
            err("survey.r_max", f"{self.survey.r_max} Mpc/h reaches beyond the cube's corners")
        cube_mesh = self.box.size / self.simulation.parent_size * self.simulation.parent_mesh
        if cube_mesh < self.box.grid / 2:
            err("simulation.parent_mesh",
                f"parent mesh too coarse: the cube gets {cube_mesh:.0f} mesh cells per side "
                f"for a {self.box.grid}^3 grid (need at least grid/2)")

    # -- conveniences
    @property
    def data_path(self) -> Path:
        """Root folder of this profile's generated data: ``<data_dir>/<name>``, or
        ``<data_dir>/<name>-<data_tag>`` when the profile carries a tag."""
        base = Path(os.environ.get("ZOA_DATA", self.data_dir))
        if not base.is_absolute():
            base = data_root() / base
        return base / (f"{self.name}-{self.data_tag}" if self.data_tag else self.name)

    def to_dict(self) -> dict:
        """The settings as plain data. ``data_tag`` and ``network`` are left out: they say where
        the data goes, not what it is (a copy of the YAML elsewhere gets a tag of its own; a
        network's settings are in its sections)."""
        d = to_plain(self)
        d.pop("data_tag", None)
        d.pop("network", None)
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def to_plain(obj):
    """``obj`` as plain data for YAML and JSON: a profile or a section (any dataclass) as nested
    dicts (:func:`dataclasses.asdict`), tuples as lists, recursively."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- loading
@functools.cache
def _adapter() -> TypeAdapter:
    return TypeAdapter(Profile)


def _validate(data: Mapping) -> Profile:
    """The :class:`Profile` of a profile file's ``data`` (after overrides): pydantic's type checks
    and every section's ``validate``; the first error as a one-line :class:`ProfileError`."""
    try:
        return _adapter().validate_python(data, context={_CHECK_VALUES: True})
    except ValidationError as e:
        raise ProfileError(_error_line(e)) from None


def _section_of(loc) -> type | None:
    """The section class that holds the key at the end of the pydantic location ``loc``."""
    cls = Profile
    for part in loc[:-1]:
        f = {f.name: f for f in dataclasses.fields(cls)}.get(part) if isinstance(part, str) else None
        tp = typing.get_type_hints(cls)[part] if f is not None else None
        if tp is None or not dataclasses.is_dataclass(tp):
            return None
        cls = tp
    return cls


def _order(error: dict) -> tuple:
    """Sort key that puts first the error the pre-pydantic checker met first: sections in field
    order, depth first; in each, an unknown key before the fields (in file order among them)."""
    loc, key = error["loc"], []
    unknown = error["type"] in ("unexpected_keyword_argument", "invalid_key")
    for i, part in enumerate(loc):
        cls = _section_of(loc[:i + 1])
        if isinstance(part, int) or cls is None:  # a list element (or below an unknown key)
            key.append(part if isinstance(part, int) else 0)
        elif unknown and i == len(loc) - 1:
            key.append(-1)
        else:
            key.append([f.name for f in dataclasses.fields(cls)].index(part))
    return tuple(key)


def _dotted(loc) -> str:
    """``simulation.parent_mesh``, ``evaluation.bulk_flow_radii[2]`` for a pydantic location."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _error_line(e: ValidationError) -> str:
    """The first of pydantic's complaints (in :func:`_order`) as ``dotted.key: what, got value``."""
    error = sorted(e.errors(include_url=False), key=_order)[0]
    loc, kind, value = error["loc"], error["type"], error.get("input")
    ctx = error.get("ctx") or {}

    def at(*more) -> str:
        return ".".join(x for x in (_dotted(loc), *more) if x)

    def got() -> str:
        return f"{type(value).__name__} {_show(value)}"

    if kind == "profile_value":  # a section's validate(err)
        return f"{at(ctx['key'])}: {ctx['msg']}"
    if kind in ("unexpected_keyword_argument", "invalid_key"):
        cls = _section_of(loc)
        known = f" (known: {', '.join(sorted(f.name for f in dataclasses.fields(cls)))})" if cls else ""
        name = _key(loc[-1] if kind == "unexpected_keyword_argument" else value)
        return f"{'.'.join(x for x in (_dotted(loc[:-1]), name) if x)}: unknown key{known}"
    if kind == "missing":
        return f"{at()}: required key is missing"
    if kind == "dataclass_type":
        return f"{at() or 'profile'}: must be a mapping of keys, got {type(value).__name__}"
    if kind == "bool_type":
        return f"{at()}: must be true or false, got {_show(value)}"
    if kind == "int_type":
        return f"{at()}: must be an integer, got {got()}"
    if kind in ("greater_than_equal", "less_than_equal") and isinstance(value, int):
        return f"{at()}: must be an integer between -2^63 and 2^63-1, got {_show(value)}"
    if kind == "float_type" and isinstance(value, int) and not isinstance(value, bool):
        return f"{at()}: must be finite, got {_show(value)}"  # beyond float range
    if kind == "float_type":
        return f"{at()}: must be a number, got {got()}"
    if kind == "finite_number":
        return f"{at()}: must be finite, got {value}"
    if kind == "string_type":
        return f"{at()}: must be a string, got {got()}"
    if kind == "tuple_type":
        return f"{at()}: must be a list, got {got()}"
    if kind == "literal_error":
        cls = _section_of(loc)
        tp = typing.get_type_hints(cls)[loc[-1]] if cls and isinstance(loc[-1], str) else None
        allowed = ", ".join(map(repr, typing.get_args(tp))) if typing.get_origin(tp) is Literal else ctx.get("expected")
        return f"{at()}: must be one of {allowed}, got {_show(value)}"
    return f"{at() or 'profile'}: {printable(error['msg'], limit=120)}, got {_show(value)}"


def _show(value, limit: int = 60) -> str:
    """A value for a one-line message: its repr, escaped and cut when long (a 400-digit
    integer is shown by its number of digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 30:
        return f"an integer of {len(str(abs(value)))} digits"
    return printable(value, limit=limit, quote=True)


def _key(key) -> str:
    """A mapping key for a dotted name in a one-line message."""
    return printable(key, limit=40) if isinstance(key, str) else _show(key, 40)


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the
    last one silently)."""


def _no_duplicate_keys(loader: _Loader, node: yaml.MappingNode, deep: bool = False):
    seen: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # unhashable: construct_mapping says so
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {_show(key, 40)} (first on line {first.line + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def _yaml_error(e: BaseException, text: str, line: bool = True) -> str:
    """``line N: not valid YAML (what)`` — one line — for a PyYAML error while loading
    ``text`` (without ``line N: `` when ``line`` is false)."""
    if isinstance(e, yaml.reader.ReaderError):
        n = text.count("\n", 0, max(0, e.position)) + 1
        ch = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or "\0")
        what = f"character U+{ch:04X} not allowed: {e.reason}"
    else:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        n = mark.line + 1 if mark else None
        what = "; ".join(printable(x, limit=120) for x in (getattr(e, "context", None), getattr(e, "problem", None))
                         if x) or printable(str(e).splitlines()[0] if str(e) else type(e).__name__, limit=120)
    return (f"line {n}: " if line and n else "") + f"not valid YAML ({what})"


def _safe_load(text: str):
    """``yaml.safe_load`` with duplicate keys refused (:class:`_Loader`)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def _load_yaml(text: str, where: str, line: bool = True):
    """:func:`_safe_load`, any YAML error (or nesting beyond the recursion limit) turned
    into a one-line :class:`ProfileError` starting with ``where``."""
    try:
        return _safe_load(text)
    except yaml.YAMLError as e:
        raise ProfileError(f"{where}: {_yaml_error(e, text, line=line)}") from None
    except RecursionError:
        raise ProfileError(f"{where}: not valid YAML (nested too deeply)") from None


def parse_value(text: str) -> Any:
    """Parse a command-line override value with YAML rules (``3`` → int, ``1e-5`` →
    float, ``true`` → bool, ``[1, 2]`` → list). Not valid YAML: :class:`ProfileError`."""
    value = _load_yaml(text, f"value {_show(text)}", line=False)
    if isinstance(value, str):
        try:  # YAML 1.1 reads '1e-5' as a string
            value = float(value)
        except ValueError:
            pass
    return value


def apply_overrides(data: dict, overrides: Mapping[str, Any] | None) -> dict:
    """Return a copy of ``data`` with dotted-key ``overrides`` set. Values are used as
    given (the CLI parses ``-p key=value`` text with :func:`parse_value` first)."""
    import copy

    data = copy.deepcopy(data)
    for dotted, value in (overrides or {}).items():
        parts = str(dotted).split(".")
        if not all(p.strip() for p in parts):
            raise ProfileError(f"override key {_show(str(dotted))}: expected a dotted key such as training.epochs")
        node = data
        for p in parts[:-1]:
            if node.get(p) is None:  # an absent or empty section
                node[p] = {}
            node = node[p]
            if not isinstance(node, dict):
                raise ProfileError(f"{printable(dotted)}: {printable(p)} is not a section")
        node[parts[-1]] = value
    return data


def profile_path(name: str | os.PathLike) -> Path:
    """Path of a profile given by name (``ci``) or by a path to a YAML file."""
    p = Path(name)
    if p.suffix in (".yml", ".yaml"):
        return p
    return PROFILES_DIR / f"{name}.yml"


def is_builtin(name: str | os.PathLike) -> bool:
    """Whether ``name`` is a profile of ``profiles/`` (by name, or a YAML path inside it)."""
    path = profile_path(name)
    try:
        return path.resolve().parent == PROFILES_DIR.resolve()
    except OSError:
        return False


def run_data_tag(name: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> str:
    """The ``data_tag`` that keeps a run's data apart: ``""`` for a built-in profile with no
    overrides (or overrides of :data:`EXECUTION_KEYS` only), else the first 8 hex digits of
    the SHA-256 of the overrides (JSON, sorted keys) and, for a YAML file outside
    ``profiles/``, of its absolute path. The same profile and overrides give the same tag."""
    keyed = {str(k): v for k, v in (overrides or {}).items() if str(k) not in EXECUTION_KEYS}
    outside = not is_builtin(name)
    if not keyed and not outside:
        return ""
    payload = {"file": str(profile_path(name).resolve()) if outside else None, "overrides": keyed}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:8]


def load_profile(name: str | os.PathLike = "laptop", overrides: Mapping[str, Any] | None = None) -> Profile:
    """Load, override and validate a profile.

    Parameters
    ----------
    name : profile name (``ci``, ``laptop``, ``workstation``, ``paper``) or YAML path.
    overrides : dotted keys to set, e.g. ``{"training.epochs": 3}``.

    Raises
    ------
    ProfileError : one line naming the file and the offending key.
    """
    path = profile_path(name)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yml")))
        raise ProfileError(f"profile {printable(str(name), quote=True)} not found (known: {known})")
    if path.is_dir():
        raise ProfileError(f"profile {path}: is a folder, not a YAML file")
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ProfileError(f"profile {path}: line {line}: not UTF-8 text ({e.reason}, byte 0x{raw[e.start]:02x} at "
                           f"offset {e.start})") from None
    except OSError as e:
        raise ProfileError(f"profile {path}: cannot read ({e.strerror or e})") from None
    data = _load_yaml(text, f"profile {path}")
    if data is None:
        raise ProfileError(f"profile {path}: file is empty")
    if not isinstance(data, dict):
        raise ProfileError(f"profile {path}: must be a mapping of keys, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    if data.get("data_tag", "") == "" and not is_builtin(path):  # never the data folder of a built-in profile
        data["data_tag"] = run_data_tag(path)
    try:
        data = apply_overrides(data, overrides)
        return _validate(data)
    except ProfileError as e:
        raise ProfileError(f"profile {_show(data.get('name', path.stem))} ({path}): {e}") from None

"""The reconstruction methods' names: one table for every chapter, file, table and CLI.

Keys are the method names of ``zoa evaluate`` (:data:`zoa_lib.methods.registry.METHODS`: each
network's two targets scored separately, ``vnet_delta`` and ``vnet_phi`` for the profile's
V-Net, ``vnet_paper_delta`` and ``vnet_paper_phi`` for the paper's set-up,
:mod:`zoa_lib.methods.networks`), of ``zoa reconstruct`` and the
local-universe search (``vnet``: δ from the density network and v = −(2f/3H0Ωm)∇φ from the
potential network), and of the classical baselines (:mod:`zoa_lib.methods.baselines`).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from zoa_lib.errors import ZoaError

#: Method name → its name in tables, legends and HDF5 attributes.
from zoa_lib.methods import networks

LABELS = {"vnet": "V-Net", "vnet_delta": "V-Net δ", "vnet_phi": "V-Net φ",
          "vnet_paper_delta": "V-Net δ (paper set-up)", "vnet_paper_phi": "V-Net φ (paper set-up)",
          "wiener": "Wiener filter", "wiener_cal": "calibrated Wiener filter",
          "wiener_joint": "joint Wiener filter (counts + velocities)", "potent": "POTENT"}


def label(method: str) -> str:
    """The display name of ``method`` (:data:`LABELS`; the name itself when unknown)."""
    return LABELS.get(method, str(method))


METHODS = ("vnet_delta", "vnet_phi", "vnet_paper_delta", "vnet_paper_phi", "wiener", "wiener_cal", "wiener_joint",
           "potent")


#: The classical methods, every one a candidate for "best classical" where it is scored against
#: the networks' truth (:func:`~zoa_lib.analysis.verdict.comparable_baselines`: POTENT, scored against a smoother truth,
#: stands in its own table).
BASELINES = ("wiener", "wiener_cal", "wiener_joint", "potent")


#: The networks' methods: (network, target) (:mod:`zoa_lib.methods.networks`).
NETWORK_METHODS = {m: networks.split_method(m) for m in METHODS if networks.split_method(m)}


#: Methods that need the calibration on training mocks (radial bias, σ_nl; counts for the joint filter).
CALIBRATED = ("wiener_cal", "wiener_joint")


TARGET_OF = {m: t for m, (_, t) in NETWORK_METHODS.items()}


#: Reconstruction methods of :func:`~zoa_lib.analysis.ga_search.reconstruct_surveys`, with their names in tables and plots.
SEARCH_METHODS = ("vnet", "wiener", "wiener_cal", "wiener_joint", "potent")


SEARCH_LABELS = {m: LABELS[m] for m in SEARCH_METHODS}


class MethodError(ZoaError, ValueError):
    """A method name that is unknown or empty, or a method that cannot run (its calibration is
    missing)."""


def parse_methods(methods: str | Iterable[str] | None, known: Sequence[str], default: Iterable[str]) -> list[str]:
    """Method names from ``"vnet,wiener_cal"`` or a sequence (None: ``default``), without
    repeats and in the order of ``known`` (the table of the command that asks: :data:`METHODS`
    for ``zoa evaluate``, :data:`SEARCH_METHODS` for ``zoa reconstruct`` and ``zoa crossval``),
    so that files list the methods in one order however they were typed. An unknown or empty
    name raises :class:`MethodError` naming the known ones."""
    if methods is None:
        default = set(default)
        return [m for m in known if m in default]
    items = methods.split(",") if isinstance(methods, str) else list(methods)
    names = [str(m).strip() for m in items]
    for m in names:
        if not m:
            raise MethodError(f"empty method name in {methods!r} (known: {', '.join(known)})")
        if m not in known:
            raise MethodError(f"unknown method {m!r} (known: {', '.join(known)})")
    if not names:
        raise MethodError(f"no method given (known: {', '.join(known)})")
    return [m for m in known if m in names]


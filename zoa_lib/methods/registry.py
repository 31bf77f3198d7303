"""The reconstruction methods' names: one table for every chapter, file, table and CLI.

Keys are the method names of ``zoa evaluate`` (:data:`zoa_lib.methods.registry.METHODS`: each
network's two targets scored separately, ``vnet_delta`` and ``vnet_phi`` for the profile's
V-Net, ``vnet_paper_delta`` and ``vnet_paper_phi`` for the paper's set-up,
:mod:`zoa_lib.methods.networks`), of ``zoa reconstruct`` and the
local-universe search (``vnet``: δ from the density network and v = −(2f/3H0Ωm)∇φ from the
potential network), and of the classical baselines (:mod:`zoa_lib.methods.baselines`).
"""
from __future__ import annotations

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
#: the networks' truth (:func:`comparable_baselines`: POTENT, scored against a smoother truth,
#: stands in its own table).
BASELINES = ("wiener", "wiener_cal", "wiener_joint", "potent")


#: The networks' methods: (network, target) (:mod:`zoa_lib.methods.networks`).
NETWORK_METHODS = {m: networks.split_method(m) for m in METHODS if networks.split_method(m)}


#: Methods that need the calibration on training mocks (radial bias, σ_nl; counts for the joint filter).
CALIBRATED = ("wiener_cal", "wiener_joint")


TARGET_OF = {m: t for m, (_, t) in NETWORK_METHODS.items()}


#: Reconstruction methods of :func:`reconstruct_surveys`, with their names in tables and plots.
SEARCH_METHODS = ("vnet", "wiener", "wiener_cal", "wiener_joint", "potent")


SEARCH_LABELS = {m: LABELS[m] for m in SEARCH_METHODS}

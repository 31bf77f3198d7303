"""The reconstruction methods' names: one table for every chapter, file, table and CLI.

Keys are the method names of ``zoa evaluate`` (:data:`zoa_lib.evaluation.METHODS`: each
network's two targets scored separately, ``vnet_delta`` and ``vnet_phi`` for the profile's
V-Net, ``vnet_paper_delta`` and ``vnet_paper_phi`` for the paper's set-up,
:mod:`zoa_lib.networks`), of ``zoa reconstruct`` and the
local-universe search (``vnet``: δ from the density network and v = −(2f/3H0Ωm)∇φ from the
potential network), and of the classical baselines (:mod:`zoa_lib.baselines`).
"""
from __future__ import annotations

#: Method name → its name in tables, legends and HDF5 attributes.
LABELS = {"vnet": "V-Net", "vnet_delta": "V-Net δ", "vnet_phi": "V-Net φ",
          "vnet_paper_delta": "V-Net δ (paper set-up)", "vnet_paper_phi": "V-Net φ (paper set-up)",
          "wiener": "Wiener filter", "wiener_cal": "calibrated Wiener filter",
          "wiener_joint": "joint Wiener filter (counts + velocities)", "potent": "POTENT"}


def label(method: str) -> str:
    """The display name of ``method`` (:data:`LABELS`; the name itself when unknown)."""
    return LABELS.get(method, str(method))

"""The two V-Net set-ups a profile trains, and where each one's files live.

=============  =====================================================================================
``vnet``       the profile's own set-up. At ``ci`` and ``laptop`` (``training.wiener_channels``) it is
               the *corrector*: the survey's two channels (N_gal, V_pec) plus the calibrated Wiener
               filter's (φ_WF, δ_WF), trained to correct the filter (:mod:`zoa_lib.methods.wiener_channels`).
               At ``paper`` (channels off) it already is the paper's set-up.
``vnet_paper`` the paper's set-up (Dupuy et al. 2025): the two survey channels N_gal and V_pec only,
               the same architecture, activation, loss (MSE), learning-rate cycle, augmentation and
               epochs as ``vnet``. It differs from ``vnet`` in one thing, the inputs, so the pair
               measures what the Wiener channels add. Trained only where it differs from ``vnet``.
=============  =====================================================================================

Both keep this implementation's two documented departures from the paper's text (docs/DESIGN.md,
"The networks"): the φ target without each cube's unmeasurable mean (scored by per-mock r and
the mean-removed MSE, which that constant does not change) and the profile's activation (ELU at
``ci``/``laptop``, PReLU at ``paper``; with ReLU the φ units died).

Files: ``vnet`` in ``<data>/models/<target>/`` and ``<data>/predictions/<target>-<split>.h5``;
``vnet_paper`` in ``<data>/models/vnet_paper/<target>/`` and
``<data>/predictions/vnet_paper/<target>-<split>.h5`` (:func:`files_dir`). Evaluation methods are
``<network>_<target>``: ``vnet_delta``, ``vnet_phi``, ``vnet_paper_delta``, ``vnet_paper_phi``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from zoa_lib.errors import ZoaError

#: Network name → what it reads, for tables and legends.
NETWORKS = {
    "vnet": "the profile's V-Net",
    "vnet_paper": "the paper's set-up: N_gal, V_pec",
}
TARGETS = ("delta", "phi")


class NetworkError(ZoaError, ValueError):
    """An unknown network name."""


def check_network(network: str) -> str:
    """``network`` if it is one of :data:`NETWORKS`, else a one-line :class:`NetworkError`."""
    if network not in NETWORKS:
        raise NetworkError(f"network: unknown network {network!r} (known: {', '.join(NETWORKS)})")
    return network


def network_profile(profile, network: str):
    """The profile that trains and predicts ``network``: the same profile for ``vnet``; for
    ``vnet_paper`` the profile with ``training.wiener_channels`` off and ``network`` set, so that
    its models and predictions go to their own folders (:func:`files_dir`)."""
    check_network(network)
    if network == "vnet":
        return dataclasses.replace(profile, network="vnet") if profile.network != "vnet" else profile
    return dataclasses.replace(profile, network=network,
                               training=dataclasses.replace(profile.training, wiener_channels=False))


def networks(profile) -> tuple[str, ...]:
    """The networks the profile trains: both when its own set-up reads the Wiener channels, only
    ``vnet`` when it already is the paper's set-up (``paper``: training a copy would be waste)."""
    return ("vnet", "vnet_paper") if profile.training.wiener_channels else ("vnet",)


def files_dir(profile, kind: str) -> Path:
    """``<data>/<kind>`` for ``vnet``, ``<data>/<kind>/<network>`` otherwise (kind: models,
    predictions)."""
    base = profile.data_path / kind
    return base if profile.network == "vnet" else base / profile.network


def method(network: str, target: str) -> str:
    """The evaluation method of a network's target: ``vnet_delta``, ``vnet_paper_phi``, …"""
    return f"{check_network(network)}_{target}"


def split_method(name: str) -> tuple[str, str] | None:
    """(network, target) of an evaluation method of a network, None for another method."""
    for net in sorted(NETWORKS, key=len, reverse=True):
        for t in TARGETS:
            if name == f"{net}_{t}":
                return net, t
    return None


def describe(profile, network: str) -> str:
    """What ``network`` reads at this profile, in words (for the landing page's first table)."""
    prof = network_profile(profile, network)
    if prof.training.wiener_channels:
        return "corrector of the calibrated Wiener filter: N_gal, V_pec, φ_WF, δ_WF"
    return "the paper's set-up: N_gal, V_pec"

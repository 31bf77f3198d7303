"""The two V-Net set-ups of a profile (zoa_lib.methods.networks): settings, files, and the CLI flag."""
from __future__ import annotations

import pytest

from zoa_lib.analysis import evaluation
from zoa_lib.config import ProfileError, load_profile
from zoa_lib.methods import networks, registry
from zoa_lib.methods.training import inference, model_files


def test_paper_setup_reads_two_channels_and_keeps_everything_else():
    prof = load_profile("laptop")
    assert prof.training.wiener_channels and prof.network == "vnet"
    paper = networks.network_profile(prof, "vnet_paper")
    assert paper.network == "vnet_paper" and not paper.training.wiener_channels
    # one difference only: the inputs (same architecture, activation, schedule, epochs, mocks)
    same = {k: v for k, v in paper.training.__dict__.items() if k != "wiener_channels"}
    assert same == {k: v for k, v in prof.training.__dict__.items() if k != "wiener_channels"}
    assert paper.model == prof.model and paper.mocks == prof.mocks and paper.survey == prof.survey
    assert paper.data_path == prof.data_path  # the same mocks
    assert networks.networks(prof) == ("vnet", "vnet_paper")
    # the paper profile's V-Net already is the paper's set-up: nothing to train twice
    assert networks.networks(load_profile("paper")) == ("vnet",)
    assert networks.describe(prof, "vnet_paper").startswith("the paper's set-up")
    assert networks.describe(load_profile("paper"), "vnet").startswith("the paper's set-up")


def test_each_network_has_its_own_files():
    prof = load_profile("ci")
    paper = networks.network_profile(prof, "vnet_paper")
    assert model_files.model_dir(prof, "phi") == prof.data_path / "models" / "phi"
    assert model_files.model_dir(paper, "phi") == prof.data_path / "models" / "vnet_paper" / "phi"
    assert inference.predictions_path(prof, "delta") == prof.data_path / "predictions" / "delta-test.h5"
    assert inference.predictions_path(paper, "delta") == prof.data_path / "predictions" / "vnet_paper" / "delta-test.h5"
    # a model of one set-up never matches the other: their training sections differ
    assert paper.to_dict()["training"] != prof.to_dict()["training"]
    assert "network" not in prof.to_dict()


def test_method_names_round_trip():
    for m, (net, t) in registry.NETWORK_METHODS.items():
        assert networks.method(net, t) == m and networks.split_method(m) == (net, t)
    assert networks.split_method("wiener_joint") is None
    with pytest.raises(networks.NetworkError, match="unknown network"):
        networks.network_profile(load_profile("ci"), "unet")


def test_a_paper_network_that_reads_the_wiener_channels_is_refused():
    with pytest.raises(ProfileError, match="network.*wiener_channels"):
        load_profile("ci", {"network": "vnet_paper"})
    with pytest.raises(ProfileError, match="network: must be vnet or vnet_paper"):
        load_profile("ci", {"network": "other"})


def test_default_methods_follow_the_networks_the_profile_trains():
    ms = evaluation.default_methods()  # no profile: every network, no method that calibrates on training mocks
    assert "vnet_paper_phi" in ms and "wiener_cal" not in ms and "wiener_joint" not in ms
    paper = load_profile("paper")
    assert not any(m.startswith("vnet_paper") for m in evaluation.default_methods(paper))
    assert registry.parse_methods("wiener_joint,vnet_paper_delta", registry.METHODS, ()) == ["vnet_paper_delta",
                                                                                             "wiener_joint"]

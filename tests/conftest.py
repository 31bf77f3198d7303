"""Shared test set-up: headless plotting, quiet TensorFlow, generated data in tmp."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest


@pytest.fixture
def zoa_data(tmp_path, monkeypatch):
    """Point every profile's data_path at a temporary folder."""
    d = tmp_path / "data"
    monkeypatch.setenv("ZOA_DATA", str(d))
    return d

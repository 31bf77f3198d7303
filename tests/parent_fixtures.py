"""Fixtures shared by the simulation and field tests: the ci profile on a 32³ parent mesh,
its cosmology and parent box 0 (module scope: each test module builds them once).
Import them into a test module with ``from parent_fixtures import box, cosmo, prof``."""
import pytest

from zoa_lib.config import load_profile
from zoa_lib.universe import simulation as S
from zoa_lib.universe.cosmology import from_profile


@pytest.fixture(scope="module")
def prof():
    return load_profile("ci", {"simulation.parent_mesh": 32})


@pytest.fixture(scope="module")
def cosmo(prof):
    return from_profile(prof)


@pytest.fixture(scope="module")
def box(prof):
    return S.make_parent_box(prof, 0)

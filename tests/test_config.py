"""Profiles: the shipped ones load; bad files give a one-line error naming the key."""
import copy
import dataclasses
import pickle

import pydantic
import pytest
import yaml

from zoa_lib import config
from zoa_lib.config import PROFILE_NAMES, ProfileError, load_profile


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_shipped_profiles_are_consistent(name):
    """Each shipped profile loads and its sections fit together: the V-Net's ``depth``
    halvings divide the grid, the cube fits in a parent box, the parent mesh is at least as
    fine as the cube's voxels, the survey sphere lies in the cube, the targets' smoothing is
    resolved, and the evaluated and batched mocks exist."""
    p = load_profile(name)
    assert p.name == name
    assert p.box.grid % 2 ** p.model.depth == 0 and p.box.grid // 2 ** p.model.depth >= 2
    assert p.box.voxel == pytest.approx(p.box.size / p.box.grid)
    assert p.box.size <= p.simulation.parent_size
    assert p.simulation.parent_size / p.simulation.parent_mesh <= p.box.voxel
    assert p.survey.r_max <= p.box.size / 2
    assert p.box.smoothing >= p.box.voxel
    assert p.evaluation.n_eval <= p.mocks.n_test and p.training.batch_size <= p.mocks.n_train


def test_paper_profile_is_the_paper():
    """The paper's settings (Dupuy et al. 2025): 128³ cubes of 160 Mpc/h (1.25 Mpc/h voxels,
    targets smoothed on that scale), 11 512 / 1 264 training / validation mocks, 200 epochs
    of a cyclic learning rate between 10⁻⁷ and 10⁻⁵, reflection padding."""
    p = load_profile("paper")
    assert p.box.grid == 128 and p.box.voxel == 1.25 and p.box.smoothing == 1.25
    assert (p.mocks.n_train, p.mocks.n_val) == (11512, 1264)
    assert p.training.epochs == 200
    assert (p.training.lr_min, p.training.lr_max) == (1e-7, 1e-5)
    assert p.model.padding == "reflect"


def _write(tmp_path, data, name="bad.yml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("data, key", [
    ({"box": {"grid": 48}}, "box.grid"),
    ({"box": {"size": -160.0}}, "box.size"),
    ({"box": {"gird": 32}}, "box.gird"),
    ({"boxx": {}}, "boxx"),
    ({"training": {"epochs": "ten"}}, "training.epochs"),
    ({"training": {"epochs": 2.5}}, "training.epochs"),
    ({"training": {"augment": "yes"}}, "training.augment"),
    ({"training": {"lr_min": 1e-3, "lr_max": 1e-5}}, "training.lr_min"),
    ({"simulation": {"parent_mesh": 100}}, "simulation.parent_mesh"),
    ({"simulation": {"lpt_order": 3}}, "simulation.lpt_order"),
    ({"survey": {"zoa_b": 95}}, "survey.zoa_b"),
    ({"survey": {"grid_position": "somewhere"}}, "survey.grid_position"),
    ({"model": {"kernel_size": 4}}, "model.kernel_size"),
    ({"mocks": {"n_train": 0}}, "mocks.n_train"),
    ({"evaluation": {"bulk_flow_radii": [10, -5]}}, "evaluation.bulk_flow_radii"),
    ({"cosmology": {"name": "einstein-de-sitter"}}, "cosmology.name"),
    ({"box": {"size": float("nan")}}, "box.size"),
    ({"box": [1, 2]}, "box"),
])
def test_bad_values_name_the_key(tmp_path, data, key):
    with pytest.raises(ProfileError) as e:
        load_profile(_write(tmp_path, data))
    msg = str(e.value)
    assert key in msg and "\n" not in msg


@pytest.mark.parametrize("text, what", [
    ("", "empty"),
    ("box: [1, 2\n", "YAML"),
    ("- a\n- b\n", "mapping"),
])
def test_malformed_files(tmp_path, text, what):
    with pytest.raises(ProfileError, match=what):
        load_profile(_write(tmp_path, text))


def test_non_utf8(tmp_path):
    path = tmp_path / "x.yml"
    path.write_bytes(b"box: {size: \xff\xfe}\n")
    with pytest.raises(ProfileError, match="UTF-8"):
        load_profile(path)


def test_unknown_profile_lists_known():
    with pytest.raises(ProfileError, match="laptop"):
        load_profile("nonexistent")


def test_overrides_apply_and_validate():
    p = load_profile("ci", {"training.epochs": 5, "box.grid": 32, "survey.zoa_b": 5.0})
    assert p.training.epochs == 5 and p.box.grid == 32 and p.survey.zoa_b == 5.0
    with pytest.raises(ProfileError, match="box.grid"):
        load_profile("ci", {"box.grid": 33})
    with pytest.raises(ProfileError, match="training.nope"):
        load_profile("ci", {"training.nope": 1})


def test_cross_field_checks(tmp_path):
    with pytest.raises(ProfileError, match="simulation.parent_size"):
        load_profile("ci", {"simulation.parent_size": 100.0})
    with pytest.raises(ProfileError, match="parent_mesh"):
        load_profile("ci", {"simulation.parent_mesh": 8, "box.grid": 32})


def test_round_trip_yaml(tmp_path):
    p = load_profile("laptop")
    path = tmp_path / "copy.yml"
    path.write_text(p.to_yaml())
    assert load_profile(path).to_dict() == {**p.to_dict(), "name": p.name}


def test_data_path_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOA_DATA", str(tmp_path))
    assert load_profile("ci").data_path == tmp_path / "ci"


def test_cli_override_strings_are_parsed_once():
    from zoa_lib.commands.options import parse_overrides

    ov = parse_overrides(["survey.grid_position=\"true\"", "training.epochs=3", "training.lr_max=1e-4",
                          "training.augment=false"])
    p = load_profile("ci", ov)
    assert p.survey.grid_position == "true"
    assert p.training.epochs == 3 and p.training.lr_max == 1e-4 and p.training.augment is False


# --------------------------------------------------------------------------- the pydantic schema
@pytest.mark.parametrize("data, message", [
    ({"simulation": {"parent_mesh": 48}}, "simulation.parent_mesh: must be a power of two, got 48"),
    ({"box": {"gird": 32}}, "box.gird: unknown key (known: grid, size, smoothing)"),
    ({"box": {3: 32}}, "box.3: unknown key (known: grid, size, smoothing)"),
    ({"training": {"epochs": "ten"}}, "training.epochs: must be an integer, got str 'ten'"),
    ({"training": {"epochs": True}}, "training.epochs: must be an integer, got bool True"),
    ({"training": {"epochs": 2 ** 63}}, "training.epochs: must be an integer between -2^63 and 2^63-1, got "
                                        "9223372036854775808"),
    ({"training": {"augment": "yes"}}, "training.augment: must be true or false, got 'yes'"),
    ({"cosmology": {"H0": True}}, "cosmology.H0: must be a number, got bool True"),
    ({"cosmology": {"H0": "70"}}, "cosmology.H0: must be a number, got str '70'"),
    ({"survey": {"catalogue": 3}}, "survey.catalogue: must be a string, got int 3"),
    ({"survey": {"grid_position": "somewhere"}},
     "survey.grid_position: must be one of 'observed', 'true', 'corrected', got 'somewhere'"),
    ({"evaluation": {"bulk_flow_radii": [10, float("inf")]}}, "evaluation.bulk_flow_radii[1]: must be finite, got inf"),
    ({"evaluation": {"bulk_flow_radii": "10"}}, "evaluation.bulk_flow_radii: must be a list, got str '10'"),
    ({"box": [1, 2]}, "box: must be a mapping of keys, got list"),
    ({"network": "vnet_paper", "training": {"wiener_channels": True}}, "network: vnet_paper reads the two survey"),
    # the first error in the order the keys are checked: a section's unknown keys before its fields,
    # its fields before its values, sections in the order of Profile's fields
    ({"box": {"grid": "x", "gird": 32}}, "box.gird: unknown key"),
    ({"box": {"grid": 48, "size": "x"}}, "box.size: must be a number, got str 'x'"),
    ({"box": {"grid": "x"}, "cosmology": {"name": "x"}}, "cosmology.name: unknown cosmology 'x'"),
    ({"training": {"epochs": 0}, "box": {"size": "x"}}, "box.size: must be a number"),
])
def test_messages_name_the_key_in_one_line(tmp_path, data, message):
    path = _write(tmp_path, data)
    with pytest.raises(ProfileError) as e:
        load_profile(path)
    assert str(e.value).startswith(f"profile 'bad' ({path}): {message}")
    assert "\n" not in str(e.value)


def test_yaml_types_as_before(tmp_path):
    """An integer is a number (stored as a float), an empty section takes its defaults,
    a list of numbers is stored as a tuple."""
    p = load_profile(_write(tmp_path, "box: {size: 160, grid: 16}\nlocal_universe:\n"
                                      "evaluation: {bulk_flow_radii: [5, 10.5]}\n"))
    assert p.box.size == 160.0 and type(p.box.size) is float
    assert p.local_universe == config.LocalUniverseConfig()
    assert p.evaluation.bulk_flow_radii == (5.0, 10.5)


def test_profiles_are_frozen_dataclasses():
    """What the rest of zoa does with a profile: dataclasses.replace/asdict/fields, equality,
    hashing (lru_cache keys), pickling (pool workers), to_plain."""
    p = load_profile("ci")
    assert dataclasses.is_dataclass(p) and [f.name for f in dataclasses.fields(p)][:2] == ["name", "description"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.training.epochs = 3
    q = dataclasses.replace(p, training=dataclasses.replace(p.training, epochs=3))
    assert q.training.epochs == 3 and p.training.epochs != 3 and q != p
    assert q == load_profile("ci", {"training.epochs": 3}) and hash(q) == hash(load_profile("ci", {"training.epochs": 3}))
    assert pickle.loads(pickle.dumps(q)) == q and copy.deepcopy(q) == q
    assert dataclasses.asdict(p)["evaluation"]["bulk_flow_radii"] == p.evaluation.bulk_flow_radii
    plain = config.to_plain(p)
    assert plain == {**p.to_dict(), "data_tag": p.data_tag, "network": p.network}
    assert config.to_plain(p.box) == config.to_plain(dataclasses.asdict(p.box)) == p.to_dict()["box"]
    assert yaml.safe_load(yaml.safe_dump(plain)) == plain


def test_code_built_sections_check_types_not_values():
    """Constructing or replacing a section checks its types (pydantic), not its values: code
    may build what a profile file could not hold (a parent box smaller than the cube)."""
    ci = load_profile("ci")
    small = dataclasses.replace(ci, simulation=dataclasses.replace(ci.simulation, parent_size=16, parent_mesh=12))
    assert small.simulation.parent_size == 16.0 and type(small.simulation.parent_size) is float
    assert config.ModelConfig(depth=9).depth == 9
    with pytest.raises(pydantic.ValidationError):
        dataclasses.replace(ci.training, epochs="3")
    with pytest.raises(pydantic.ValidationError):
        config.BoxConfig(grid=32, gird=32)

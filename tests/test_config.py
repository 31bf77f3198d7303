"""Profiles: the shipped ones load; bad files give a one-line error naming the key."""
import pytest
import yaml

from zoa_lib.config import load_profile, PROFILE_NAMES, ProfileError


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

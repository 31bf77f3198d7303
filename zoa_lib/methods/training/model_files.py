"""Model files: where a trained network lives (``<data>/models/<target>/``), saving and
loading ``.keras`` files with the zoa metadata (transforms, profile, provenance, epochs) in a
``zoa.json`` member of the zip, and whether a saved model was trained by a given profile.
"""
from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

from zoa_lib.io.atomic import atomic_path
from zoa_lib.io.provenance import provenance
from zoa_lib.methods.training.transforms import TrainingError, Transforms, check_target

#: Name of the metadata member added to every .keras zip.
META_MEMBER = "zoa.json"


def register_custom_objects():
    """Import the serializable classes (needed before loading a .keras file)."""
    from zoa_lib.methods import vnet  # noqa: F401  (registers ReflectionPadding3D)
    from zoa_lib.methods.training import schedule  # noqa: F401  (registers TriangularCyclicLR)


def model_dir(profile, target: str) -> Path:
    """``<data_path>/models/<target>`` (``models/<network>/<target>`` for a profile's other
    network, :func:`zoa_lib.methods.networks.files_dir`)."""
    from zoa_lib.methods.networks import files_dir

    return files_dir(profile, "models") / check_target(target)


def save_model(model, path: str | Path, transforms: Transforms, profile=None, **meta) -> Path:
    """Save ``model`` in the ``.keras`` format, atomically, with a ``zoa.json`` member in the
    zip holding the transforms, the profile, provenance and ``meta`` (e.g. ``epochs_done``)."""
    path = Path(path)
    content = {"transforms": transforms.to_dict(), "meta": meta,
               "provenance": provenance(profile) if profile is not None else provenance()}
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as z:
            z.writestr(META_MEMBER, json.dumps(content, sort_keys=True, default=float))
    return path


def read_model_metadata(path: str | Path) -> dict:
    """The ``zoa.json`` member of a saved model: {"transforms", "meta", "provenance"}."""
    path = Path(path)
    if not path.exists():
        raise TrainingError(f"{path}: model not found")
    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read(META_MEMBER))
    except KeyError:
        raise TrainingError(f"{path}: not a zoa model (no {META_MEMBER} with its transforms)") from None
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError) as e:
        raise TrainingError(f"{path}: not a readable .keras file ({e})") from None


def load_model_file(path: str | Path, compile: bool = False):
    """(keras.Model, Transforms) from a ``.keras`` file written by :func:`save_model`."""
    import keras

    register_custom_objects()
    meta = read_model_metadata(path)
    try:
        model = keras.saving.load_model(path, compile=compile)
    except (ValueError, OSError) as e:
        raise TrainingError(f"{path}: cannot load the model ({str(e).splitlines()[0]})") from None
    return model, Transforms.from_dict(meta["transforms"])


def model_path(profile, target: str, which: str = "best") -> Path:
    """The model file :func:`load_model` reads: ``best.keras`` (lowest validation loss; the
    default) or ``which="last"`` (``model.keras``), falling back to the other when only one
    exists."""
    folder = model_dir(profile, target)
    names = {"best": ("best.keras", "model.keras"), "last": ("model.keras", "best.keras")}
    if which not in names:
        raise TrainingError(f"which must be 'best' or 'last', got {which!r}")
    for name in names[which]:
        if (folder / name).exists():
            return folder / name
    raise TrainingError(f"{folder}: no trained {target} model; run `zoa train --profile {profile.name} "
                        f"--target {target}` first")


def load_model(profile, target: str, which: str = "best"):
    """(keras.Model, Transforms) of a trained network (file chosen by :func:`model_path`)."""
    return load_model_file(model_path(profile, target, which))

#: Profile sections a trained model depends on: a model is reused only if they all match.
MODEL_DEPENDS_ON = ("seed", "cosmology", "box", "simulation", "survey", "mocks", "model", "training")
#: Keys older zoa versions had but never read (``section.key``): a model trained with them is
#: still a match.
REMOVED_KEYS = ("training.shuffle_buffer",)


def _section(trained: dict, key: str, profile):
    """``trained[key]`` with the keys a newer zoa added to that section filled in with their
    defaults (a model trained before a key existed was trained with its default), and the
    :data:`REMOVED_KEYS` dropped."""
    value = trained.get(key)
    current = getattr(profile, key, None)
    if isinstance(value, dict) and dataclasses.is_dataclass(current):
        defaults = {f.name: f.default for f in dataclasses.fields(current)
                    if f.default is not dataclasses.MISSING}
        from zoa_lib.config import to_plain

        value = {k: v for k, v in {**to_plain(defaults), **value}.items() if f"{key}.{k}" not in REMOVED_KEYS}
    return value


def snapshot_name(epochs: int) -> str:
    """File name of the copy of a network after ``epochs`` epochs: ``epoch-006.keras``."""
    return f"epoch-{int(epochs):03d}.keras"


def snapshot_epochs(profile) -> tuple[int, ...]:
    """The epoch counts after which training keeps a copy of the network (:func:`snapshot_name`):
    ``book.variant_epochs`` when it is below ``training.epochs``. Chapter 03 scores its
    φ-network variants after that many epochs; the variants whose set-up is a trained network's
    are read from these copies, not trained again (:func:`zoa_lib.analysis.variants.run_variant`)."""
    e = int(profile.book.variant_epochs)
    return (e,) if 0 < e < profile.training.epochs else ()


def _matching_file(path: Path, profile, epochs: int, any_length: bool) -> Path | None:
    """``path`` if it is a model trained by ``profile``'s settings (every section in
    :data:`MODEL_DEPENDS_ON` equal; ``training.epochs`` aside when ``any_length``) with
    ``epochs`` epochs done, else None."""
    if not path.exists():
        return None
    try:
        meta = read_model_metadata(path)
        trained = json.loads(meta["provenance"]["parameters"])
    except (TrainingError, KeyError, json.JSONDecodeError):
        return None
    want = profile.to_dict()
    for k in MODEL_DEPENDS_ON:
        a, b = _section(trained, k, profile), want.get(k)
        if any_length and k == "training" and isinstance(a, dict) and isinstance(b, dict):
            a, b = {**a, "epochs": None}, {**b, "epochs": None}
        if a != b:
            return None
    return path if meta.get("meta", {}).get("epochs_done") == int(epochs) else None


def matching_snapshot(profile, target: str, epochs: int) -> Path | None:
    """The copy of ``target``'s network after ``epochs`` epochs (:func:`snapshot_name`) if it
    was trained by this profile's settings, ``training.epochs`` aside (the copy of a longer
    run is the same network after ``epochs`` epochs: the learning-rate cycle depends on the
    epoch, not on the run's length), else None."""
    return _matching_file(model_dir(profile, target) / snapshot_name(epochs), profile, epochs, any_length=True)


def matching_model(profile, target: str) -> Path | None:
    """The finished ``model.keras`` for ``target`` if it was trained by this profile's
    settings (every section in :data:`MODEL_DEPENDS_ON` equal, all epochs done), else None."""
    return _matching_file(model_dir(profile, target) / "model.keras", profile, profile.training.epochs,
                          any_length=False)


def read_history(history):
    """A training's history, one row per epoch (``epoch``, ``loss``, ``val_loss``, ``lr``,
    ``seconds``: the epoch's wall time), as a pandas DataFrame, from the ``history.csv`` of a
    model folder (Keras CSVLogger), a DataFrame or a mapping of lists (``History.history``).
    Raises :class:`TrainingError` naming the file when it cannot be read or has no ``loss``."""
    import pandas as pd

    if isinstance(history, (str, os.PathLike)):
        path = Path(history)
        try:
            df = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise TrainingError(f"{path}: cannot read training history ({e})") from None
        where = str(path)
    elif isinstance(history, pd.DataFrame):
        df, where = history, "history"
    elif isinstance(history, Mapping):
        df, where = pd.DataFrame(dict(history)), "history"
    else:
        raise TrainingError(f"training history must be a CSV path, DataFrame or dict, got {type(history).__name__}")
    if "loss" not in df.columns:
        raise TrainingError(f"{where}: no 'loss' column (columns: {', '.join(map(str, df.columns))})")
    return df

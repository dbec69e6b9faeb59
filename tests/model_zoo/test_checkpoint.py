"""Checkpoints: save -> load round trips, atomic writes, and a typed error for every bad checkpoint."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle

import numpy as np
import pytest
import torch
from gymnasium import spaces

import model_zoo
from model_zoo import registry
from model_zoo.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    load,
    load_tensors,
    save,
    save_tensors,
)
from tests.model_zoo.checkpoint_helpers import (  # noqa: F401  (tiny_checkpoint, tiny_model, tiny_model_id: fixtures)
    ACTION_SPACE,
    OBS_SPACE,
    TINY,
    TinyConfig,
    TinyModel,
    assert_round_trip,
    assert_same,
    batch_of,
    edit_config,
    outputs_of,
)

# --- round trips -------------------------------------------------------------------


def test_save_load_gives_identical_parameters_and_outputs(tiny_model, tmp_path):
    path = tiny_model.save(tmp_path / "ckpt")
    assert path == tmp_path / "ckpt"
    loaded = model_zoo.load(path)
    assert loaded.config.pool == (2, 3)  # a tuple again, not a JSON list
    assert_round_trip(tiny_model, loaded, batch_of(OBS_SPACE, ACTION_SPACE))


def test_save_load_with_tied_weights(tiny_model_id, tmp_path):
    model = model_zoo.make(tiny_model_id, OBS_SPACE, ACTION_SPACE, tied=True)
    loaded = load(save(model, tmp_path))
    assert loaded.heads_alias is loaded.heads
    assert_round_trip(model, loaded, batch_of(OBS_SPACE, ACTION_SPACE))


def test_config_json_is_readable_and_strict_json(tiny_model, tmp_path):
    tiny_model.save(tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text(), parse_constant=pytest.fail)  # no NaN / Infinity
    assert config["model_id"] == TINY
    assert config["config"] == {"hidden": 6, "pool": [2, 3], "tied": False}
    assert config["format"] == "model_zoo.checkpoint" and config["version"] == 1
    assert [key for key, _ in config["observation_space"]["spaces"]] == ["state", "image", "mode"]


def test_load_accepts_a_training_run_folder(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "checkpoint")
    assert torch.equal(load(tmp_path).enc.weight, tiny_model.enc.weight)


def test_load_onto_a_device_and_no_pickle(tiny_model, tmp_path, monkeypatch):
    tiny_model.save(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded = load(tmp_path, map_location=torch.device("cpu"))
    assert loaded.device == torch.device("cpu")


def _spaces_to_try():
    yield "dict-image-discrete", OBS_SPACE, ACTION_SPACE
    yield "vector-box", spaces.Box(-1.0, 1.0, (4,), np.float32), spaces.Box(-1.0, 1.0, (2,), np.float32)
    yield "image-discrete", spaces.Box(0, 255, (16, 16, 3), np.uint8), spaces.Discrete(3)


# small sizes, for the config fields a model has (the round trip does not depend on size)
SMALL = {"hidden": 16, "layers": 1, "members": 2, "z_dim": 4, "depth": 4, "vector_hidden": 16, "mixtures": 2}


@pytest.mark.parametrize("model_id", model_zoo.list_models())
def test_registered_models_round_trip(model_id, tmp_path):
    """Every registered model (on every space it accepts) saves and loads back identically."""
    fields = {f.name for f in dataclasses.fields(registry.spec(model_id).load_class().Config)}
    small = {k: v for k, v in SMALL.items() if k in fields}
    tried = 0
    for name, obs_space, action_space in _spaces_to_try():
        try:
            torch.manual_seed(0)
            model = model_zoo.make(model_id, obs_space, action_space, **small)
        except (TypeError, ValueError):
            continue  # not a space this model takes
        tried += 1
        batch = batch_of(obs_space, action_space)
        model.loss(batch)  # moves running statistics and the like away from their initial values
        assert_round_trip(model, load(model.save(tmp_path / name)), batch)
    if not tried:
        pytest.skip(f"{model_id} takes none of the spaces tried here")


# --- atomic writes -------------------------------------------------------------------


def test_save_writes_only_the_two_files(tiny_model, tmp_path):
    tiny_model.save(tmp_path)
    tiny_model.save(tmp_path)  # overwriting is fine too
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]


def test_a_failed_save_leaves_the_old_checkpoint_and_no_temp_file(tiny_model, tmp_path, monkeypatch):
    tiny_model.save(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with torch.no_grad():
        tiny_model.enc.weight += 1.0

    def killed(src, dst):
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        tiny_model.save(tmp_path)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    load(tmp_path)


def test_config_and_weights_from_different_saves_are_refused(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "a")
    with torch.no_grad():
        tiny_model.enc.weight += 1.0
    tiny_model.save(tmp_path / "b")
    (tmp_path / "a" / WEIGHTS_FILE).write_bytes((tmp_path / "b" / WEIGHTS_FILE).read_bytes())
    with pytest.raises(CheckpointError, match="different saves"):
        load(tmp_path / "a")


# --- bad checkpoints -----------------------------------------------------------------


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        load(tmp_path / "nowhere")


def test_a_file_instead_of_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="is a directory"):
        load(tmp_path / "file")


def test_missing_config(tiny_checkpoint):
    (tiny_checkpoint / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load(tiny_checkpoint)


def test_missing_weights(tiny_checkpoint):
    (tiny_checkpoint / WEIGHTS_FILE).unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: file is missing"):
        load(tiny_checkpoint)


def test_empty_weights(tiny_checkpoint):
    (tiny_checkpoint / WEIGHTS_FILE).write_bytes(b"")
    with pytest.raises(CheckpointError, match="file is empty"):
        load(tiny_checkpoint)


@pytest.mark.parametrize("keep", [0.5, 0.99, 12, 4])
def test_truncated_weights(tiny_checkpoint, keep):
    path = tiny_checkpoint / WEIGHTS_FILE
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(CheckpointError, match="truncated"):
        load(tiny_checkpoint)


@pytest.mark.parametrize("garbage", [b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, b"hello, this is text, not tensors",
                                     b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}"])
def test_foreign_weights(tiny_checkpoint, garbage):
    (tiny_checkpoint / WEIGHTS_FILE).write_bytes(garbage)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load(tiny_checkpoint)


def test_pickle_file_instead_of_weights(tiny_model, tiny_checkpoint):
    with open(tiny_checkpoint / WEIGHTS_FILE, "wb") as f:
        pickle.dump({k: v.numpy() for k, v in tiny_model.state_dict().items()}, f)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load(tiny_checkpoint)


def test_empty_config(tiny_checkpoint):
    (tiny_checkpoint / CONFIG_FILE).write_text("")
    with pytest.raises(CheckpointError, match="config.json: file is empty"):
        load(tiny_checkpoint)


def test_truncated_config(tiny_checkpoint):
    path = tiny_checkpoint / CONFIG_FILE
    path.write_text(path.read_text()[:40])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(tiny_checkpoint)


@pytest.mark.parametrize("text", ['{"hello": "world"}', "[1, 2, 3]", '{"format": "something.else"}'])
def test_foreign_config(tiny_checkpoint, text):
    (tiny_checkpoint / CONFIG_FILE).write_text(text)
    with pytest.raises(CheckpointError, match="not a model_zoo checkpoint config"):
        load(tiny_checkpoint)


def test_newer_format_version(tiny_checkpoint):
    edit_config(tiny_checkpoint, version=99)
    with pytest.raises(CheckpointError, match="version 99"):
        load(tiny_checkpoint)


def test_unknown_model_id(tiny_checkpoint):
    edit_config(tiny_checkpoint, model_id="no_such_model")
    with pytest.raises(CheckpointError, match="'no_such_model', which is not registered"):
        load(tiny_checkpoint)


def test_unknown_config_field(tiny_checkpoint):
    edit_config(tiny_checkpoint, config={"bogus": 1})
    with pytest.raises(CheckpointError, match="cannot rebuild model .*bogus"):
        load(tiny_checkpoint)


def test_unreadable_space(tiny_checkpoint):
    edit_config(tiny_checkpoint, action_space={"type": "Hexagon"})
    with pytest.raises(CheckpointError, match="unreadable space"):
        load(tiny_checkpoint)


def test_wrong_shapes_name_the_tensor_and_both_shapes(tiny_checkpoint):
    edit_config(tiny_checkpoint, config={"hidden": 5})  # the tiny_checkpoint weights have hidden=6
    with pytest.raises(CheckpointError) as error:
        load(tiny_checkpoint)
    message = str(error.value)
    assert "tensor 'enc.weight' has shape (6, 25) in the checkpoint but (5, 25) in the model" in message
    assert "'trans.weight'" in message


def test_missing_and_unexpected_tensors(tiny_checkpoint):
    tensors, metadata = load_tensors(tiny_checkpoint / WEIGHTS_FILE)
    del tensors["heads.bias"]
    tensors["extra.weight"] = torch.zeros(2)
    save_tensors(tiny_checkpoint / WEIGHTS_FILE, tensors, metadata)
    digest = hashlib.sha256((tiny_checkpoint / WEIGHTS_FILE).read_bytes()).hexdigest()
    edit_config(tiny_checkpoint, weights_sha256=digest)
    expected = r"missing tensors \['heads.bias'\].*unexpected tensors \['extra.weight'\]"
    with pytest.raises(CheckpointError, match=expected):
        load(tiny_checkpoint)


def test_saving_a_model_without_an_id(tmp_path):
    model = TinyModel(OBS_SPACE, ACTION_SPACE, TinyConfig())
    with pytest.raises(CheckpointError, match="no model_id"):
        save(model, tmp_path)



"""Checkpoints: content hash, dtypes, finiteness, ids, bounded configs and float16 storage."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

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
    TinyModel,
    assert_round_trip,
    assert_same,
    batch_of,
    edit_config,
    outputs_of,
)

# --- content hash, dtypes, finiteness, ids and bounded configs ------------------------------


def test_config_records_the_sha256_of_the_weights(tiny_checkpoint):
    config = json.loads((tiny_checkpoint / CONFIG_FILE).read_text())
    assert config["weights_sha256"] == hashlib.sha256((tiny_checkpoint / WEIGHTS_FILE).read_bytes()).hexdigest()


@pytest.mark.parametrize("where", [-1, -40])  # inside the tensor data: the file still parses
def test_a_flipped_byte_in_the_weights_is_refused(tiny_checkpoint, where):
    path = tiny_checkpoint / WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    data[where] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: content does not match the SHA-256"):
        load(tiny_checkpoint)


def test_a_checkpoint_without_a_hash_loads_with_a_warning(tiny_model, tiny_checkpoint):
    config = json.loads((tiny_checkpoint / CONFIG_FILE).read_text())
    del config["weights_sha256"]
    (tiny_checkpoint / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="no weights_sha256"):
        loaded = load(tiny_checkpoint)
    assert torch.equal(loaded.enc.weight, tiny_model.enc.weight)


@pytest.mark.parametrize("value", [123, "not-hex", "ab" * 31])
def test_a_malformed_hash_is_refused(tiny_checkpoint, value):
    edit_config(tiny_checkpoint, weights_sha256=value)
    with pytest.raises(CheckpointError, match="weights_sha256"):
        load(tiny_checkpoint)


def _rewrite_weights(directory: Path, change) -> None:
    """Rewrites the weights with ``change(name, tensor)`` and records their new hash, as a careful forger would."""
    tensors, metadata = load_tensors(directory / WEIGHTS_FILE)
    save_tensors(directory / WEIGHTS_FILE, {k: change(k, v) for k, v in tensors.items()}, metadata)
    edit_config(directory, weights_sha256=hashlib.sha256((directory / WEIGHTS_FILE).read_bytes()).hexdigest())


def test_tensors_of_another_dtype_are_refused(tiny_checkpoint):
    _rewrite_weights(tiny_checkpoint, lambda name, t: t.round().to(torch.int64) if name == "enc.weight" else t)
    with pytest.raises(CheckpointError, match=r"'enc.weight' has dtype torch.int64 in the checkpoint but torch.f"):
        load(tiny_checkpoint)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("everywhere", [True, False])
def test_non_finite_tensors_are_refused(tiny_checkpoint, bad, everywhere):
    def poison(name, t):
        if name != "trans.bias":
            return t
        t = t.clone()
        t.view(-1)[slice(None) if everywhere else 0] = bad
        return t

    _rewrite_weights(tiny_checkpoint, poison)
    with pytest.raises(CheckpointError, match=r"'trans.bias' holds \d+ non-finite value"):
        load(tiny_checkpoint)


@pytest.mark.parametrize("model_id", [[TINY], 3, None, True])
def test_a_model_id_that_is_no_string_is_refused(tiny_checkpoint, model_id):
    edit_config(tiny_checkpoint, model_id=model_id)
    with pytest.raises(CheckpointError, match="model_id must be a string"):
        load(tiny_checkpoint)


@pytest.mark.parametrize("cls", ["os:system", "model_zoo.models.mlp:MLPWorldModel", 7])
def test_a_class_that_is_not_the_model_ids_class_is_refused(tiny_checkpoint, cls):
    edit_config(tiny_checkpoint, **{"class": cls})
    with pytest.raises(CheckpointError, match=f"class {cls!r}.* builds {TinyModel.__module__}:TinyModel"):
        load(tiny_checkpoint)


@pytest.mark.parametrize(("field", "value"), [("hidden", 2_000_000), ("pool", [30_000, 30_000])])
def test_an_absurd_config_value_is_refused_before_anything_is_allocated(tiny_checkpoint, monkeypatch, field, value):
    edit_config(tiny_checkpoint, config={field: value})
    real_linear = nn.Linear.__init__

    def linear(self, n_in, n_out, *args, **kwargs):
        if torch.empty(0).device.type != "meta":
            assert n_in * n_out < 10**9, "a real allocation of an absurd size was attempted"
        real_linear(self, n_in, n_out, *args, **kwargs)

    monkeypatch.setattr(nn.Linear, "__init__", linear)
    with pytest.raises(CheckpointError, match=f"{field}=.*parameters.*limit"):
        load(tiny_checkpoint)


def test_make_bounds_the_size_of_a_model_and_names_the_field(tiny_model_id):
    with pytest.raises(ValueError, match=r"hidden=2000000 .*more than the limit of 1,000,000,000"):
        model_zoo.make(tiny_model_id, OBS_SPACE, ACTION_SPACE, hidden=2_000_000)
    with pytest.raises(ValueError, match="hidden=-3"):
        model_zoo.make(tiny_model_id, OBS_SPACE, ACTION_SPACE, hidden=-3)
    assert registry.count_parameters(tiny_model_id, OBS_SPACE, ACTION_SPACE, hidden=6) == sum(
        t.numel() for t in model_zoo.make(tiny_model_id, OBS_SPACE, ACTION_SPACE, hidden=6).state_dict().values()
    )


def test_load_reads_the_previous_checkpoint_of_a_run_killed_between_renames(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "checkpoint.old")  # fit renames checkpoint/ to checkpoint.old/, then the new one in
    assert torch.equal(load(tmp_path).enc.weight, tiny_model.enc.weight)


def test_a_model_id_must_be_a_string_for_make_too():
    with pytest.raises(TypeError, match="a model id is a string"):
        model_zoo.make(["mlp"], OBS_SPACE, ACTION_SPACE)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(file=st.sampled_from([WEIGHTS_FILE, CONFIG_FILE]), where=st.floats(0.0, 1.0, exclude_max=True),
       mask=st.integers(1, 255))
def test_any_flipped_byte_is_refused_with_a_checkpoint_error(tiny_checkpoint, file, where, mask):
    """A flip in the weights is always refused; one in config.json is refused or gives a model that loads."""
    original = (tiny_checkpoint / file).read_bytes()
    data = bytearray(original)
    data[int(where * len(data))] ^= mask
    (tiny_checkpoint / file).write_bytes(bytes(data))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load(tiny_checkpoint)
    except CheckpointError:
        pass
    else:
        assert file == CONFIG_FILE, "a damaged weights file loaded"
    finally:
        (tiny_checkpoint / file).write_bytes(original)


def test_a_buffer_may_hold_infinity_but_not_nan(tmp_path):
    """mlp's snap levels pad with +inf on purpose (campusnav demo saves such a model); NaN is damage."""
    box = spaces.Box(-1, 1, (3,), np.float32)
    model = model_zoo.make("mlp", box, spaces.Discrete(2), hidden=8, snap_levels=4)
    assert torch.isinf(model.levels).any()
    model.save(tmp_path / "m")
    assert torch.equal(model_zoo.load(tmp_path / "m").levels, model.levels)
    from safetensors.torch import load_file, save_file

    weights_path = tmp_path / "m" / "model.safetensors"
    tensors = load_file(weights_path)
    tensors["levels"][0, 0] = float("nan")
    save_file(tensors, weights_path)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["weights_sha256"] = hashlib.sha256(weights_path.read_bytes()).hexdigest()
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"'levels' holds 1 NaN value"):
        model_zoo.load(tmp_path / "m")


def test_float16_storage_halves_the_weights_and_loads_what_the_rounded_model_computes(tiny_model_id, tmp_path):
    from model_zoo.checkpoint import round_to_storage

    torch.manual_seed(0)
    model = model_zoo.make(tiny_model_id, OBS_SPACE, ACTION_SPACE, hidden=64)
    full = save(model, tmp_path / "full")
    half = save(model, tmp_path / "half", storage="float16")
    assert (half / WEIGHTS_FILE).stat().st_size < 0.6 * (full / WEIGHTS_FILE).stat().st_size
    assert torch.float32 not in {t.dtype for t in load_tensors(half / WEIGHTS_FILE)[0].values()}
    loaded = load(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    rounded = round_to_storage(model, "float16")  # in place: now what the checkpoint holds
    batch = batch_of(OBS_SPACE, ACTION_SPACE)
    assert_same(outputs_of(rounded, batch), outputs_of(loaded, batch))
    assert not torch.equal(load(full).state_dict()["enc.weight"], model.state_dict()["enc.weight"])  # it did round


def test_float16_storage_refuses_what_it_cannot_hold(tiny_model_id, tmp_path):
    model = model_zoo.make(tiny_model_id, OBS_SPACE, ACTION_SPACE)
    with pytest.raises(ValueError, match="storage must be one of float32, float16"):
        save(model, tmp_path / "bad", storage="int8")
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = 1e6
    with pytest.raises(CheckpointError, match="beyond float16's range"):
        save(model, tmp_path / "big", storage="float16")
    path = save(model_zoo.make(tiny_model_id, OBS_SPACE, ACTION_SPACE), tmp_path / "later")
    config = json.loads((path / CONFIG_FILE).read_text())
    (path / CONFIG_FILE).write_text(json.dumps({**config, "storage": "float8"}))
    with pytest.raises(CheckpointError, match="unknown storage 'float8'"):
        load(path)

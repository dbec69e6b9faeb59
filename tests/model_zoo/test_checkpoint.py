"""Checkpoints: save -> load round trips, atomic writes, and a typed error for every bad checkpoint."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium import spaces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import model_zoo
from model_zoo import registry
from model_zoo.base import Batch, Imagined, WorldModel
from model_zoo.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    load,
    load_tensors,
    save,
    save_tensors,
)

TINY = "_test_tiny_checkpoint"
OBS_SPACE = spaces.Dict(
    [
        ("state", spaces.Box(-1.0, 1.0, (3,), np.float32)),
        ("image", spaces.Box(0, 255, (8, 8, 3), np.uint8)),
        ("mode", spaces.Discrete(4, start=1)),
    ]
)  # a list of pairs keeps this (unsorted) key order, which save -> load must keep too
ACTION_SPACE = spaces.Discrete(3)


@dataclass(frozen=True)
class TinyConfig:
    hidden: int = 8
    pool: tuple[int, int] = (2, 2)  # a tuple field: JSON lists must come back as tuples
    tied: bool = False  # share one Linear under two names (tied weights)


class TinyModel(WorldModel):
    """A few Linear layers behind the whole interface, on a Dict observation with an image."""

    Config = TinyConfig

    def __init__(self, observation_space, action_space, config: TinyConfig):
        super().__init__(observation_space, action_space, config)
        ph, pw = config.pool
        image_dim = sum(shape[-1] * ph * pw for shape in self.spec.images.values())
        self.enc = nn.Linear(image_dim + self.spec.vector_dim, config.hidden)
        self.trans = nn.Linear(config.hidden + self.spec.action_dim, config.hidden)
        self.dec_image = nn.Linear(config.hidden, image_dim)
        self.dec_vector = nn.Linear(config.hidden, self.spec.vector_dim)
        self.heads = nn.Linear(config.hidden, 2)
        if config.tied:
            self.heads_alias = self.heads
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    def _embed(self, obs):
        images = [F.adaptive_avg_pool2d(self.spec.image(obs, k), self.config.pool).flatten(1)
                  for k in self.spec.image_keys]
        return self.enc(torch.cat(images + [self.spec.vector(obs)], dim=-1))

    def initial_state(self, batch_size):
        return {"h": torch.zeros(batch_size, self.config.hidden)}

    def observe(self, state, action, obs, is_first):
        h = torch.where(is_first[:, None], torch.zeros_like(state["h"]), state["h"])
        a = self.spec.encode_action(action)
        return {"h": torch.tanh(self._embed(obs) + self.trans(torch.cat([h, a], -1)))}

    def imagine(self, state, action, do=None, generator=None):
        self.check_do(do)
        noise = torch.randn(state["h"].shape, generator=generator) * 0.1
        h = torch.tanh(self.trans(torch.cat([state["h"], self.spec.encode_action(action)], -1)) + noise)
        reward, logit = self.heads(h).unbind(-1)
        return Imagined({"h": h}, reward, logit > 0)

    def decode(self, state):
        h = state["h"]
        ph, pw = self.config.pool
        images, start = {}, 0
        flat = torch.sigmoid(self.dec_image(h))
        for key, shape in self.spec.images.items():
            n = shape[-1] * ph * pw
            images[key] = F.interpolate(flat[:, start : start + n].reshape(-1, shape[-1], ph, pw), size=(64, 64))
            start += n
        return self.spec.assemble(images, self.dec_vector(h))

    def features(self, state):
        return state["h"]

    def loss(self, batch):
        state = self.initial_state(batch.shape[0])
        total = 0.0
        for t in range(batch.shape[1]):
            step = batch.at(t)
            state = self.observe(state, step.action, step.obs, step.is_first)
            total = total + (self.heads(state["h"])[:, 0] - step.reward).square().mean()
        self.updates += 1
        return total / batch.shape[1], {"reward_mse": float(total.detach()) / batch.shape[1]}


@pytest.fixture
def tiny_id(register_model):
    """Registers TinyModel for one test; the registry is put back afterwards."""
    return register_model(TINY, f"{__name__}:TinyModel")


def _batch(obs_space, action_space, b=3, t=4, seed=0) -> Batch:
    obs_space.seed(seed)
    action_space.seed(seed)
    samples = [[obs_space.sample() for _ in range(t)] for _ in range(b)]

    def stack(get):
        return torch.as_tensor(np.array([[get(s) for s in row] for row in samples]))

    if isinstance(obs_space, spaces.Dict):
        obs = {k: stack(lambda s, k=k: s[k]) for k in obs_space.spaces}
    else:
        obs = stack(lambda s: s)
    action = torch.as_tensor(np.array([[action_space.sample() for _ in range(t)] for _ in range(b)]))
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    return Batch(obs=obs, action=action, reward=torch.randn(b, t, generator=torch.Generator().manual_seed(seed)),
                 terminated=torch.zeros(b, t, dtype=torch.bool), is_first=is_first)


def _outputs(model, batch: Batch) -> list:
    """Every interface method's output on ``batch``, seeded where a method may draw."""
    out = []
    torch.manual_seed(0)
    loss, _ = model.loss(batch)
    out.append(loss)
    with torch.no_grad():
        state = model.initial_state(batch.shape[0])
        out.append(state)
        for t in range(batch.shape[1]):
            step = batch.at(t)
            state = model.observe(state, step.action, step.obs, step.is_first)
        out.append(state)
        imagined = model.imagine(state, batch.action[:, -1], generator=torch.Generator().manual_seed(1))
        out += [imagined.state, imagined.reward, imagined.terminated]
        out.append(model.decode(imagined.state))
        out.append(model.features(imagined.state))
    return out


def _assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert torch.equal(a, b), (a, b)


def _assert_round_trip(model, loaded, batch):
    assert type(loaded) is type(model)
    assert loaded.model_id == model.model_id
    assert loaded.config == model.config
    assert loaded.observation_space == model.observation_space
    assert loaded.action_space == model.action_space
    if isinstance(model.observation_space, spaces.Dict):
        assert list(loaded.observation_space.spaces) == list(model.observation_space.spaces)
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    for name in state:
        assert state[name].dtype == loaded_state[name].dtype, name
        assert torch.equal(state[name], loaded_state[name]), name
    _assert_same(_outputs(model, batch), _outputs(loaded, batch))


@pytest.fixture
def tiny(tiny_id):
    torch.manual_seed(0)
    model = model_zoo.make(tiny_id, OBS_SPACE, ACTION_SPACE, hidden=6, pool=(2, 3))
    with torch.no_grad():
        model.updates += 7
    return model


# --- round trips -------------------------------------------------------------------


def test_save_load_gives_identical_parameters_and_outputs(tiny, tmp_path):
    path = tiny.save(tmp_path / "ckpt")
    assert path == tmp_path / "ckpt"
    loaded = model_zoo.load(path)
    assert loaded.config.pool == (2, 3)  # a tuple again, not a JSON list
    _assert_round_trip(tiny, loaded, _batch(OBS_SPACE, ACTION_SPACE))


def test_save_load_with_tied_weights(tiny_id, tmp_path):
    model = model_zoo.make(tiny_id, OBS_SPACE, ACTION_SPACE, tied=True)
    loaded = load(save(model, tmp_path))
    assert loaded.heads_alias is loaded.heads
    _assert_round_trip(model, loaded, _batch(OBS_SPACE, ACTION_SPACE))


def test_config_json_is_readable_and_strict_json(tiny, tmp_path):
    tiny.save(tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text(), parse_constant=pytest.fail)  # no NaN / Infinity
    assert config["model_id"] == TINY
    assert config["config"] == {"hidden": 6, "pool": [2, 3], "tied": False}
    assert config["format"] == "model_zoo.checkpoint" and config["version"] == 1
    assert [key for key, _ in config["observation_space"]["spaces"]] == ["state", "image", "mode"]


def test_load_accepts_a_training_run_folder(tiny, tmp_path):
    tiny.save(tmp_path / "checkpoint")
    assert torch.equal(load(tmp_path).enc.weight, tiny.enc.weight)


def test_load_onto_a_device_and_no_pickle(tiny, tmp_path, monkeypatch):
    tiny.save(tmp_path)

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
        batch = _batch(obs_space, action_space)
        model.loss(batch)  # moves running statistics and the like away from their initial values
        _assert_round_trip(model, load(model.save(tmp_path / name)), batch)
    if not tried:
        pytest.skip(f"{model_id} takes none of the spaces tried here")


# --- atomic writes -------------------------------------------------------------------


def test_save_writes_only_the_two_files(tiny, tmp_path):
    tiny.save(tmp_path)
    tiny.save(tmp_path)  # overwriting is fine too
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]


def test_a_failed_save_leaves_the_old_checkpoint_and_no_temp_file(tiny, tmp_path, monkeypatch):
    tiny.save(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with torch.no_grad():
        tiny.enc.weight += 1.0

    def killed(src, dst):
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        tiny.save(tmp_path)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    load(tmp_path)


def test_config_and_weights_from_different_saves_are_refused(tiny, tmp_path):
    tiny.save(tmp_path / "a")
    with torch.no_grad():
        tiny.enc.weight += 1.0
    tiny.save(tmp_path / "b")
    (tmp_path / "a" / WEIGHTS_FILE).write_bytes((tmp_path / "b" / WEIGHTS_FILE).read_bytes())
    with pytest.raises(CheckpointError, match="different saves"):
        load(tmp_path / "a")


# --- bad checkpoints -----------------------------------------------------------------


@pytest.fixture
def saved(tiny, tmp_path) -> Path:
    return tiny.save(tmp_path / "ckpt")


def _edit_config(directory: Path, **changes) -> None:
    path = directory / CONFIG_FILE
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        load(tmp_path / "nowhere")


def test_a_file_instead_of_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="is a directory"):
        load(tmp_path / "file")


def test_missing_config(saved):
    (saved / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load(saved)


def test_missing_weights(saved):
    (saved / WEIGHTS_FILE).unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: file is missing"):
        load(saved)


def test_empty_weights(saved):
    (saved / WEIGHTS_FILE).write_bytes(b"")
    with pytest.raises(CheckpointError, match="file is empty"):
        load(saved)


@pytest.mark.parametrize("keep", [0.5, 0.99, 12, 4])
def test_truncated_weights(saved, keep):
    path = saved / WEIGHTS_FILE
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(CheckpointError, match="truncated"):
        load(saved)


@pytest.mark.parametrize("garbage", [b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, b"hello, this is text, not tensors",
                                     b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}"])
def test_foreign_weights(saved, garbage):
    (saved / WEIGHTS_FILE).write_bytes(garbage)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load(saved)


def test_pickle_file_instead_of_weights(tiny, saved):
    with open(saved / WEIGHTS_FILE, "wb") as f:
        pickle.dump({k: v.numpy() for k, v in tiny.state_dict().items()}, f)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load(saved)


def test_empty_config(saved):
    (saved / CONFIG_FILE).write_text("")
    with pytest.raises(CheckpointError, match="config.json: file is empty"):
        load(saved)


def test_truncated_config(saved):
    path = saved / CONFIG_FILE
    path.write_text(path.read_text()[:40])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(saved)


@pytest.mark.parametrize("text", ['{"hello": "world"}', "[1, 2, 3]", '{"format": "something.else"}'])
def test_foreign_config(saved, text):
    (saved / CONFIG_FILE).write_text(text)
    with pytest.raises(CheckpointError, match="not a model_zoo checkpoint config"):
        load(saved)


def test_newer_format_version(saved):
    _edit_config(saved, version=99)
    with pytest.raises(CheckpointError, match="version 99"):
        load(saved)


def test_unknown_model_id(saved):
    _edit_config(saved, model_id="no_such_model")
    with pytest.raises(CheckpointError, match="'no_such_model', which is not registered"):
        load(saved)


def test_unknown_config_field(saved):
    _edit_config(saved, config={"bogus": 1})
    with pytest.raises(CheckpointError, match="cannot rebuild model .*bogus"):
        load(saved)


def test_unreadable_space(saved):
    _edit_config(saved, action_space={"type": "Hexagon"})
    with pytest.raises(CheckpointError, match="unreadable space"):
        load(saved)


def test_wrong_shapes_name_the_tensor_and_both_shapes(saved):
    _edit_config(saved, config={"hidden": 5})  # the saved weights have hidden=6
    with pytest.raises(CheckpointError) as error:
        load(saved)
    message = str(error.value)
    assert "tensor 'enc.weight' has shape (6, 25) in the checkpoint but (5, 25) in the model" in message
    assert "'trans.weight'" in message


def test_missing_and_unexpected_tensors(saved):
    tensors, metadata = load_tensors(saved / WEIGHTS_FILE)
    del tensors["heads.bias"]
    tensors["extra.weight"] = torch.zeros(2)
    save_tensors(saved / WEIGHTS_FILE, tensors, metadata)
    _edit_config(saved, weights_sha256=hashlib.sha256((saved / WEIGHTS_FILE).read_bytes()).hexdigest())
    expected = r"missing tensors \['heads.bias'\].*unexpected tensors \['extra.weight'\]"
    with pytest.raises(CheckpointError, match=expected):
        load(saved)


def test_saving_a_model_without_an_id(tmp_path):
    model = TinyModel(OBS_SPACE, ACTION_SPACE, TinyConfig())
    with pytest.raises(CheckpointError, match="no model_id"):
        save(model, tmp_path)


# --- content hash, dtypes, finiteness, ids and bounded configs ------------------------------


def test_config_records_the_sha256_of_the_weights(saved):
    config = json.loads((saved / CONFIG_FILE).read_text())
    assert config["weights_sha256"] == hashlib.sha256((saved / WEIGHTS_FILE).read_bytes()).hexdigest()


@pytest.mark.parametrize("where", [-1, -40])  # inside the tensor data: the file still parses
def test_a_flipped_byte_in_the_weights_is_refused(saved, where):
    path = saved / WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    data[where] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: content does not match the SHA-256"):
        load(saved)


def test_a_checkpoint_without_a_hash_loads_with_a_warning(tiny, saved):
    config = json.loads((saved / CONFIG_FILE).read_text())
    del config["weights_sha256"]
    (saved / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="no weights_sha256"):
        loaded = load(saved)
    assert torch.equal(loaded.enc.weight, tiny.enc.weight)


@pytest.mark.parametrize("value", [123, "not-hex", "ab" * 31])
def test_a_malformed_hash_is_refused(saved, value):
    _edit_config(saved, weights_sha256=value)
    with pytest.raises(CheckpointError, match="weights_sha256"):
        load(saved)


def _rewrite_weights(directory: Path, change) -> None:
    """Rewrites the weights with ``change(name, tensor)`` and records their new hash, as a careful forger would."""
    tensors, metadata = load_tensors(directory / WEIGHTS_FILE)
    save_tensors(directory / WEIGHTS_FILE, {k: change(k, v) for k, v in tensors.items()}, metadata)
    _edit_config(directory, weights_sha256=hashlib.sha256((directory / WEIGHTS_FILE).read_bytes()).hexdigest())


def test_tensors_of_another_dtype_are_refused(saved):
    _rewrite_weights(saved, lambda name, t: t.round().to(torch.int64) if name == "enc.weight" else t)
    with pytest.raises(CheckpointError, match=r"'enc.weight' has dtype torch.int64 in the checkpoint but torch.f"):
        load(saved)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("everywhere", [True, False])
def test_non_finite_tensors_are_refused(saved, bad, everywhere):
    def poison(name, t):
        if name != "trans.bias":
            return t
        t = t.clone()
        t.view(-1)[slice(None) if everywhere else 0] = bad
        return t

    _rewrite_weights(saved, poison)
    with pytest.raises(CheckpointError, match=r"'trans.bias' holds \d+ non-finite value"):
        load(saved)


@pytest.mark.parametrize("model_id", [[TINY], 3, None, True])
def test_a_model_id_that_is_no_string_is_refused(saved, model_id):
    _edit_config(saved, model_id=model_id)
    with pytest.raises(CheckpointError, match="model_id must be a string"):
        load(saved)


@pytest.mark.parametrize("cls", ["os:system", "model_zoo.models.mlp:MLPWorldModel", 7])
def test_a_class_that_is_not_the_model_ids_class_is_refused(saved, cls):
    _edit_config(saved, **{"class": cls})
    with pytest.raises(CheckpointError, match=f"class {cls!r}.* builds {__name__}:TinyModel"):
        load(saved)


@pytest.mark.parametrize(("field", "value"), [("hidden", 2_000_000), ("pool", [30_000, 30_000])])
def test_an_absurd_config_value_is_refused_before_anything_is_allocated(saved, monkeypatch, field, value):
    _edit_config(saved, config={field: value})
    real_linear = nn.Linear.__init__

    def linear(self, n_in, n_out, *args, **kwargs):
        if torch.empty(0).device.type != "meta":
            assert n_in * n_out < 10**9, "a real allocation of an absurd size was attempted"
        real_linear(self, n_in, n_out, *args, **kwargs)

    monkeypatch.setattr(nn.Linear, "__init__", linear)
    with pytest.raises(CheckpointError, match=f"{field}=.*parameters.*limit"):
        load(saved)


def test_make_bounds_the_size_of_a_model_and_names_the_field(tiny_id):
    with pytest.raises(ValueError, match=r"hidden=2000000 .*more than the limit of 1,000,000,000"):
        model_zoo.make(tiny_id, OBS_SPACE, ACTION_SPACE, hidden=2_000_000)
    with pytest.raises(ValueError, match="hidden=-3"):
        model_zoo.make(tiny_id, OBS_SPACE, ACTION_SPACE, hidden=-3)
    assert registry.count_parameters(tiny_id, OBS_SPACE, ACTION_SPACE, hidden=6) == sum(
        t.numel() for t in model_zoo.make(tiny_id, OBS_SPACE, ACTION_SPACE, hidden=6).state_dict().values()
    )


def test_load_reads_the_previous_checkpoint_of_a_run_killed_between_renames(tiny, tmp_path):
    tiny.save(tmp_path / "checkpoint.old")  # fit renames checkpoint/ to checkpoint.old/, then the new one in
    assert torch.equal(load(tmp_path).enc.weight, tiny.enc.weight)


def test_a_model_id_must_be_a_string_for_make_too():
    with pytest.raises(TypeError, match="a model id is a string"):
        model_zoo.make(["mlp"], OBS_SPACE, ACTION_SPACE)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(file=st.sampled_from([WEIGHTS_FILE, CONFIG_FILE]), where=st.floats(0.0, 1.0, exclude_max=True),
       mask=st.integers(1, 255))
def test_any_flipped_byte_is_refused_with_a_checkpoint_error(saved, file, where, mask):
    """A flip in the weights is always refused; one in config.json is refused or gives a model that loads."""
    original = (saved / file).read_bytes()
    data = bytearray(original)
    data[int(where * len(data))] ^= mask
    (saved / file).write_bytes(bytes(data))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load(saved)
    except CheckpointError:
        pass
    else:
        assert file == CONFIG_FILE, "a damaged weights file loaded"
    finally:
        (saved / file).write_bytes(original)


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


def test_float16_storage_halves_the_weights_and_loads_what_the_rounded_model_computes(tiny_id, tmp_path):
    from model_zoo.checkpoint import round_to_storage

    torch.manual_seed(0)
    model = model_zoo.make(tiny_id, OBS_SPACE, ACTION_SPACE, hidden=64)
    full = save(model, tmp_path / "full")
    half = save(model, tmp_path / "half", storage="float16")
    assert (half / WEIGHTS_FILE).stat().st_size < 0.6 * (full / WEIGHTS_FILE).stat().st_size
    assert torch.float32 not in {t.dtype for t in load_tensors(half / WEIGHTS_FILE)[0].values()}
    loaded = load(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    rounded = round_to_storage(model, "float16")  # in place: now what the checkpoint holds
    batch = _batch(OBS_SPACE, ACTION_SPACE)
    _assert_same(_outputs(rounded, batch), _outputs(loaded, batch))
    assert not torch.equal(load(full).state_dict()["enc.weight"], model.state_dict()["enc.weight"])  # it did round


def test_float16_storage_refuses_what_it_cannot_hold(tiny_id, tmp_path):
    model = model_zoo.make(tiny_id, OBS_SPACE, ACTION_SPACE)
    with pytest.raises(ValueError, match="storage must be one of float32, float16"):
        save(model, tmp_path / "bad", storage="int8")
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = 1e6
    with pytest.raises(CheckpointError, match="beyond float16's range"):
        save(model, tmp_path / "big", storage="float16")
    path = save(model_zoo.make(tiny_id, OBS_SPACE, ACTION_SPACE), tmp_path / "later")
    config = json.loads((path / CONFIG_FILE).read_text())
    (path / CONFIG_FILE).write_text(json.dumps({**config, "storage": "float8"}))
    with pytest.raises(CheckpointError, match="unknown storage 'float8'"):
        load(path)

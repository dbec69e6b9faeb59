"""The semantic probe: a net that reads fields from frames, on a synthetic toy and on CampusNav-v0 frames."""

from __future__ import annotations

import json
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch

import campus_env  # noqa: F401  (registers CampusNav-v0)
from campus_env.causal import grid_cells
from campus_env.semantics import SEMANTIC_FIELDS, semantic_state
from model_zoo.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError
from model_zoo.fidelity import compare_samples
from model_zoo.probe import (
    VALID_CONFIDENCE,
    ProbeResult,
    SemanticProbe,
    collect_frames,
    evaluate_probe,
    fit_probe,
    train_probe,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOY_FIELDS = ("cell", "tint")
TOY_NET = {"patch": 4, "width": 8, "hidden": 32}


def toy_frames(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """8x8 frames of 2x2 cells of 4 px: one white cell (``cell``, 0..3) on a red or green ground (``tint``, 0..1)."""
    rng = np.random.default_rng(seed)
    labels = np.stack([rng.integers(0, 4, n), rng.integers(0, 2, n)], axis=1)
    images = np.zeros((n, 8, 8, 3), dtype=np.uint8)
    images[labels[:, 1] == 0, :, :, 0] = 200
    images[labels[:, 1] == 1, :, :, 1] = 200
    for i, (cell, _) in enumerate(labels):
        r, c = divmod(int(cell), 2)
        images[i, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] = 255
    return images, labels + np.array([10, 0])  # a field whose values do not start at 0


@pytest.fixture(scope="module")
def toy_probe(one_torch_thread) -> SemanticProbe:
    images, labels = toy_frames(512, seed=0)
    return fit_probe(images, labels, TOY_FIELDS, position=("cell",), steps=150, batch_size=32, lr=1e-2, seed=0,
                     **TOY_NET)


def test_a_probe_learns_a_toy_and_reads_held_out_frames(toy_probe):
    assert toy_probe.lows == (10, 0) and toy_probe.classes == (4, 2)
    images, labels = toy_frames(256, seed=1)
    scores = evaluate_probe(toy_probe, images, labels)
    assert scores["joint_accuracy"] >= 0.95, scores
    assert set(scores["accuracy"]) == set(TOY_FIELDS)
    assert 0.0 <= scores["valid_rate"] <= 1.0


def test_read_gives_int64_values_in_range_and_a_confidence_in_0_1(toy_probe):
    images, _ = toy_frames(5, seed=2)
    values, confidence = toy_probe.read(images)
    assert values.shape == (5, 2) and values.dtype == np.int64
    assert confidence.shape == (5,) and confidence.dtype == np.float32
    assert ((confidence > 0) & (confidence <= 1)).all()
    assert ((values[:, 0] >= 10) & (values[:, 0] < 14)).all() and np.isin(values[:, 1], (0, 1)).all()
    tensor_values, tensor_confidence = toy_probe.read(torch.from_numpy(images))
    np.testing.assert_array_equal(tensor_values, values)
    np.testing.assert_allclose(tensor_confidence, confidence)
    empty_values, empty_confidence = toy_probe.read(images[:0])
    assert empty_values.shape == (0, 2) and empty_confidence.shape == (0,)


def test_readout_takes_a_bare_batch_or_a_dict(toy_probe):
    images, _ = toy_frames(6, seed=3)
    position, state, confidence = toy_probe.readout(images)
    assert position.shape == (6, 1) and state.shape == (6, 2) and confidence.shape == (6,)
    assert position.dtype == state.dtype == np.int64
    np.testing.assert_array_equal(position[:, 0], state[:, 0])
    from_dict = toy_probe.readout({"image": images, "state": np.zeros((6, 4), np.float32)})
    for a, b in zip(from_dict, (position, state, confidence), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="'image' entry"):
        toy_probe.readout({"pixels": images})


def test_pooled_readout_reads_double_size_frames_as_their_2x2_means(toy_probe):
    images, _ = toy_frames(6, seed=4)
    double = images.repeat(2, axis=1).repeat(2, axis=2)  # (6, 16, 16, 3): each pixel repeated 2x2
    for a, b in zip(toy_probe.pooled_readout(2)({"image": double}), toy_probe.readout(images), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="image batches"):
        toy_probe.pooled_readout(1)(double)
    with pytest.raises(ValueError, match="factor"):
        toy_probe.pooled_readout(0)


def test_the_readout_fits_compare_samples(toy_probe):
    images, _ = toy_frames(16, seed=4)
    position, state, _ = toy_probe.readout(images)
    scores = compare_samples((position, state), (position, state))
    assert scores["precision"] == scores["recall"] == 1.0 and scores["position_tv"] == 0.0


def test_save_and_load_round_trip_without_pickle(toy_probe, tmp_path, monkeypatch):
    toy_probe.save(tmp_path / "probe")
    assert sorted(p.name for p in (tmp_path / "probe").iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE])
    assert json.loads((tmp_path / "probe" / CONFIG_FILE).read_text())["config"] == toy_probe.config

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded = SemanticProbe.load(tmp_path / "probe")
    images, _ = toy_frames(32, seed=5)
    for a, b in zip(loaded.readout(images), toy_probe.readout(images), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.config == toy_probe.config and not loaded.training


def test_load_refuses_a_damaged_or_foreign_directory(toy_probe, tmp_path):
    with pytest.raises(CheckpointError, match="missing"):
        SemanticProbe.load(tmp_path)
    toy_probe.save(tmp_path)
    weights = tmp_path / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        SemanticProbe.load(tmp_path)
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"format": "model_zoo.checkpoint", "version": 1}))
    with pytest.raises(CheckpointError, match="not a saved probe"):
        SemanticProbe.load(tmp_path)


def test_bad_images_and_arguments_are_refused_clearly(toy_probe):
    images, labels = toy_frames(8, seed=6)
    with pytest.raises(TypeError, match="uint8"):
        toy_probe.read(images.astype(np.float32))
    with pytest.raises(TypeError, match="numpy or torch"):
        toy_probe.read(images.tolist())
    with pytest.raises(ValueError, match=r"\(N, 8, 8, 3\)"):
        toy_probe.read(images[0])
    with pytest.raises(ValueError, match="labels must be"):
        fit_probe(images, labels[:, :1], TOY_FIELDS, position=("cell",))
    with pytest.raises(TypeError, match="labels must be integers"):
        fit_probe(images, labels.astype(float), TOY_FIELDS, position=("cell",))
    with pytest.raises(TypeError, match="fields must be a sequence"):
        fit_probe(images, labels, "cell", position=("cell",))
    with pytest.raises(ValueError, match="position fields"):
        fit_probe(images, labels, TOY_FIELDS, position=("row",), steps=1)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        fit_probe(images, labels, TOY_FIELDS, position=("cell",), steps=0)
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        fit_probe(images, labels, TOY_FIELDS, position=("cell",), batch_size=2.5)
    with pytest.raises(ValueError, match="outliers"):
        fit_probe(images, labels, TOY_FIELDS, position=("cell",), outliers=2.0)
    with pytest.raises(ValueError, match="patch=3 must divide"):
        SemanticProbe((8, 8, 3), TOY_FIELDS, (0, 0), (4, 2), ("cell",), patch=3)
    with pytest.raises(ValueError, match="one entry per field"):
        SemanticProbe((8, 8, 3), TOY_FIELDS, (0,), (4, 2), ("cell",))
    with pytest.raises(ValueError, match="not columns"):
        collect_frames(frames=1, fields=("agent_row", "blocked"))
    with pytest.raises(ValueError, match="frames must be >= 1"):
        collect_frames(frames=0)


def test_an_env_without_a_readout_is_refused():
    with pytest.raises(ValueError, match="declares no semantic readout"):
        collect_frames("CartPole-v1", frames=1)


def test_collected_frames_carry_the_envs_own_labels():
    images, labels = collect_frames(frames=300, num_envs=2, stride=1, seed=3)
    assert images.shape == (300, 64, 64, 3) and images.dtype == np.uint8
    assert labels.shape == (300, 3) and labels.dtype == np.int64
    assert set(np.unique(labels[:, 2])) == {0, 1, 2, 3}  # every weather of the grid
    again = collect_frames(frames=300, num_envs=2, stride=1, seed=3)
    np.testing.assert_array_equal(again[0], images)
    np.testing.assert_array_equal(again[1], labels)
    assert labels[:, :2].min() >= 0 and labels[:, :2].max() < 32  # cells of the 32x32 campus


def test_the_labels_are_the_readouts_columns_of_the_same_frames():
    names = ("weather", "agent_col", "day")
    cells = grid_cells("all")
    images, labels = collect_frames(frames=len(cells), fields=names, num_envs=1, stride=1, seed=7)
    envs = gym.make_vec("CampusNav-v0", num_envs=1, obs_mode="dict")
    envs.action_space.seed(7)
    expected, frames = [], []
    for c, cell in enumerate(cells):  # one frame per context: the first step of each
        envs.reset(seed=7 + c, options={"do": cell})
        obs, *_ = envs.step(envs.action_space.sample())
        expected.append(semantic_state(obs).state[:, [SEMANTIC_FIELDS.index(n) for n in names]])
        frames.append(obs["image"])
    envs.close()
    np.testing.assert_array_equal(labels, np.concatenate(expected))
    np.testing.assert_array_equal(images, np.concatenate(frames))


def test_train_probe_on_a_tiny_budget():
    result = train_probe(frames=240, heldout_frames=120, steps=3, batch_size=16, num_envs=2, stride=2, seed=1)
    assert isinstance(result, ProbeResult)
    assert result.frames == 240 and result.heldout_frames == 120
    assert result.probe.fields == ("agent_row", "agent_col", "weather")
    assert result.probe.position == ("agent_row", "agent_col")
    assert set(result.accuracy) == set(result.probe.fields)
    assert 0.0 <= result.joint_accuracy <= min(result.accuracy.values()) <= 1.0
    assert 0.0 <= result.valid_rate <= 1.0 and result.seconds >= result.train_seconds > 0
    assert json.dumps(result.as_dict())
    images, _ = collect_frames(frames=8, num_envs=2, seed=99)
    position, state, confidence = result.probe.readout({"image": images})
    assert position.shape == (8, 2) and state.shape == (8, 3) and confidence.shape == (8,)
    assert VALID_CONFIDENCE == 0.9

"""Evaluation: the table's keys and values, checked against a model whose every answer is known."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

import model_zoo
from model_zoo import registry
from model_zoo.base import Batch, Imagined, WorldModel
from model_zoo.data import Episode
from model_zoo.evaluation import PSNR_CAP, EvalResult, evaluate, format_table, imagined_steps_per_second

COUNTER = "_test_counter"
OBS_SPACE = spaces.Dict({"image": spaces.Box(0, 255, (4, 4, 1), np.uint8),
                         "pos": spaces.Box(-100.0, 100.0, (1,), np.float32)})
ACTION_SPACE = spaces.Discrete(2)
FAST = dict(speed_batch=16, speed_seconds=0.01)


@dataclass(frozen=True)
class CounterConfig:
    bias: float = 0.0  # each imagined step adds 1 + bias to the position
    term_at: float = 3.0  # predicts termination on arriving at this position
    reward: float = 0.5  # the reward it predicts


class Counter(WorldModel):
    """Position ``p`` counts up by one per step; the image is ``10 p`` everywhere. Exact when bias = 0."""

    Config = CounterConfig

    def __init__(self, observation_space, action_space, config):
        super().__init__(observation_space, action_space, config)
        self.weight = nn.Parameter(torch.zeros(3))

    def initial_state(self, batch_size):
        return {"pos": torch.zeros(batch_size)}

    def observe(self, state, action, obs, is_first):
        return {"pos": obs["pos"][:, 0].float()}

    def imagine(self, state, action, do=None, generator=None):
        pos = state["pos"] + 1 + self.config.bias
        return Imagined({"pos": pos}, torch.full_like(pos, self.config.reward), pos == self.config.term_at)

    def decode(self, state):
        pos = state["pos"]
        image = (10 * pos).clamp(0, 255).to(torch.uint8)[:, None, None, None].expand(-1, 4, 4, 1)
        return {"image": image, "pos": pos[:, None]}

    def features(self, state):
        return state["pos"][:, None]

    def loss(self, batch):
        return self.weight.square().sum(), {}


@pytest.fixture
def counter_id(register_model):
    """Registers Counter for one test; the registry is put back afterwards."""
    return register_model(COUNTER, f"{__name__}:Counter")


def _windows(rows) -> Batch:
    """Windows from (start position, terminated indices, is_first indices) rows; the position counts up."""
    length = 4
    pos = torch.tensor([[p0 + t for t in range(length)] for p0, _, _ in rows], dtype=torch.float32)
    terminated = torch.zeros(len(rows), length, dtype=torch.bool)
    is_first = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, (_, terms, firsts) in enumerate(rows):
        terminated[i, list(terms)] = True
        is_first[i, list(firsts)] = True
    image = (10 * pos).to(torch.uint8)[..., None, None, None].expand(-1, -1, 4, 4, 1)
    reward = torch.where(is_first, torch.zeros(()), torch.full_like(pos, 0.5))
    return Batch(obs={"image": image, "pos": pos[..., None]}, action=torch.zeros(len(rows), length, dtype=torch.int64),
                 reward=reward, terminated=terminated, is_first=is_first)


# context 1, horizons 1..3: imagined step j predicts window index j; the model predicts termination at position 3
ROWS = [
    (0, [3], []),  # A: real and predicted termination at j=3: a true positive
    (0, [3], []),  # A again: another true positive
    (1, [1], []),  # B: real termination at j=1 (missed: a false negative); j=2, 3 are past the end (not scored)
    (0, [], []),  # C: predicted at j=3, never real: a false positive
    (0, [], []),  # C again
    (5, [], []),  # D: nothing predicted, nothing real
    (0, [3], [2]),  # E: a new episode starts at index 2; only j=1 is scored (its termination at j=3 is not)
    (2, [0], []),  # F: the last context frame ends the episode: nothing is scored
]


def test_the_table_of_a_perfect_model(counter_id):
    model = model_zoo.make(counter_id, OBS_SPACE, ACTION_SPACE)
    result = evaluate(model, _windows(ROWS), horizons=(1, 2, 3), context=1, **FAST)
    table = result.as_dict()
    assert list(table) == [
        "obs_mse@1", "obs_mse@2", "obs_mse@3", "psnr@1", "psnr@2", "psnr@3", "copy_mse@1", "copy_mse@2", "copy_mse@3",
        "reward_mae", "termination_precision", "termination_recall", "termination_f1", "terminations",
        "imagined_steps_per_s", "parameters", "windows", "scored@1", "scored@2", "scored@3",
        "vector_mse@1", "vector_mse@2", "vector_mse@3", "copy_vector_mse@1", "copy_vector_mse@2", "copy_vector_mse@3",
    ]
    assert all(math.isfinite(v) for v in table.values())
    assert [table[f"obs_mse@{k}"] for k in (1, 2, 3)] == [0.0, 0.0, 0.0]
    assert [table[f"psnr@{k}"] for k in (1, 2, 3)] == pytest.approx([PSNR_CAP] * 3)  # perfect frames: capped, not inf
    assert table["reward_mae"] == 0.0
    assert table["parameters"] == 3 and table["windows"] == len(ROWS)
    assert [table[f"scored@{k}"] for k in (1, 2, 3)] == [7, 5, 5]
    assert table["imagined_steps_per_s"] > 0
    # the "nothing changes" baseline: off by k positions (and 10 k grey levels)
    for k in (1, 2, 3):
        assert table[f"copy_mse@{k}"] == pytest.approx((16 * (10 * k / 255) ** 2 + k**2) / 17)
        assert table[f"copy_vector_mse@{k}"] == pytest.approx(k**2)  # the vector part alone
        assert table[f"vector_mse@{k}"] == 0.0


def test_termination_precision_recall_f1_on_a_hand_made_case(counter_id):
    model = model_zoo.make(counter_id, OBS_SPACE, ACTION_SPACE)
    result = evaluate(model, _windows(ROWS), horizons=(1, 2, 3), context=1, **FAST)
    tp, fp, fn = 2, 2, 1  # see ROWS
    assert result.terminations == tp + fn
    assert result.termination_precision == pytest.approx(tp / (tp + fp))
    assert result.termination_recall == pytest.approx(tp / (tp + fn))
    assert result.termination_f1 == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_no_terminations_predicted_or_real_scores_one(counter_id):
    model = model_zoo.make(counter_id, OBS_SPACE, ACTION_SPACE, term_at=-1.0)
    result = evaluate(model, _windows([(5, [], [])] * 3), horizons=(1,), context=1, **FAST)
    assert (result.termination_precision, result.termination_recall, result.termination_f1) == (1.0, 1.0, 1.0)


def test_mse_and_psnr_of_a_model_off_by_one(counter_id):
    model = model_zoo.make(counter_id, OBS_SPACE, ACTION_SPACE, bias=1.0, reward=0.25)
    result = evaluate(model, _windows([(0, [], [])] * 5), horizons=(1, 2), context=1, **FAST)
    for k in (1, 2):  # after k steps the position is k too far, the image 10 k grey levels too bright
        pixel = 10 * k / 255
        assert result.obs_mse[k] == pytest.approx((16 * pixel**2 + k**2) / 17)
        assert result.psnr[k] == pytest.approx(10 * math.log10(1 / pixel**2))
    assert result.reward_mae == pytest.approx(0.25)


def test_context_and_horizons_from_longer_sequences(counter_id):
    """A (B, T) batch is cut into back-to-back windows of context + max(horizon) steps."""
    model = model_zoo.make(counter_id, OBS_SPACE, ACTION_SPACE)
    steps = 12
    pos = torch.arange(steps, dtype=torch.float32)[None]
    long = Batch(obs={"image": (10 * pos).to(torch.uint8)[..., None, None, None].expand(-1, -1, 4, 4, 1),
                      "pos": pos[..., None]},
                 action=torch.zeros(1, steps, dtype=torch.int64), reward=torch.full((1, steps), 0.5),
                 terminated=torch.zeros(1, steps, dtype=torch.bool), is_first=torch.zeros(1, steps, dtype=torch.bool))
    result = evaluate(model, long, horizons=(2,), context=2, **FAST)  # windows of 4: 3 of them
    assert result.windows == 3 and result.obs_mse[2] == 0.0
    assert evaluate(model, long, horizons=(2,), context=2, num_windows=2, **FAST).windows == 2


def test_a_sampler_is_drawn_until_num_windows(counter_id):
    class Sampler:
        def sample(self):
            return _windows([(0, [], [])] * 3)

    model = model_zoo.make(counter_id, OBS_SPACE, ACTION_SPACE)
    result = evaluate(model, Sampler(), horizons=(1, 3), context=1, num_windows=7, batch_size=2, **FAST)
    assert result.windows == 7 and result.scored == {1: 7, 3: 7}


def test_too_short_sequences_are_a_clear_error(counter_id):
    model = model_zoo.make(counter_id, OBS_SPACE, ACTION_SPACE)
    with pytest.raises(ValueError, match="too short: evaluation needs 17"):
        evaluate(model, _windows(ROWS), horizons=(1, 16), context=1, **FAST)
    with pytest.raises(ValueError, match="context"):
        evaluate(model, _windows(ROWS), context=0, **FAST)


def test_episodes_are_read_through_model_zoo_data(counter_id):
    def episode(start, length, terminated):
        pos = np.arange(start, start + length + 1, dtype=np.float32)
        image = np.broadcast_to((10 * pos).astype(np.uint8)[:, None, None, None], (length + 1, 4, 4, 1)).copy()
        term, trunc = np.zeros(length, bool), np.zeros(length, bool)
        term[-1], trunc[-1] = terminated, not terminated
        return Episode(obs={"image": image, "pos": pos[:, None]}, action=np.zeros(length, np.int64),
                       reward=np.full(length, 0.5, np.float32), terminated=term, truncated=trunc)

    model = model_zoo.make(counter_id, OBS_SPACE, ACTION_SPACE, term_at=-1.0)
    result = evaluate(model, [episode(0, 9, False), episode(1, 5, True)], horizons=(1, 2), context=2, **FAST)
    assert result.windows == 4  # 10 + 6 aligned steps, back-to-back windows of 4; the last ends with the termination
    assert result.obs_mse == {1: 0.0, 2: 0.0} and result.reward_mae == 0.0
    assert result.terminations == 1 and result.termination_recall == 0.0


def test_results_are_deterministic_and_the_mode_is_restored(counter_id):
    model = model_zoo.make(counter_id, OBS_SPACE, ACTION_SPACE, bias=0.5)
    model.train()
    a = evaluate(model, _windows(ROWS), horizons=(1, 3), context=1, **FAST).as_dict()
    b = evaluate(model, _windows(ROWS), horizons=(1, 3), context=1, **FAST).as_dict()
    assert model.training
    a.pop("imagined_steps_per_s"), b.pop("imagined_steps_per_s")
    assert a == b


def test_format_table_has_one_row_per_model(counter_id):
    results = {name: evaluate(model_zoo.make(counter_id, OBS_SPACE, ACTION_SPACE, bias=bias), _windows(ROWS),
                              horizons=(1, 2), context=1, **FAST)
               for name, bias in (("exact", 0.0), ("off", 1.0))}
    table = format_table(results)
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("| model | obs_mse@1 | obs_mse@2 | psnr@1 | psnr@2 |")
    assert lines[2].startswith("| exact | 0 | 0 | 100.00 | 100.00 |")
    assert lines[3].startswith("| off | ")
    assert results["exact"].to_markdown().splitlines()[2].startswith(f"| {COUNTER} | 0 |")


def test_imagined_steps_per_second(counter_id):
    model = model_zoo.make(counter_id, OBS_SPACE, ACTION_SPACE)
    assert imagined_steps_per_second(model, 256, seconds=0.01) > 0
    box = model_zoo.make(counter_id, OBS_SPACE, spaces.Box(-np.inf, 1.0, (2,), np.float32))
    assert imagined_steps_per_second(box, 8, seconds=0.01) > 0


def test_eval_result_without_images():
    result = EvalResult(model_id="m", horizons=(1,), obs_mse={1: 0.5}, psnr=None, copy_mse={1: 1.0}, scored={1: 2},
                        reward_mae=0.1, termination_precision=1.0, termination_recall=1.0, termination_f1=1.0,
                        terminations=0, imagined_steps_per_s=10.0, parameters=5, windows=2)
    assert "psnr@1" not in result.as_dict()
    assert dataclasses.asdict(result)["obs_mse"] == {1: 0.5}


# small sizes, for the config fields a model has (the table does not depend on size)
SMALL = {"hidden": 16, "layers": 1, "members": 2, "z_dim": 4, "depth": 4, "vector_hidden": 16, "mixtures": 2}


@pytest.mark.parametrize("model_id", model_zoo.list_models())
def test_every_registered_model_gives_the_same_table(model_id):
    fields = {f.name for f in dataclasses.fields(registry.spec(model_id).load_class().Config)}
    model = model_zoo.make(model_id, OBS_SPACE, ACTION_SPACE, **{k: v for k, v in SMALL.items() if k in fields})
    result = evaluate(model, _windows(ROWS), horizons=(1, 3), context=1, **FAST)
    reference = ["obs_mse@1", "obs_mse@3", "psnr@1", "psnr@3", "copy_mse@1", "copy_mse@3", "reward_mae",
                 "termination_precision", "termination_recall", "termination_f1", "terminations",
                 "imagined_steps_per_s", "parameters", "windows", "scored@1", "scored@3",
                 "vector_mse@1", "vector_mse@3", "copy_vector_mse@1", "copy_vector_mse@3"]
    table = result.as_dict()
    assert list(table)[: len(reference)] == reference  # model-specific columns (evaluation_metrics) follow
    assert all(math.isfinite(v) for v in table.values())
    assert table["parameters"] == sum(p.numel() for p in model.parameters())


class CountingCounter(Counter):
    """Counter with a model-specific metric: the share of windows whose first position is even."""

    def evaluation_metrics(self, window, context, horizons, generator):
        first = window.obs["pos"][:, 0, 0]
        return {"even_start": (float((first % 2 == 0).sum()), first.shape[0])}


def test_model_specific_metrics_are_averaged_over_all_windows(counter_id):
    registry._REGISTRY.pop(counter_id)
    model_zoo.register(counter_id, entry_point=f"{__name__}:CountingCounter")
    model = model_zoo.make(counter_id, OBS_SPACE, ACTION_SPACE)
    result = evaluate(model, _windows(ROWS), horizons=(1,), context=1, batch_size=3, **FAST)
    evens = sum(1 for p0, _, _ in ROWS if p0 % 2 == 0)
    assert result.as_dict()["even_start"] == pytest.approx(evens / len(ROWS))  # summed over 3 batches, not averaged

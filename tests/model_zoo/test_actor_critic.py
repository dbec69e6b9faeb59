"""The imagination actor-critic: lambda-returns by hand, percentile normalisation, learning on an exact model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

import model_zoo
from model_zoo.agents.actor_critic import (
    ActorCritic,
    ActorCriticConfig,
    ReturnNormalizer,
    lambda_returns,
    loss_weights,
    start_states,
)
from model_zoo.agents.controllers import ActorCritic as Reexported
from model_zoo.base import Batch, Imagined
from tests.wrappers.analytic import ACTION_SPACE, OBSERVATION_SPACE, CorridorConfig, CorridorModel


def test_lambda_returns_match_a_hand_computation_with_a_termination():
    reward = torch.tensor([[1.0], [-2.0], [3.0]])
    cont = torch.tensor([[1.0], [0.0], [1.0]])  # the second step ends the episode
    value = torch.tensor([[0.5], [4.0], [-1.0], [2.0]])
    gamma, lam = 0.9, 0.8
    r2 = 3.0 + gamma * 1.0 * ((1 - lam) * 2.0 + lam * 2.0)  # R[3] = value[3]
    r1 = -2.0  # cont 0: no bootstrap past the end
    r0 = 1.0 + gamma * ((1 - lam) * 4.0 + lam * r1)
    out = lambda_returns(reward, cont, value, gamma, lam)
    assert out.flatten().tolist() == pytest.approx([r0, r1, r2])


def test_lambda_returns_at_the_extremes_of_lambda():
    rng = np.random.default_rng(0)
    reward, value = torch.as_tensor(rng.normal(size=(4, 3))), torch.as_tensor(rng.normal(size=(5, 3)))
    cont = torch.ones(4, 3, dtype=torch.float64)
    td0 = lambda_returns(reward, cont, value, gamma=0.9, lam=0.0)
    assert torch.allclose(td0, reward + 0.9 * value[1:])  # one-step TD targets
    mc = lambda_returns(reward, cont, value, gamma=0.9, lam=1.0)
    discounts = 0.9 ** torch.arange(4, dtype=torch.float64)
    expected0 = (discounts[:, None] * reward).sum(0) + 0.9**4 * value[4]
    assert torch.allclose(mc[0], expected0)  # the discounted sum, bootstrapped at the horizon
    with pytest.raises(ValueError, match="value"):
        lambda_returns(reward, cont, value[:4], 0.9, 0.9)


def test_return_normalizer_tracks_the_5_to_95_percentile_range_with_a_floor_of_one():
    norm = ReturnNormalizer(decay=0.5)
    norm.update(torch.arange(0.0, 101.0))  # range 90: the first update sets it
    assert float(norm.scale) == pytest.approx(90.0)
    norm.update(torch.arange(0.0, 101.0) * 3)  # range 270: EMA 0.5 * 90 + 0.5 * 270
    assert float(norm.scale) == pytest.approx(180.0)
    small = ReturnNormalizer(decay=0.0)
    small.update(torch.linspace(-0.1, 0.1, 50))
    assert float(small.range) == pytest.approx(0.18, rel=1e-3) and float(small.scale) == 1.0  # not amplified


def corridor_starts(n: int) -> dict[str, torch.Tensor]:
    return {"pos": torch.arange(n).float() % 3, "t": torch.zeros(n)}


def test_the_actor_learns_to_walk_to_the_goal_of_an_exact_corridor_model():
    torch.manual_seed(0)
    model = CorridorModel(OBSERVATION_SPACE, ACTION_SPACE, CorridorConfig())
    ac = ActorCritic(model.feature_dim, ACTION_SPACE, ActorCriticConfig(horizon=8, hidden=32, actor_lr=3e-3,
                                                                        critic_lr=3e-3, entropy=1e-3))
    generator = torch.Generator().manual_seed(0)
    start = corridor_starts(64)
    before = ac.imagine(model, start, generator)
    first = float((before["reward"] * torch.cumprod(torch.cat([torch.ones(1, 64), before["cont"][:-1]]), 0)).sum(0)
                  .mean())
    for _ in range(80):
        metrics = ac.update(model, start, generator)
    assert all(np.isfinite(v) for v in metrics.values())
    after = ac.imagine(model, start, generator)
    alive = torch.cumprod(torch.cat([torch.ones(1, 64), after["cont"][:-1]]), 0)
    last = float((after["reward"] * alive).sum(0).mean())
    # walking right from 0, 1, 2 takes 5, 4, 3 steps: an undiscounted return of 10 - 4, 10 - 3, 10 - 2
    assert last > first + 3.0 and last > 6.0, (first, last)
    greedy = ac.act(model.features(start), sample=False)
    assert torch.equal(greedy, torch.ones(64, dtype=torch.int64))


def test_box_actions_stay_in_bounds_and_an_update_on_an_rssm_runs():
    obs_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = spaces.Box(np.array([0.0, -2.0], np.float32), np.array([1.0, 2.0], np.float32))
    torch.manual_seed(0)
    model = model_zoo.make("rssm", obs_space, action_space, stoch=4, classes=4, hidden=16, units=16,
                           vector_hidden=16, reward_bins=11)
    ac = ActorCritic(model.feature_dim, action_space, ActorCriticConfig(horizon=3, hidden=16))
    first = torch.zeros(2, 4, dtype=torch.bool)
    first[:, 0] = True
    terminated = torch.zeros(2, 4, dtype=torch.bool)
    terminated[0, 3] = True
    batch = Batch(obs=torch.rand(2, 4, 3), action=torch.rand(2, 4, 2), reward=torch.zeros(2, 4),
                  terminated=terminated, is_first=first)
    start = start_states(model, batch)
    assert start["deter"].shape[0] == 2 * 4 - 1  # the terminal step starts nothing
    metrics = ac.update(model, start, torch.Generator().manual_seed(0))
    assert all(np.isfinite(v) for v in metrics.values())
    actions = ac.act(model.features(start), generator=torch.Generator().manual_seed(1)).numpy()
    assert actions.shape == (7, 2) and all(action_space.contains(a) for a in actions)
    assert Reexported is ActorCritic  # the zoo's controllers offer it beside CMA-ES


def test_bad_config_and_spaces_are_clear_errors():
    with pytest.raises(ValueError, match="ActorCriticConfig.gamma"):
        ActorCriticConfig(gamma=1.5)
    with pytest.raises(ValueError, match="bounded Box"):
        ActorCritic(3, spaces.Box(-np.inf, np.inf, (2,), np.float32))
    with pytest.raises(TypeError, match="Discrete or float Box"):
        ActorCritic(3, spaces.MultiBinary(2))


class _ConstantModel:
    """A world model of one state that earns ``reward`` per step and ends with probability ``end`` per step."""

    def __init__(self, reward: float, end: float):
        self.reward, self.end = reward, end

    def features(self, state):
        return torch.zeros(state["x"].shape[0], 2)

    def imagine(self, state, action, do=None, generator=None):
        n = state["x"].shape[0]
        return Imagined(state, torch.full((n,), self.reward), torch.zeros(n, dtype=torch.bool),
                        torch.full((n,), 1.0 - self.end))


def _zero_critics(ac: ActorCritic) -> None:
    with torch.no_grad():
        for net in (ac.critic, ac.slow_critic):
            net[-1].weight.zero_()
            net[-1].bias.zero_()


def test_an_rssm_whose_termination_probability_is_0_3_discounts_the_returns_by_0_7_per_step():
    obs_space, action_space = spaces.Box(-1.0, 1.0, (3,), np.float32), spaces.Discrete(2)
    torch.manual_seed(0)
    model = model_zoo.make("rssm", obs_space, action_space, stoch=2, classes=2, hidden=8, units=8,
                           vector_hidden=8, reward_loss="mse")
    with torch.no_grad():  # reward 1 (symlog 1 = log 2) and continuation 0.7 from every state
        for head, bias in ((model.reward_head, math.log(2.0)), (model.cont_head, math.log(0.7 / 0.3))):
            head[-1].weight.zero_()
            head[-1].bias.fill_(bias)
    out = model.imagine(model.initial_state(2), torch.tensor([0, 1]))
    assert not out.terminated.any() and torch.allclose(out.continuation, torch.full((2,), 0.7))
    ac = ActorCritic(model.feature_dim, action_space, ActorCriticConfig(horizon=4, hidden=8, gamma=1.0, lam=1.0))
    _zero_critics(ac)
    metrics = ac.update(model, model.initial_state(3), torch.Generator().manual_seed(0))
    assert metrics["imagined_return"] == pytest.approx(sum(0.7**t for t in range(4)), rel=1e-4)


def test_the_loss_weights_carry_dreamers_gamma_to_the_t():
    # constant reward 1, no ending, zero critics: returns R0 = 1 + gamma, R1 = 1 (H = 2, lambda = 1)
    ac = ActorCritic(2, spaces.Discrete(2), ActorCriticConfig(horizon=2, hidden=8, gamma=0.5, lam=1.0))
    _zero_critics(ac)
    metrics = ac.update(_ConstantModel(1.0, 0.0), {"x": torch.zeros(4)}, torch.Generator().manual_seed(0))
    # weights 1 and gamma: (1 * 1.5^2 + 0.5 * 1^2) / 2; without gamma^t it would be (1.5^2 + 1) / 2
    assert metrics["critic_loss"] == pytest.approx((1.5**2 + 0.5) / 2)
    assert loss_weights(torch.full((3, 1), 0.5), 0.9).flatten().tolist() == pytest.approx([1.0, 0.45, 0.2025])


def test_start_states_begin_each_window_as_training_does_with_no_previous_action():
    obs_space, action_space = spaces.Box(-1.0, 1.0, (3,), np.float32), spaces.Discrete(3)
    torch.manual_seed(0)
    model = model_zoo.make("rssm", obs_space, action_space, stoch=2, classes=2, hidden=8, units=8, vector_hidden=8)
    obs = torch.rand(2, 3, 3)
    mid_episode = Batch(obs=obs, action=torch.tensor([[2, 1, 0], [1, 2, 2]]), reward=torch.zeros(2, 3),
                        terminated=torch.zeros(2, 3, dtype=torch.bool), is_first=torch.zeros(2, 3, dtype=torch.bool))
    first = torch.zeros(2, 3, dtype=torch.bool)
    first[:, 0] = True
    started = Batch(obs=obs, action=mid_episode.action, reward=mid_episode.reward,
                    terminated=mid_episode.terminated, is_first=first)
    a, b = start_states(model, mid_episode), start_states(model, started)
    assert all(torch.allclose(a[k], b[k]) for k in b)  # the window's first action is dropped, as in model.loss


def test_a_model_that_only_decides_continues_with_one_minus_terminated():
    out = Imagined({}, torch.zeros(2), torch.tensor([True, False]))
    assert out.continuation.tolist() == [0.0, 1.0]
    assert out._replace(reward=torch.ones(2)).continuation.tolist() == [0.0, 1.0]
    state, reward, terminated = out  # the interface's three values: continuation is an attribute
    assert len(out) == 3 and terminated.tolist() == [True, False]

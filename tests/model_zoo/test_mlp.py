"""The MLP world model and the MLP ensemble on Dict, image and vector spaces, Discrete and Box actions."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import model_zoo
from model_zoo import Batch
from model_zoo.models.mlp import MLPEnsemble, MLPWorldModel, Rollout, RunningNorm
from tests.model_zoo.fixtures import BOX_ACTIONS, OBS_SPACES, adam_steps, random_actions, random_batch

MODEL_IDS = ["mlp", "mlp_ensemble"]
ACTION_SPACES = {"discrete": spaces.Discrete(3), "box": BOX_ACTIONS}
TINY = {"hidden": 32, "layers": 2, "image_pool": 4}

all_combinations = pytest.mark.parametrize(
    "model_id,obs_kind,action_kind",
    [(m, o, a) for m in MODEL_IDS for o in OBS_SPACES for a in ACTION_SPACES],
)


def make(model_id, obs_kind="vector", action_kind="discrete", **overrides):
    extra = {"members": 3} if model_id == "mlp_ensemble" else {}
    return model_zoo.make(model_id, OBS_SPACES[obs_kind], ACTION_SPACES[action_kind], **{**TINY, **extra, **overrides})


def batch_for(model, B=4, T=6, seed=0):
    return random_batch(model.observation_space, model.action_space, B, T, seed)


def observe_first(model, obs):
    """The state after observing ``obs`` (B, ...) as the first step of an episode."""
    B = len(obs["image"] if isinstance(obs, dict) else obs)
    action = random_actions(model.action_space, (B,), 0)
    return model.observe(model.initial_state(B), action, obs, torch.ones(B, dtype=torch.bool))


def obs_at(obs, t):
    return {k: v[:, t] for k, v in obs.items()} if isinstance(obs, dict) else obs[:, t]


def to_numpy_row(obs, i):
    return {k: v[i].numpy() for k, v in obs.items()} if isinstance(obs, dict) else obs[i].numpy()


@all_combinations
@torch.no_grad()
def test_interface_shapes_and_dtypes(model_id, obs_kind, action_kind):
    model = make(model_id, obs_kind, action_kind)
    B, H = 3, 4
    batch = batch_for(model, B, H)
    D = model.state_dim

    state = model.initial_state(B)
    assert state["obs"].shape == (B, D) and state["obs"].dtype == torch.float32
    state = model.observe(state, batch.action[:, 0], obs_at(batch.obs, 0), batch.is_first[:, 0])
    assert state["obs"].shape == (B, D)
    assert model.features(state).shape == (B, model.feature_dim) == (B, D)

    next_state, reward, terminated = model.imagine(state, batch.action[:, 1])
    assert set(next_state) == set(state)
    assert next_state["obs"].shape == (B, D) and next_state["obs"].dtype == torch.float32
    assert reward.shape == (B,) and reward.dtype == torch.float32
    assert terminated.shape == (B,) and terminated.dtype == torch.bool

    decoded = model.decode(next_state)
    for i in range(B):
        assert model.observation_space.contains(to_numpy_row(decoded, i))

    rollout = model.rollout(state, batch.action)
    assert isinstance(rollout, Rollout)
    assert rollout.states.shape == (B, H, D)
    assert rollout.rewards.shape == (B, H) and rollout.terminated.shape == (B, H)
    assert rollout.terminated.dtype == torch.bool
    if model_id == "mlp_ensemble":
        assert next_state["disagreement"].shape == (B,) and rollout.disagreement.shape == (B, H)
        assert model.uncertainty(state, batch.action[:, 1]).shape == (B,)
    else:
        assert rollout.disagreement is None

    loss, metrics = model.loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert all(isinstance(v, float) for v in metrics.values())


@all_combinations
def test_training_lowers_the_loss_on_a_fixed_batch(model_id, obs_kind, action_kind):
    torch.manual_seed(0)
    model = make(model_id, obs_kind, action_kind)
    batch = batch_for(model, B=4, T=6)
    losses = [loss for loss, _ in adam_steps(model, batch, 30)]
    with torch.no_grad():
        final, _ = model.eval().loss(batch)
    assert float(final) < 0.7 * losses[0]


@all_combinations
@torch.no_grad()
def test_imagine_is_batched_and_deterministic(model_id, obs_kind, action_kind):
    torch.manual_seed(0)
    model = make(model_id, obs_kind, action_kind)
    model.loss(batch_for(model))  # fit the normalisers, so they are not the identity
    batch = batch_for(model, B=5, T=2, seed=1)
    state = model.observe(model.initial_state(5), batch.action[:, 0], obs_at(batch.obs, 0), batch.is_first[:, 0])
    action = batch.action[:, 1]
    first = model.imagine(state, action, generator=torch.Generator().manual_seed(1))
    second = model.imagine(state, action, generator=torch.Generator().manual_seed(2))
    for a, b in zip(first, second, strict=True):
        if isinstance(a, dict):
            assert all(torch.equal(a[k], b[k]) for k in a)
        else:
            assert torch.equal(a, b)
    for i in range(5):
        row = model.imagine({k: v[i : i + 1] for k, v in state.items()}, action[i : i + 1])
        for key in first.state:
            torch.testing.assert_close(row.state[key][0], first.state[key][i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(row.reward[0], first.reward[i], atol=1e-5, rtol=1e-5)
        assert row.terminated[0] == first.terminated[i]


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_loss_masks_pairs_across_episode_boundaries(model_id):
    torch.manual_seed(0)
    model = make(model_id).eval()
    batch = batch_for(model, B=3, T=6)
    batch.terminated[:] = False
    batch.is_first[:, 3] = True  # obs[3] starts a new episode: the pair (2 -> 3) must not count
    loss, metrics = model.loss(batch)
    assert metrics["pairs"] == 3 * 4
    batch.action[:, 3] = (batch.action[:, 3] + 1) % 3  # the action and reward of a first step are meaningless
    batch.reward[:, 3] = float("nan")
    assert torch.equal(model.loss(batch)[0], loss)

    batch.is_first[:] = True  # no valid pair at all: a zero loss that still backpropagates
    loss, metrics = model.train().loss(batch)
    loss.backward()
    assert float(loss.detach()) == 0.0 and metrics["pairs"] == 0.0


@pytest.mark.parametrize("model_id", MODEL_IDS)
@torch.no_grad()
def test_decode_inverts_observe(model_id):
    vector_model = make(model_id, "vector")
    x = torch.rand(4, 5) * 2 - 1
    torch.testing.assert_close(vector_model.decode(observe_first(vector_model, x)), x)

    dict_model = make(model_id, "dict")
    colours = torch.randint(0, 256, (4, 1, 1, 3), dtype=torch.uint8)
    obs = {"image": colours.expand(4, 64, 64, 3).contiguous(), "state": torch.rand(4, 6) * 2 - 1}
    decoded = dict_model.decode(observe_first(dict_model, obs))
    assert torch.equal(decoded["image"], obs["image"])  # flat colours survive pooling exactly
    torch.testing.assert_close(decoded["state"], obs["state"])


def test_running_norm_matches_the_statistics_of_all_samples():
    x = torch.randn(100, 3) * torch.tensor([1.0, 5.0, 0.1]) + torch.tensor([0.0, 3.0, -2.0])
    norm = RunningNorm(3)
    for chunk in x.split([10, 37, 1, 52]):
        norm.update(chunk)
    torch.testing.assert_close(norm.mean, x.mean(0))
    torch.testing.assert_close(norm.var, x.var(0, unbiased=False))
    torch.testing.assert_close(norm.denormalize(norm.normalize(x)), x)


@pytest.mark.parametrize("model_id", MODEL_IDS)
@torch.no_grad()
def test_state_dict_round_trip_keeps_the_normalisers(model_id):
    torch.manual_seed(0)
    model = make(model_id, "dict", "box")
    model.loss(batch_for(model))
    clone = make(model_id, "dict", "box")
    clone.load_state_dict(model.state_dict())
    assert any(k.endswith("in_norm.mean") for k in model.state_dict())
    batch = batch_for(model, seed=3)
    state = observe_first(model, obs_at(batch.obs, 0))
    a, b = model.imagine(state, batch.action[:, 1]), clone.imagine(state, batch.action[:, 1])
    assert torch.equal(a.state["obs"], b.state["obs"]) and torch.equal(a.reward, b.reward)


def test_ensemble_disagrees_more_far_from_its_training_data():
    torch.manual_seed(0)
    model = make("mlp_ensemble", "vector", "discrete", hidden=64, members=5)
    g = torch.Generator().manual_seed(0)
    B, T = 32, 8
    obs = torch.rand(B, T, 5, generator=g) * 0.5  # training data lives in [0, 0.5]^5
    action = torch.randint(0, 3, (B, T), generator=g)
    obs[:, 1:] = (obs[:, :-1] * 0.9 + 0.05 * (action[:, 1:, None] - 1)).clamp(0, 0.5)  # simple dynamics
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    batch = Batch(obs, action, obs.sum(-1), torch.zeros(B, T, dtype=torch.bool), is_first)
    adam_steps(model, batch, 100)
    with torch.no_grad():
        near = model.uncertainty({"obs": obs[:, 0]}, action[:, 1]).mean()
        far = model.uncertainty({"obs": -1 - obs[:, 0]}, action[:, 1]).mean()  # in [-1.5, -1]^5
        imagined = model.imagine({"obs": -1 - obs[:, 0]}, action[:, 1]).state["disagreement"].mean()
    assert far > 3 * near
    torch.testing.assert_close(imagined, far)


def test_ensemble_bootstrap_is_seeded_and_differs_between_members():
    def weights(seed):
        model = make("mlp_ensemble", seed=seed).train()
        valid = torch.ones(50, dtype=torch.bool)
        return model._sample_weights(valid), model._sample_weights(valid)

    first, second = weights(0)
    assert first.shape == (3, 50)
    assert not torch.equal(first[0], first[1])  # members see different resamples
    assert not torch.equal(first, second)  # and a new one every step
    assert torch.equal(weights(0)[0], first) and not torch.equal(weights(1)[0], first)
    model = make("mlp_ensemble", bootstrap=False)
    assert torch.equal(model._sample_weights(torch.tensor([True, False])), torch.tensor([[1.0, 0.0]] * 3))


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_huber_losses_train(model_id):
    model = make(model_id, state_loss="huber", reward_loss="huber", huber_delta=0.5)
    loss, _ = model.loss(batch_for(model))
    loss.backward()
    assert torch.isfinite(loss)


def test_clear_errors_at_the_boundary():
    with pytest.raises(ValueError, match="state_loss"):
        make("mlp", state_loss="l1")
    with pytest.raises(ValueError, match="members"):
        make("mlp_ensemble", members=0)
    model = make("mlp")
    state = model.initial_state(2)
    with pytest.raises(ValueError, match="discrete actions"):
        model.imagine(state, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="interventions"):
        model.imagine(state, torch.tensor([0, 1]), do={"weather": 1})


def test_registry_builds_the_right_classes():
    assert isinstance(make("mlp"), MLPWorldModel) and not isinstance(make("mlp"), MLPEnsemble)
    ensemble = make("mlp_ensemble")
    assert isinstance(ensemble, MLPEnsemble) and ensemble.members == 3


def test_mlp_learns_cartpole_dynamics():
    """A foreign env: a few hundred Adam steps beat the next = current baseline on CartPole-v1."""
    torch.manual_seed(0)
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(0)
    B, T = 16, 16
    obs = np.zeros((B, T, 4), np.float32)
    action = np.zeros((B, T), np.int64)
    is_first = np.zeros((B, T), bool)
    terminated = np.zeros((B, T), bool)
    for b in range(B):
        obs[b, 0], _ = env.reset(seed=b)
        is_first[b, 0] = True
        for t in range(1, T):
            if terminated[b, t - 1]:
                obs[b, t], _ = env.reset()
                is_first[b, t] = True
                continue
            action[b, t] = rng.integers(2)
            obs[b, t], _, terminated[b, t], _, _ = env.step(action[b, t])
    batch = Batch(
        torch.from_numpy(obs), torch.from_numpy(action), torch.ones(B, T), torch.from_numpy(terminated),
        torch.from_numpy(is_first),
    )
    model = model_zoo.make("mlp", env.observation_space, env.action_space, hidden=64, layers=2)
    _, metrics = adam_steps(model, batch, 150)[-1]
    assert metrics["state_mse"] < 0.1 * metrics["copy_mse"]


def test_imagined_states_stay_inside_the_observation_bounds():
    space = gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
    model = model_zoo.make("mlp", space, gym.spaces.Discrete(3), hidden=16)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(3.0)  # a model that predicts huge steps
        state = model.observe(model.initial_state(4), torch.zeros(4, dtype=torch.long),
                              torch.zeros(4, 5), torch.ones(4, dtype=torch.bool))
        for _ in range(20):
            state = model.imagine(state, torch.ones(4, dtype=torch.long)).state
    assert state["obs"].abs().max() <= 1.0 and torch.isfinite(state["obs"]).all()


def _coin_flip_batch(B=64, T=8, p_move=0.7, seed=0):
    """A 1-D walk: action 1 moves +1 with probability p_move (reward 0), else stays (reward -1); action 0 stays."""
    g = torch.Generator().manual_seed(seed)
    action = torch.randint(0, 2, (B, T), generator=g)
    moved = (action == 1) & (torch.rand(B, T, generator=g) < p_move)
    x = torch.zeros(B, T)
    x[:, 0] = torch.randint(-4, 4, (B,), generator=g).float()
    for t in range(1, T):
        x[:, t] = x[:, t - 1] + moved[:, t].float()
    reward = torch.where((action == 1) & ~moved, -1.0, 0.0)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    obs = torch.stack([x, torch.zeros_like(x)], -1)
    return Batch(obs, action, reward, torch.zeros(B, T, dtype=torch.bool), is_first)


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_outcomes_draw_whole_next_steps_with_the_odds_of_the_data(model_id):
    torch.manual_seed(0)
    space = spaces.Box(-20, 20, (2,), np.float32)
    extra = {"members": 2} if model_id == "mlp_ensemble" else {}
    model = model_zoo.make(model_id, space, spaces.Discrete(2), hidden=32, layers=2, outcomes=2, **extra)
    _, metrics = adam_steps(model, _coin_flip_batch(), 400)[-1]
    assert "odds_loss" in metrics
    n = 2000
    start = {"obs": torch.zeros(n, 2)}
    with torch.no_grad():
        out = model.imagine(start, torch.ones(n, dtype=torch.long), generator=torch.Generator().manual_seed(0))
        again = model.imagine(start, torch.ones(n, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.state["obs"], again.state["obs"])  # seeded draws repeat
    step = out.state["obs"][:, 0]
    moved = step > 0.5
    assert 0.6 < moved.float().mean() < 0.8  # the data moves 70% of the time
    # each draw is one whole outcome: a full step with no penalty, or no step with the penalty
    assert (step[moved] - 1).abs().max() < 0.25 and step[~moved].abs().max() < 0.25
    assert out.reward[moved].abs().max() < 0.25 and (out.reward[~moved] + 1).abs().max() < 0.25
    if model_id == "mlp_ensemble":
        assert out.state["disagreement"].shape == (n,)


def test_a_single_outcome_predicts_the_blurred_mean_instead():
    torch.manual_seed(0)
    model = model_zoo.make("mlp", spaces.Box(-20, 20, (2,), np.float32), spaces.Discrete(2), hidden=32, layers=2)
    adam_steps(model, _coin_flip_batch(), 400)
    with torch.no_grad():
        out = model.imagine({"obs": torch.zeros(8, 2)}, torch.ones(8, dtype=torch.long))
    torch.testing.assert_close(out.state["obs"][:, 0], torch.full((8,), 0.7), atol=0.1, rtol=0)
    torch.testing.assert_close(out.reward, torch.full((8,), -0.3), atol=0.1, rtol=0)


def test_input_noise_teaches_the_model_to_pull_drifted_states_back():
    """The state flips between 0 and 1. From 0.3, off every state in the data, the model trained on clean
    inputs extrapolates the flip to 0.7; the one trained on nudged inputs heads back to the lattice, at 1."""

    def trained(noise):
        torch.manual_seed(0)
        model = model_zoo.make(
            "mlp", spaces.Box(-5, 5, (2,), np.float32), spaces.Discrete(2), hidden=64, layers=2, input_noise=noise
        )
        g = torch.Generator().manual_seed(0)
        B, T = 32, 8
        obs = torch.zeros(B, T, 2)
        obs[:, :, 0] = (torch.randint(0, 2, (B, 1), generator=g) + torch.arange(T)) % 2
        is_first = torch.zeros(B, T, dtype=torch.bool)
        is_first[:, 0] = True
        batch = Batch(obs, torch.randint(0, 2, (B, T), generator=g), torch.zeros(B, T),
                      torch.zeros(B, T, dtype=torch.bool), is_first)
        adam_steps(model, batch, 1000)
        return model

    drifted = {"obs": torch.tensor([[0.3, 0.0], [0.7, 0.0]])}  # the flip takes them to 1 and 0
    errors = {}
    for noise in (0.0, 0.3):
        model = trained(noise)
        with torch.no_grad():
            step = model.imagine(drifted, torch.tensor([0, 1])).state["obs"][:, 0]
        errors[noise] = (step - torch.tensor([1.0, 0.0])).abs().max()
    assert errors[0.0] > 0.25  # the flip, extrapolated: 0.3 -> 0.7
    assert errors[0.3] < 0.6 * errors[0.0]


def test_snap_levels_keep_a_dream_on_the_values_the_data_showed(tmp_path):
    """A walk on a grid of 10 cells (dimension 0) beside a continuous signal (dimension 1): with snap_levels, a
    long imagined walk stays exactly on the grid, the signal is left as predicted, and the levels are saved."""
    g = torch.Generator().manual_seed(0)
    B, T = 32, 8
    action = torch.randint(0, 3, (B, T), generator=g)  # 0 stay, 1 right, 2 left
    cell = torch.zeros(B, T, dtype=torch.long)
    cell[:, 0] = torch.randint(0, 10, (B,), generator=g)
    for t in range(1, T):
        step = torch.where(action[:, t] == 1, 1, torch.where(action[:, t] == 2, -1, 0))
        cell[:, t] = (cell[:, t - 1] + step).clamp(0, 9)
    signal = torch.rand(B, T, generator=g)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    obs = torch.stack([cell.float() / 9, signal], -1)
    batch = Batch(obs, action, torch.zeros(B, T), torch.zeros(B, T, dtype=torch.bool), is_first)
    space = spaces.Box(-1, 2, (2,), np.float32)
    torch.manual_seed(0)
    model = model_zoo.make("mlp", space, spaces.Discrete(3), hidden=32, layers=2, snap_levels=16)
    adam_steps(model, batch, 100)
    assert model.level_count.tolist() == [10, 17]  # the signal has too many values: marked, not snapped
    torch.testing.assert_close(model.levels[0, :10], torch.arange(10) / 9)
    state = {"obs": torch.tensor([[0.0, 0.5], [1.0, 0.5]])}
    with torch.no_grad():
        for _ in range(30):
            state = model.imagine(state, torch.tensor([1, 2]))[0]
            on_grid = (state["obs"][:, 0:1] - torch.arange(10) / 9).abs().min(-1).values
            assert torch.all(on_grid == 0)
    assert not torch.isin(state["obs"][:, 1], model.levels[1]).all()
    model.save(tmp_path / "m")
    loaded = model_zoo.load(tmp_path / "m")
    assert torch.equal(loaded.levels, model.levels) and torch.equal(loaded.level_count, model.level_count)


def test_rollout_steps_score_the_models_own_states_against_the_real_ones(monkeypatch):
    """Stage k of a rollout_steps=3 loss starts each pair where stage k - 1's prediction landed, aims at the
    real state k steps further on, and counts a pair only if every step it stands on is inside one episode."""
    model = make("mlp", "vector", "discrete", rollout_steps=3, outcomes=2, snap_levels=8)
    batch = batch_for(model, B=3, T=6)
    batch.is_first[1, 3] = True  # window 1 holds two episodes
    batch.terminated[2, 2] = True  # window 2's episode ends at t = 2
    calls = []
    original = MLPWorldModel._pairs_loss

    def spy(self, x, act, target, reward, done, valid, rollout, with_metrics=True):
        out = original(self, x, act, target, reward, done, valid, rollout, with_metrics)
        calls.append((x, target, valid, rollout, out[2], out[1]))
        return out

    monkeypatch.setattr(MLPWorldModel, "_pairs_loss", spy)
    loss, metrics = model.loss(batch)
    assert torch.isfinite(loss) and "rollout_loss" in metrics
    assert [c[3] for c in calls] == [True, True, False]
    s = model.encode_obs(batch.obs)
    pair_ok = ~batch.is_first[:, 1:] & ~batch.terminated[:, :-1]  # (B, T - 1)
    assert [bool(c[5]) for c in calls] == [True, False, False]  # the later stages' metrics are not computed
    for k, (x, target, valid, _, _, _) in enumerate(calls):
        torch.testing.assert_close(target, s[:, k + 1 :])
        expected = torch.stack([pair_ok[:, j : j + k + 1].all(1) for j in range(5 - k)], 1)
        assert torch.equal(valid, expected)
        if k:
            torch.testing.assert_close(x, calls[k - 1][4][:, :-1])  # the previous stage's landing points
    assert not torch.equal(calls[1][0], s[:, 1:-1])  # the model's own states, not the data's
    assert calls[2][4] is None


def test_bad_outcome_settings_are_rejected():
    for bad in ({"outcomes": 0}, {"outcome_relax": 1.0}, {"temperature": -1.0}, {"input_noise": -0.1},
                {"snap_levels": -1}, {"rollout_steps": 0}):
        with pytest.raises(ValueError):
            make("mlp", **bad)

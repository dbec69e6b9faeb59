"""The model-based RL loop: exact real-step accounting, what it keeps on disk, exploration, the disagreement guard."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

import model_zoo
from model_zoo.agents import LinearController
from model_zoo.agents.mbrl import (
    CMAESLearner,
    DisagreementPenalty,
    LoopConfig,
    SB3Learner,
    _exploring,
    run_loop,
)
from model_zoo.agents.transfer import CMAES, Evaluation
from model_zoo.data import load_dataset, load_episodes
from wrappers import DreamVectorEnv, to_sb3

TINY = dict(iterations=3, initial_episodes=6, episodes=3, num_envs=3, initial_fit_steps=4, fit_steps=2,
            batch_size=4, seq_len=8, evaluation=Evaluation(episodes=4, reset_seed=500))


def cartpole_model(model_id: str = "mlp", **config):
    env = gym.make("CartPole-v1")
    torch.manual_seed(0)
    return model_zoo.make(model_id, env.observation_space, env.action_space, hidden=16, **config)


def dream(model, episodes, n):
    return DreamVectorEnv(model, n, dataset=episodes, start_frames="any", max_episode_steps=10)


class CountingLearner:
    """Acts with a fixed action and records what the loop handed it."""

    def __init__(self):
        self.calls: list[int] = []
        self.acted = 0

    def learn(self, dream_factory, model, episodes):
        envs = dream_factory(2)
        envs.reset(seed=0)
        envs.close()
        self.calls.append(len(episodes))
        return {"episodes_seen": float(len(episodes))}

    def act(self, obs):
        self.acted += len(obs)
        return np.ones(len(obs), dtype=np.int64)


def test_real_steps_are_every_collected_transition(tmp_path):
    learner = CountingLearner()
    result = run_loop(cartpole_model(), learner, "CartPole-v1", dream, LoopConfig(**TINY), run_dir=tmp_path,
                      progress=False)
    on_disk = [load_episodes(load_dataset(f"mbrl/iteration{k}-v0", data_path=tmp_path / "data")) for k in range(3)]
    sizes = [len(episodes) for episodes in on_disk]
    assert sizes == [6, 3, 3]
    steps = np.cumsum([sum(len(e) for e in episodes) for episodes in on_disk]).tolist()
    assert [row["real_steps"] for row in result.curve] == steps
    assert [row["real_episodes"] for row in result.curve] == [6, 9, 12]
    assert learner.calls == [6, 9, 12]  # the learner sees all data so far, and the model was fitted on it first
    saved = json.loads((tmp_path / "curve.json").read_text())
    assert [row["real_steps"] for row in saved["curve"]] == steps and saved["random"] == result.random
    assert model_zoo.load(tmp_path / "model").model_id == "mlp"
    # after the first (random) iteration the policy collects: CartPole pushed right every step ends fast
    assert all(len(e) < 30 for e in on_disk[1] + on_disk[2])
    with pytest.raises(FileExistsError, match="already holds a loop run"):
        run_loop(cartpole_model(), learner, "CartPole-v1", dream, LoopConfig(**TINY), run_dir=tmp_path, progress=False)


def test_the_model_fits_on_fit_threads_and_the_process_gets_its_own_count_back(tmp_path, monkeypatch):
    import model_zoo.agents.mbrl as mbrl

    fitted_on, real_fit = [], mbrl.fit
    monkeypatch.setattr(mbrl, "fit", lambda *a, **kw: fitted_on.append(torch.get_num_threads()) or real_fit(*a, **kw))
    own = torch.get_num_threads()
    config = LoopConfig(**{**TINY, "iterations": 2}, fit_threads=own + 1)
    run_loop(cartpole_model(), CountingLearner(), "CartPole-v1", dream, config, run_dir=tmp_path, progress=False)
    assert fitted_on == [own + 1, own + 1] and torch.get_num_threads() == own


def test_exploration_mixes_uniform_actions():
    rng = np.random.default_rng(0)
    space = gym.spaces.Discrete(5)
    fixed = lambda obs: np.zeros(len(obs), dtype=np.int64)  # noqa: E731
    assert (_exploring(fixed, space, 0.0, rng)(np.zeros((100, 2))) == 0).all()
    mixed = _exploring(fixed, space, 0.5, rng)(np.zeros((4000, 2)))
    assert mixed.dtype == np.int64 and 0.55 < (mixed == 0).mean() < 0.65  # half kept, a fifth of the rest is 0
    box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    out = _exploring(lambda obs: np.full((len(obs), 2), 5.0, np.float32), box, 1.0, rng)(np.zeros((50, 2)))
    assert out.shape == (50, 2) and (np.abs(out) <= 1).all()


def test_sb3_learner_keeps_learning_across_dreams(tmp_path, sb3_temp_dir):
    learner = SB3Learner(PPO, to_vec_env=to_sb3, timesteps=64, num_envs=2, settings=dict(n_steps=32, batch_size=32))
    result = run_loop(cartpole_model(), learner, "CartPole-v1", dream, LoopConfig(**{**TINY, "iterations": 2}),
                      run_dir=tmp_path, progress=False)
    assert not list(sb3_temp_dir.glob("SB3-*"))  # no log folder per learn() call
    assert [row["learner"]["timesteps"] for row in result.curve] == [64.0, 128.0]  # one agent, its counter runs on
    assert learner.act(np.zeros((3, 4), np.float32)).shape == (3,)
    again = SB3Learner(PPO, to_vec_env=to_sb3, timesteps=64, num_envs=2, settings=dict(n_steps=32, batch_size=32))
    twin = run_loop(cartpole_model(), again, "CartPole-v1", dream, LoopConfig(**{**TINY, "iterations": 2}),
                    run_dir=tmp_path / "twin", progress=False)
    for a, b in zip(learner.agent.policy.parameters(), again.agent.policy.parameters(), strict=True):
        assert torch.equal(a, b)  # the same seed, the same agent: every dream it learned in was seeded
    assert [row["return_mean"] for row in twin.curve] == [row["return_mean"] for row in result.curve]


def test_cmaes_learner_starts_from_its_last_parameters(tmp_path):
    env = gym.make("CartPole-v1")
    controller = LinearController(4, env.action_space)
    learner = CMAESLearner(controller, CMAES(generations=2, popsize=4, episodes_per_member=1, seed=0))
    run_loop(cartpole_model(), learner, "CartPole-v1", dream, LoopConfig(**{**TINY, "iterations": 1}),
             run_dir=tmp_path / "a", progress=False)
    first = learner.params.copy()
    learner.learn(lambda n: dream(cartpole_model(), load_episodes(load_dataset(
        "mbrl/iteration0-v0", data_path=tmp_path / "a" / "data")), n), None, [])
    assert not np.array_equal(first, learner.params)
    assert learner.act(np.zeros((2, 4), np.float32)).shape == (2,)


def test_disagreement_penalty_and_limit():
    model = cartpole_model("mlp_ensemble", members=3)
    base = DreamVectorEnv(model, 4, "CartPole-v1")
    penalised = DisagreementPenalty(DreamVectorEnv(model, 4, "CartPole-v1"), penalty=2.0)
    actions = np.array([0, 1, 0, 1])
    base.reset(seed=3)
    penalised.reset(seed=3)
    _, reward, _, _, info = base.step(actions)
    _, shaped, _, truncated, _ = penalised.step(actions)
    np.testing.assert_allclose(shaped, reward - 2.0 * info["disagreement"], rtol=1e-6)
    assert not truncated.any()
    limited = DisagreementPenalty(DreamVectorEnv(model, 4, "CartPole-v1"), limit=1e-12)
    limited.reset(seed=3)
    _, _, terminated, truncated, _ = limited.step(actions)
    assert (truncated | terminated).all()
    plain = DisagreementPenalty(DreamVectorEnv(cartpole_model(), 2, "CartPole-v1"), penalty=1.0)
    plain.reset(seed=0)
    with pytest.raises(ValueError, match="disagreement"):
        plain.step(np.array([0, 1]))


@pytest.mark.parametrize("change, match", [
    ({"iterations": 0}, "iterations"),
    ({"exploration": 1.5}, "exploration"),
    ({"fit_steps": -1}, "fit_steps"),
    ({"fit_threads": 0}, "fit_threads"),
])
def test_bad_loop_config_is_refused(change, match):
    with pytest.raises(ValueError, match=match):
        LoopConfig(**{**TINY, **change})


def test_actor_critic_learner_learns_from_the_model_and_acts_on_real_observations(tmp_path):
    from model_zoo.agents import ActorCriticConfig
    from model_zoo.agents.mbrl import ActorCriticLearner

    learner = ActorCriticLearner(ActorCriticConfig(hidden=16, horizon=4), updates=3, batch_size=4, seq_len=6)
    result = run_loop(cartpole_model(), learner, "CartPole-v1", dream, LoopConfig(**{**TINY, "iterations": 2}),
                      run_dir=tmp_path, progress=False)
    assert all(np.isfinite(row["learner"]["critic_loss"]) for row in result.curve)
    before = [p.detach().clone() for p in learner.agent.parameters()]
    learner.learn(None, learner.model, load_episodes(load_dataset("mbrl/iteration0-v0", data_path=tmp_path / "data")))
    assert any(not torch.equal(a, b) for a, b in zip(before, learner.agent.parameters(), strict=True))
    actions = learner.act(np.zeros((5, 4), np.float32))
    assert actions.shape == (5,) and set(actions.tolist()) <= {0, 1}


class Killed(Exception):
    """What the test raises in place of a process dying."""


def a_learner(kind: str):
    """A fresh learner of ``kind``, as a new process would build it."""
    from stable_baselines3 import DQN

    from model_zoo.agents import ActorCriticConfig
    from model_zoo.agents.mbrl import ActorCriticLearner

    if kind == "ppo":
        return SB3Learner(PPO, to_vec_env=to_sb3, timesteps=64, num_envs=2, settings=dict(n_steps=32, batch_size=32))
    if kind == "dqn":
        return SB3Learner(DQN, to_vec_env=to_sb3, timesteps=64, num_envs=2,
                          settings=dict(learning_starts=16, buffer_size=500, batch_size=16, train_freq=1))
    if kind == "cmaes":
        controller = LinearController(4, gym.make("CartPole-v1").action_space)
        return CMAESLearner(controller, CMAES(generations=2, popsize=4, episodes_per_member=1, seed=0))
    return ActorCriticLearner(ActorCriticConfig(hidden=16, horizon=4), updates=3, batch_size=4, seq_len=6)


def learnt(learner) -> list[torch.Tensor]:
    if isinstance(learner, CMAESLearner):
        return [torch.as_tensor(learner.params)]
    module = learner.agent if not isinstance(learner, SB3Learner) else learner.agent.policy
    return [p.detach().clone() for p in module.state_dict().values()]


@pytest.mark.parametrize("kind", ["ppo", "dqn", "cmaes", "actor_critic"])
def test_a_killed_loop_resumes_as_if_it_had_never_stopped(kind, tmp_path):
    config = LoopConfig(**TINY)
    whole, learner = tmp_path / "whole", a_learner(kind)
    straight = run_loop(cartpole_model(), learner, "CartPole-v1", dream, config, run_dir=whole, progress=False)
    dying, rounds = a_learner(kind), []
    learn = dying.learn

    def learn_then_die(*args):
        rounds.append(1)
        if len(rounds) == 3:  # the last iteration dies after collecting and fitting: model/ is already newer
            raise Killed
        return learn(*args)

    dying.learn = learn_then_die
    with pytest.raises(Killed):
        run_loop(cartpole_model(), dying, "CartPole-v1", dream, config, run_dir=tmp_path / "cut", progress=False)
    assert len(json.loads((tmp_path / "cut" / "curve.json").read_text())["curve"]) == 2
    again = a_learner(kind)
    resumed = run_loop(cartpole_model(), again, "CartPole-v1", dream, config, run_dir=tmp_path / "cut",
                       progress=False, resume=True)
    keys = ("real_steps", "return_mean", "success_rate", "in_dream")
    assert [[row[k] for k in keys] for row in resumed.curve] == [[row[k] for k in keys] for row in straight.curve]
    assert all(torch.equal(a, b) for a, b in zip(learnt(learner), learnt(again), strict=True))
    for a, b in zip(model_zoo.load(whole / "model").parameters(), model_zoo.load(tmp_path / "cut" / "model")
                    .parameters(), strict=True):
        assert torch.equal(a, b)
    assert [p.name for p in (tmp_path / "cut" / "state").iterdir()] == ["iteration2"]  # only the newest is kept


def test_resume_runs_more_iterations_and_refuses_another_config(tmp_path):
    two = LoopConfig(**{**TINY, "iterations": 2})
    run_loop(cartpole_model(), a_learner("ppo"), "CartPole-v1", dream, two, run_dir=tmp_path / "a", progress=False)
    same_threads = LoopConfig(**TINY, fit_threads=torch.get_num_threads())  # how it fits is not what it runs
    longer = run_loop(cartpole_model(), a_learner("ppo"), "CartPole-v1", dream, same_threads,
                      run_dir=tmp_path / "a", progress=False, resume=True)
    straight = run_loop(cartpole_model(), a_learner("ppo"), "CartPole-v1", dream, LoopConfig(**TINY),
                        run_dir=tmp_path / "b", progress=False)
    assert [row["return_mean"] for row in longer.curve] == [row["return_mean"] for row in straight.curve]
    with pytest.raises(ValueError, match="another loop config"):
        run_loop(cartpole_model(), a_learner("ppo"), "CartPole-v1", dream, LoopConfig(**{**TINY, "exploration": 0.5}),
                 run_dir=tmp_path / "a", progress=False, resume=True)
    for folder in (tmp_path / "a" / "state").iterdir():
        for item in folder.iterdir():
            item.unlink() if item.is_file() else None
    with pytest.raises(ValueError, match="no saved state after iteration 2"):
        run_loop(cartpole_model(), a_learner("ppo"), "CartPole-v1", dream, LoopConfig(**{**TINY, "iterations": 4}),
                 run_dir=tmp_path / "a", progress=False, resume=True)


def test_a_loop_killed_between_its_state_and_its_curve_resumes_from_the_curve(tmp_path, monkeypatch):
    import model_zoo.agents.mbrl as mbrl

    straight = run_loop(cartpole_model(), a_learner("ppo"), "CartPole-v1", dream, LoopConfig(**TINY),
                        run_dir=tmp_path / "whole", progress=False)
    writes, write = [], mbrl.atomic_write

    def write_then_die(*args):
        writes.append(1)
        if len(writes) == 3:  # the third curve: iteration 2's state is on disk, its row is not
            raise Killed
        return write(*args)

    monkeypatch.setattr(mbrl, "atomic_write", write_then_die)
    with pytest.raises(Killed):
        run_loop(cartpole_model(), a_learner("ppo"), "CartPole-v1", dream, LoopConfig(**TINY),
                 run_dir=tmp_path / "cut", progress=False)
    monkeypatch.setattr(mbrl, "atomic_write", write)
    assert sorted(p.name for p in (tmp_path / "cut" / "state").iterdir()) == ["iteration1", "iteration2"]
    resumed = run_loop(cartpole_model(), a_learner("ppo"), "CartPole-v1", dream, LoopConfig(**TINY),
                       run_dir=tmp_path / "cut", progress=False, resume=True)
    assert [row["return_mean"] for row in resumed.curve] == [row["return_mean"] for row in straight.curve]

"""The linear controller, CMA-ES training and batched population rollouts."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import model_zoo
from model_zoo.agents.controllers import LinearController, load_params, model_features, rollout_returns, train_cmaes


class Corridor(gym.Env):
    """Reward 1 every step; action 0 ends the episode, action 1 walks on until ``length`` steps (truncation)."""

    def __init__(self, length: int = 5):
        self.length = length
        self.observation_space = spaces.Box(-1, 1, (2,), np.float32)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 2).astype(np.float32), {}

    def step(self, action):
        self.t += 1
        obs = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return obs, 1.0, int(action) == 0, self.t >= self.length, {}


class Bandit(gym.Env):
    """Five steps; reward 1 when the action picks the larger of the two observed numbers."""

    def __init__(self):
        self.observation_space = spaces.Box(-1, 1, (2,), np.float32)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.obs = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.obs, {}

    def step(self, action):
        reward = float(int(action) == int(np.argmax(self.obs)))
        self.t += 1
        self.obs = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.obs, reward, self.t >= 5, False, {}


class Target(gym.Env):
    """One step; reward -(action - 0.6 * obs)^2 summed over 2 action dims, actions in [-1, 1]."""

    def __init__(self):
        self.observation_space = spaces.Box(-1, 1, (2,), np.float32)
        self.action_space = spaces.Box(-1, 1, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.obs = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.obs, {}

    def step(self, action):
        return self.obs, -float(np.sum((action - 0.6 * self.obs) ** 2)), True, False, {}


def vector(env_cls, n):
    return gym.vector.SyncVectorEnv([env_cls] * n)


def test_linear_controller_discrete_actions_are_valid():
    space = spaces.Discrete(4, start=2)
    controller = LinearController(3, space)
    assert controller.num_params == 4 * 3 + 4
    controller.set_params(np.random.default_rng(0).normal(size=controller.num_params))
    features = np.random.default_rng(1).normal(size=(10, 3))
    actions = controller(features)
    assert actions.shape == (10,) and np.issubdtype(actions.dtype, np.integer)
    assert all(space.contains(a) for a in actions)
    torch_actions = controller(torch.as_tensor(features, dtype=torch.float32))
    assert torch.is_tensor(torch_actions) and torch_actions.tolist() == actions.tolist()
    assert space.contains(controller(features[0]))  # a single feature vector gives a single action


def test_linear_controller_box_actions_stay_in_bounds():
    space = spaces.Box(np.array([-1, 0, 2], np.float32), np.array([1, 0.5, 10], np.float32), dtype=np.float32)
    controller = LinearController(5, space)
    controller.set_params(np.random.default_rng(0).normal(scale=100, size=controller.num_params))
    actions = controller(np.random.default_rng(1).normal(size=(20, 5)))
    assert actions.shape == (20, 3) and actions.dtype == np.float32
    assert all(space.contains(a) for a in actions)
    torch_actions = controller(torch.randn(20, 5))
    assert torch_actions.shape == (20, 3) and torch_actions.dtype == torch.float32

    zero = LinearController(5, space)  # zero parameters: the middle of the box
    np.testing.assert_allclose(zero(np.ones((1, 5)))[0], [0.0, 0.25, 6.0])

    unbounded = LinearController(1, spaces.Box(-np.inf, np.inf, (2,), np.float32), bias=False)
    unbounded.set_params(np.array([3.0, -2.0]))
    np.testing.assert_allclose(unbounded(np.array([[10.0]])), [[30.0, -20.0]])  # no bound: stays linear


def test_linear_controller_params_round_trip_and_reject_bad_lengths():
    controller = LinearController(3, spaces.Discrete(2))
    params = np.arange(controller.num_params, dtype=np.float32)
    controller.set_params(params)
    np.testing.assert_array_equal(controller.get_params(), params)
    np.testing.assert_array_equal(controller.weight, params[:6].reshape(2, 3))
    with pytest.raises(ValueError, match="length 8"):
        controller.set_params(np.zeros(7))
    with pytest.raises(TypeError, match="Discrete or float Box"):
        LinearController(3, spaces.MultiBinary(2))


def test_act_population_gives_each_member_its_own_rows():
    space = spaces.Box(-1, 1, (2,), np.float32)
    controller = LinearController(4, space)
    rng = np.random.default_rng(0)
    population = rng.normal(size=(3, controller.num_params))
    features = rng.normal(size=(3 * 5, 4))
    actions = controller.act_population(population, features)
    for p in range(3):
        controller.set_params(population[p])
        np.testing.assert_allclose(actions[p * 5 : (p + 1) * 5], controller(features[p * 5 : (p + 1) * 5]), rtol=1e-6)
    with pytest.raises(ValueError, match="P \\* K"):
        controller.act_population(population, features[:14])


def test_cmaes_maximises_a_quadratic_reproducibly():
    target = np.linspace(-1, 1, 6)

    def evaluate(population):
        return np.array([-np.sum((p - target) ** 2) for p in population])

    np.random.seed(123)  # noqa: NPY002 (checks that the legacy global generator is left alone)
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    best, history = train_cmaes(evaluate, 6, generations=60, popsize=10, sigma0=0.5, seed=3, progress=False)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    assert best.shape == (6,) and best.dtype == np.float32
    assert -np.sum((best - target) ** 2) > 0.01 * evaluate([np.zeros(6)])[0]  # 100x closer than the start
    assert set(history) == {"best", "mean", "worst", "sigma", "best_so_far", "recheck"}
    assert np.all(np.diff(history["best_so_far"]) >= 0)
    assert history["mean"][-1] > history["mean"][0]
    again, _ = train_cmaes(evaluate, 6, generations=60, popsize=10, sigma0=0.5, seed=3, progress=False)
    np.testing.assert_array_equal(best, again)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_cmaes_saves_the_best_parameters(tmp_path, suffix):
    path = tmp_path / "run" / f"controller{suffix}"
    best, _ = train_cmaes(lambda pop: [-abs(p).sum() for p in pop], 3, generations=3, save_path=path, progress=False)
    np.testing.assert_array_equal(load_params(path), best)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_cmaes_recheck_returns_the_mean_when_the_best_was_luck():
    """A flat objective with noise: every "best" evaluation is luck, and the recheck sees it."""
    rng = np.random.default_rng(0)

    def evaluate(population):  # the true return is -|p|^2; one member in each population gets a lucky +5
        returns = np.array([-np.sum(np.square(p)) for p in population])
        returns[rng.integers(len(population))] += 5.0
        return returns

    def noiseless(population):
        return np.array([-np.sum(np.square(p)) for p in population])

    x0 = np.full(4, 0.5)
    lucky, history = train_cmaes(evaluate, 4, generations=2, popsize=8, sigma0=0.3, x0=x0, seed=1, progress=False,
                                 recheck=False)
    rechecked, history = train_cmaes(evaluate, 4, generations=2, popsize=8, sigma0=0.3, x0=x0, seed=1,
                                     progress=False)
    assert history["recheck"].shape == (2,)
    mean = history["recheck"][1]
    assert history["recheck"][0] < history["best_so_far"][-1] - 2  # the lucky +5 did not come back
    assert noiseless([rechecked])[0] == pytest.approx(max(noiseless([lucky])[0], mean), abs=1.0)
    assert not np.array_equal(rechecked, lucky) or history["recheck"][0] >= mean


def test_cmaes_rejects_bad_returns_and_paths(tmp_path):
    with pytest.raises(ValueError, match="finite returns"):
        train_cmaes(lambda pop: [0.0], 3, generations=1, progress=False)
    with pytest.raises(ValueError, match="finite returns"):
        train_cmaes(lambda pop: [np.nan] * len(pop), 3, generations=1, progress=False)
    with pytest.raises(ValueError, match=".npz or .safetensors"):
        train_cmaes(lambda pop: [0.0] * len(pop), 3, generations=1, save_path=tmp_path / "x.pkl", progress=False)


def test_rollout_returns_counts_each_episode_once():
    controller = LinearController(2, spaces.Discrete(2))
    stop = np.array([0, 0, 0, 0, 1.0, 0.0])  # bias only: always action 0, the episode ends at once
    walk = np.array([0, 0, 0, 0, 0.0, 1.0])  # always action 1: five steps
    env = vector(Corridor, 2 * 3)
    returns = rollout_returns([stop, walk], env, episodes=3, controller=controller, seed=0)
    np.testing.assert_array_equal(returns, [1.0, 5.0])  # steps after an env's episode ended are ignored
    capped = rollout_returns([stop, walk], env, episodes=3, max_steps=3, seed=0)
    np.testing.assert_array_equal(capped, [1.0, 3.0])
    with pytest.raises(ValueError, match="needs 4"):
        rollout_returns([stop, walk], env, episodes=2)
    env.close()


def test_rollout_returns_takes_a_factory_or_an_env_id():
    params = [np.zeros(2 * 4 + 2)]  # CartPole: 4 features, 2 actions
    from_factory = rollout_returns(params, lambda n: gym.make_vec("CartPole-v1", num_envs=n), episodes=2, seed=0)
    from_id = rollout_returns(params, "CartPole-v1", episodes=2, seed=0)
    np.testing.assert_array_equal(from_factory, from_id)
    assert from_id.shape == (1,) and from_id[0] >= 1


def test_cmaes_learns_a_bandit_in_a_vector_env():
    popsize, episodes = 8, 8
    env = vector(Bandit, popsize * episodes)
    generation = iter(range(1000))

    def evaluate(population):  # fresh episodes every generation
        return rollout_returns(population, env, episodes=episodes, seed=1000 * next(generation))

    num_params = LinearController(2, env.single_action_space).num_params
    best, history = train_cmaes(evaluate, num_params, generations=15, popsize=popsize, sigma0=0.5, progress=False)
    controller = LinearController(2, env.single_action_space)
    controller.set_params(best)
    features = np.random.default_rng(0).uniform(-1, 1, (200, 2))
    assert np.mean(controller(features) == features.argmax(1)) > 0.85
    assert history["mean"][-1] > history["mean"][0] + 1  # the whole population improved
    env.close()


def test_cmaes_learns_a_box_target_in_a_vector_env():
    popsize, episodes = 8, 16
    env = vector(Target, popsize * episodes)
    num_params = LinearController(2, env.single_action_space).num_params

    def evaluate(population):
        return rollout_returns(population, env, episodes=episodes, seed=0)

    start = evaluate([np.zeros(num_params)] * popsize)[0]
    best, _ = train_cmaes(evaluate, num_params, generations=25, popsize=popsize, sigma0=0.5, progress=False)
    assert evaluate([best] * popsize)[0] > 0.2 * start  # returns are negative: at least 5x closer to 0
    env.close()


def test_model_features_drive_a_controller_in_the_real_env():
    env = gym.make_vec("CartPole-v1", num_envs=3 * 2)
    model = model_zoo.make("mlp", env.single_observation_space, env.single_action_space, hidden=16, layers=1)
    features_fn = model_features(model)
    controller = LinearController(model.feature_dim, env.single_action_space)
    population = np.random.default_rng(0).normal(size=(3, controller.num_params))
    returns = rollout_returns(population, env, features_fn, episodes=2, controller=controller, max_steps=50, seed=0)
    assert returns.shape == (3,) and np.all((returns >= 1) & (returns <= 50))
    plain = rollout_returns(population, env, None, episodes=2, max_steps=50, seed=0)
    np.testing.assert_array_equal(returns, plain)  # the MLP's features are the observation itself
    env.close()


# --- ActionScoreController ---------------------------------------------------------------


def test_action_score_controller_scores_every_action_with_shared_weights():
    from model_zoo.agents.controllers import ActionScoreController

    controller = ActionScoreController(2, spaces.Discrete(3))
    assert controller.num_params == 2
    feats = np.array([[[0, 0], [1, 0], [0, 1]], [[0, 0], [1, 0], [2, 1]]], np.float32)  # (N=2, A=3, F=2)
    population = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    # member 0 runs row 0, member 1 row 1
    assert controller.act_population(population, feats).tolist() == [1, 2]
    assert torch.equal(controller.act_population(population, torch.as_tensor(feats)), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"\(P \* K, 3, 2\)"):
        controller.act_population(population, feats[:, :2])
    with pytest.raises(TypeError, match="Discrete"):
        ActionScoreController(2, spaces.Box(-1, 1, (2,)))


def test_sampled_action_score_controller_follows_its_temperature():
    from model_zoo.agents.controllers import ActionScoreController

    controller = ActionScoreController(1, spaces.Discrete(2), sampled=True, seed=3)
    feats = np.tile(np.array([[[0.0], [1.0]]], np.float32), (4000, 1, 1))  # action 1 scores 1 higher
    controller.set_params(np.array([1.0, 0.0]))
    assert (controller(feats) == 1).all()  # temperature 0: greedy
    controller.set_params(np.array([1.0, 1.0]))
    share = (controller(feats) == 1).mean()
    assert abs(share - 1 / (1 + np.exp(-1.0))) < 0.03  # Gumbel-max: softmax(scores / temperature)
    controller.reseed(7)
    first = controller(feats)
    controller.reseed(7)
    np.testing.assert_array_equal(controller(feats), first)


def test_cmaes_with_action_scores_learns_to_navigate_campusnav():
    """Five shared weights instead of 5 x 72: CMA-ES leaves 'stand still' (return -1) and reaches goals."""
    import campus_env  # noqa: F401
    from campus_env.features import ACTION_FEATURES, action_features
    from model_zoo.agents.controllers import ActionScoreController

    popsize, episodes = 8, 8
    controller = ActionScoreController(len(ACTION_FEATURES), spaces.Discrete(5), sampled=True)
    envs = gym.make_vec("CampusNav-v0", num_envs=popsize * episodes, obs_mode="state", max_episode_steps=60)
    generation = iter(range(1000))

    def evaluate(population):
        return rollout_returns(population, envs, lambda obs, a, first: action_features(obs), episodes,
                               controller=controller, seed=next(generation))

    best, _ = train_cmaes(evaluate, controller.num_params, generations=12, popsize=popsize, sigma0=0.5,
                          progress=False)
    stand_still = np.zeros(controller.num_params, np.float32)
    stand_still[ACTION_FEATURES.index("wait")] = 1.0
    final = gym.make_vec("CampusNav-v0", num_envs=200, obs_mode="state", max_episode_steps=60)
    scores = rollout_returns([best, stand_still], final, lambda obs, a, first: action_features(obs), 100,
                             controller=controller, seed=99)
    assert scores[1] == pytest.approx(-0.6)  # 60 steps of the step penalty
    assert scores[0] > scores[1] + 0.2

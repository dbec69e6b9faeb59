"""causal_vae_mdnrnn: interventions in imagination, along the causal graph, in dreams, through checkpoints."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env import causal
from model_zoo import Batch
from model_zoo.models.causal_vae_mdnrnn import ENV_EFFECTS, INDEX, NAMES, CausalVAEMDNRNN, Config, graph_config
from model_zoo.nets import symlog
from wrappers import DreamEnv, DreamVectorEnv, Intervene

TINY = dict(layout_dim=2, local_dim=2, social_dim=2, temporal_dim=2, hidden=16, mixtures=2, depth=4,
            vector_hidden=16, mech_hidden=32)
SATURDAY_NOON = {"day": 5, "hour": 12.0, "semester": 0, "weather": 0, "gameday": 0, "road_closure": 0, "crowd": 0.3}


def true_codes(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 7) codes drawn from the env's own mechanisms, gameday by a coin (as grid data would have it)."""
    day = rng.integers(0, 7, n)
    semester = rng.integers(0, 2, n)
    weather = causal.mech_weather(semester, rng.random(n))
    gameday = rng.integers(0, 2, n)
    minute = rng.integers(causal.FIRST_MINUTE, causal.LAST_MINUTE + 1, n)
    closure = causal.mech_road_closure(gameday, minute)
    crowd = causal.mech_crowd(day, minute, gameday, weather, rng.random(n))
    return np.stack([day, minute / 60.0, semester, weather, gameday, closure, crowd], axis=1).astype(np.float32)


def fit_mechanisms(model: CausalVAEMDNRNN, steps: int = 300) -> CausalVAEMDNRNN:
    """Trains only the causal mechanisms, on codes from the env's mechanisms."""
    codes = torch.as_tensor(true_codes(2048, np.random.default_rng(0)))
    optimizer = torch.optim.Adam(model.mechanisms.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        model._causal_loss(codes).backward()
        optimizer.step()
    return model.eval()


def descendants(graph: dict[str, tuple[str, ...]], name: str) -> set[str]:
    out, frontier = set(), {name}
    while frontier:
        frontier = {child for child, parents in graph.items() if frontier & set(parents)} - out
        out |= frontier
    return out


def state_at(model: CausalVAEMDNRNN, codes: dict[str, float], batch: int = 4) -> dict[str, torch.Tensor]:
    state = model.initial_state(batch)
    row = torch.tensor([codes[n] for n in NAMES], dtype=torch.float32)
    state["causal"] = state["natural"] = row.expand(batch, -1).clone()
    state["residual"] = model.abduct(state["causal"])
    state["z"] = torch.randn(batch, model.config.z_dim, generator=torch.Generator().manual_seed(1))
    return state


@pytest.fixture(scope="module")
def campus_model():
    torch.manual_seed(0)
    real = gym.make("CampusNav-v0", obs_mode="state")
    model = fit_mechanisms(model_zoo.make("causal_vae_mdnrnn", real.observation_space, real.action_space, **TINY))
    with torch.no_grad():
        model.end_head.bias[0] = -20.0  # dreams never terminate, so the dream tests run their steps
    return model


def imagine(model, state, do=None, seed=0, action=1):
    with torch.no_grad():
        return model.imagine(state, torch.full((state["z"].shape[0],), action), do=do,
                             generator=torch.Generator().manual_seed(seed))


# --- interventions change exactly what they name and its descendants -------------------------


VALUES = {"day": 2, "hour": 15.5, "semester": "spring", "weather": "snowy", "gameday": True,
          "road_closure": True, "crowd": 0.9}


@pytest.mark.parametrize("name", NAMES)
def test_do_changes_the_named_variable_and_only_its_descendants(campus_model, name):
    model = campus_model
    state = state_at(model, SATURDAY_NOON)
    plain, done = imagine(model, state), imagine(model, state, do={name: VALUES[name]})
    code = causal.VARIABLES[name].encode(VALUES[name]) / (60.0 if name == "hour" else 1.0)
    assert torch.allclose(done.state["causal"][:, INDEX[name]], torch.tensor(code))
    below = descendants(dict(causal.CAUSAL_GRAPH), name)
    for other in NAMES:
        if other != name and other not in below:  # upstream and beside: exactly as without the intervention
            assert torch.equal(done.state["causal"][:, INDEX[other]], plain.state["causal"][:, INDEX[other]]), other
    assert torch.equal(done.state["natural"], plain.state["natural"])  # the natural course is untouched


def test_descendants_follow_the_learned_mechanisms(campus_model):
    state = state_at(campus_model, SATURDAY_NOON)
    plain = imagine(campus_model, state).state["causal"][0]
    game = imagine(campus_model, state, do={"gameday": True}).state["causal"][0]
    snow = imagine(campus_model, state, do={"weather": "snowy"}).state["causal"][0]
    assert plain[INDEX["road_closure"]] == 0 and game[INDEX["road_closure"]] == 1  # stadium roads close 11-18
    assert game[INDEX["crowd"]] > plain[INDEX["crowd"]] + 0.2  # the gameday crowd (+0.35 in the truth)
    assert snow[INDEX["crowd"]] < plain[INDEX["crowd"]] - 0.05  # snow keeps people in (x0.55 in the truth)
    assert snow[INDEX["road_closure"]] == plain[INDEX["road_closure"]]  # not a descendant of the weather
    late = state_at(campus_model, {**SATURDAY_NOON, "hour": 20.0})
    assert imagine(campus_model, late, do={"gameday": True}).state["causal"][0, INDEX["road_closure"]] == 0


def test_mid_rollout_do_and_undo(campus_model):
    model, state = campus_model, state_at(campus_model, SATURDAY_NOON)
    schedule = [None, None, {"gameday": True}, {"gameday": True}, None, None]

    def rollout(plan):
        s, out = dict(state), []
        for t, do in enumerate(plan):
            step = imagine(model, s, do=do, seed=t)
            s = step.state
            out.append(step)
        return out

    plain, mixed = rollout([None] * len(schedule)), rollout(schedule)
    for t in range(2):  # before the intervention: the same dream
        assert all(torch.equal(plain[t].state[k], mixed[t].state[k]) for k in plain[t].state)
    for t in (2, 3):
        assert (mixed[t].state["causal"][:, INDEX["gameday"]] == 1).all()
        assert (mixed[t].state["causal"][:, INDEX["road_closure"]] == 1).all()
        assert not torch.equal(mixed[t].state["z"], plain[t].state["z"])
    for t in (4, 5):  # undone: the variables are back on their natural course
        assert torch.equal(mixed[t].state["causal"], plain[t].state["causal"])
    hour = mixed[5].state["causal"][0, INDEX["hour"]]
    assert torch.isclose(hour, torch.tensor(12.0 + 6 / 60))  # the clock ran on throughout


def test_do_holds_a_drawn_descendant_for_as_long_as_it_lasts(campus_model):
    model = campus_model.eval()
    s = state_at(model, SATURDAY_NOON, batch=64)
    weathers = []
    for t in range(4):
        s = imagine(model, s, do={"semester": "spring"}, seed=t).state
        weathers.append(s["causal"][:, INDEX["weather"]])
    assert all(torch.equal(w, weathers[0]) for w in weathers)  # drawn once, not every step
    assert len(set(weathers[0].tolist())) > 1  # drawn from the mechanism, not copied


def test_twins_under_other_interventions_draw_the_same_noise(campus_model):
    state = state_at(campus_model, SATURDAY_NOON, batch=8)
    ends = []
    for do in (None, {"semester": "spring"}, {"gameday": True, "crowd": 0.1}):
        generator = torch.Generator().manual_seed(7)
        with torch.no_grad():
            campus_model.imagine(state, torch.ones(8, dtype=torch.int64), do=do, generator=generator)
        ends.append(generator.get_state())
    assert all(torch.equal(end, ends[0]) for end in ends)


def test_termination_is_drawn_from_its_probability():
    torch.manual_seed(0)
    model = model_zoo.make("causal_vae_mdnrnn", spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(2), **TINY)
    with torch.no_grad():
        last = model.end_head
        last.weight.zero_()
        last.bias[0] = float(np.log(0.2 / 0.8))  # P(end) = 0.2 everywhere
    state = state_at(model, SATURDAY_NOON, batch=4000)
    assert abs(imagine(model, state).terminated.float().mean().item() - 0.2) < 0.03
    cold = model_zoo.make("causal_vae_mdnrnn", model.observation_space, model.action_space, temperature=0.0, **TINY)
    cold.load_state_dict(model.state_dict())
    assert not imagine(cold, state).terminated.any()  # at temperature 0: probability above 1/2


def reward_model(end_logit: float, **config) -> CausalVAEMDNRNN:
    """A tiny model whose reward head reads nothing: its biases alone set the reward mixture (3 components).

    Steps that go on: -0.01 with odds 0.7, -0.06 with 0.3; ending steps: +0.99. P(end) = sigmoid(end_logit).
    """
    torch.manual_seed(0)
    model = model_zoo.make("causal_vae_mdnrnn", spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(2),
                           reward_mixtures=3, **(TINY | config))
    with torch.no_grad():
        model.end_head.weight.zero_()
        model.end_head.bias.fill_(end_logit)
        model.reward_head.weight.zero_()
        levels = symlog(torch.tensor([-0.01, -0.06, 0.99]))
        go_on = [np.log(0.7), np.log(0.3), -30.0, levels[0], levels[1], 0.0, -5.0, -5.0, -5.0]
        ending = [-30.0, -30.0, 0.0, 0.0, 0.0, levels[2], -5.0, -5.0, -5.0]
        model.reward_head.bias.copy_(torch.tensor(go_on + ending))
    return model.eval()


def test_rewards_are_drawn_from_the_mixture_with_its_odds():
    model = reward_model(-20.0)  # never ends
    state = state_at(model, SATURDAY_NOON, batch=4000)
    reward = imagine(model, state).reward
    penalised = reward < -0.035
    assert abs(penalised.float().mean().item() - 0.3) < 0.03  # the blocked penalty with its odds, not on average
    for values, level in ((reward[penalised], -0.06), (reward[~penalised], -0.01)):  # each near its level
        assert abs(values.mean().item() - level) < 0.002 and (values - level).abs().max() < 0.03
    cold = imagine(reward_model(-20.0, temperature=0.0), state).reward
    assert torch.allclose(cold, torch.tensor(0.7 * -0.01 + 0.3 * -0.06), atol=1e-5)  # temperature 0: expected


def test_an_ending_step_draws_the_ending_reward():
    model = reward_model(0.0)  # P(end) = 1/2
    out = imagine(model, state_at(model, SATURDAY_NOON, batch=2000))
    assert 0.4 < out.terminated.float().mean().item() < 0.6
    assert torch.allclose(out.reward[out.terminated], torch.tensor(0.99), atol=0.06)
    assert out.reward[~out.terminated].max() < 0.05  # never the bonus when the episode goes on


def test_the_reward_reads_the_imagined_next_latent():
    torch.manual_seed(0)
    model = model_zoo.make("causal_vae_mdnrnn", spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(2),
                           reward_mixtures=0, **TINY).eval()  # a regressed reward: the head's output itself
    z_dim, width = model.config.z_dim, model.reward_head.in_features
    with torch.no_grad():
        model.end_head.bias.fill_(-20.0)
        model.reward_head.weight.zero_()
        model.reward_head.bias.zero_()
        model.reward_head.weight[0, width - z_dim :] = torch.arange(1.0, z_dim + 1)  # the last inputs are z'
    out = imagine(model, state_at(model, SATURDAY_NOON, batch=16))
    expected = out.state["z"] @ torch.arange(1.0, z_dim + 1)
    assert torch.allclose(out.reward, expected, atol=1e-5)
    assert out.reward.std() > 0.1  # the drawn latents differ, and so do the rewards


# --- a variable with no effect in the truth changes nothing -------------------------------------


@pytest.mark.parametrize("reward_mixtures", [0, 3])
def test_do_on_a_variable_without_effect_changes_nothing_given_the_true_graph(reward_mixtures):
    """A tiny truth: the reward is 0.5 * gameday, the weather does nothing. Given that graph, do(weather) is inert.

    With a regressed reward (``reward_mixtures=0``) or a drawn one."""
    graph = graph_config({**causal.CAUSAL_GRAPH, "crowd": ("day", "hour", "gameday")})
    effects = tuple((g, tuple(n for n in names if n != "weather")) for g, names in ENV_EFFECTS)
    obs_space, action_space = spaces.Box(-1.0, 1.0, (3,), np.float32), spaces.Discrete(2)
    torch.manual_seed(0)
    model = model_zoo.make("causal_vae_mdnrnn", obs_space, action_space, graph=graph, effects=effects,
                           temperature=0.0, reward_mixtures=reward_mixtures, **TINY)
    rng = np.random.default_rng(0)
    B, T = 32, 8
    codes = np.repeat(true_codes(B, rng)[:, None], T, axis=1)  # static over each window
    gameday = codes[..., INDEX["gameday"]]
    first = np.zeros((B, T), dtype=bool)
    first[:, 0] = True
    batch = Batch(obs=torch.as_tensor(rng.uniform(-1, 1, (B, T, 3)).astype(np.float32)),
                  action=torch.as_tensor(rng.integers(0, 2, (B, T))), reward=torch.as_tensor(0.5 * gameday),
                  terminated=torch.zeros(B, T, dtype=torch.bool), is_first=torch.as_tensor(first),
                  causal=torch.as_tensor(codes))
    model_zoo.fit(model, batch, steps=400, lr=3e-3, progress=False)
    model.eval()
    state = state_at(model, SATURDAY_NOON)
    base = imagine(model, state)
    for weather in causal.WEATHERS:
        out = imagine(model, state, do={"weather": weather})
        for key in ("z", "h", "c"):
            assert torch.equal(out.state[key], base.state[key]), (weather, key)
        assert torch.equal(out.reward, base.reward) and torch.equal(out.terminated, base.terminated)
        assert torch.equal(model.decode(out.state), model.decode(base.state))
    # the control: the variable that does matter moves the reward as the truth does
    lift = imagine(model, state, do={"gameday": True}).reward - imagine(model, state, do={"gameday": False}).reward
    if not reward_mixtures:
        assert (lift > 0.25).all() and (lift < 0.75).all(), lift  # 0.5 in the truth, after a few steps of training
    else:  # a drawn reward (its expectation at temperature 0) learns the lift less evenly across these noise states
        assert 0.25 < lift.mean() < 0.75 and (lift > 0.1).all(), lift
    # and under the env's graph, where the weather feeds the crowd and the local group, do(weather) is not inert
    torch.manual_seed(0)
    env_model = model_zoo.make("causal_vae_mdnrnn", obs_space, action_space, **TINY).eval()
    s = state_at(env_model, SATURDAY_NOON)
    assert not torch.equal(imagine(env_model, s, do={"weather": "snowy"}).state["z"], imagine(env_model, s).state["z"])


# --- where the causal values come from ------------------------------------------------------------


@pytest.mark.parametrize("obs_mode", ["state", "dict"])
def test_observe_reads_the_causal_variables_from_campus_observations(obs_mode):
    real = gym.make("CampusNav-v0", obs_mode=obs_mode)
    model = model_zoo.make("causal_vae_mdnrnn", real.observation_space, real.action_space, **TINY)
    obs, info = real.reset(seed=3, options={"do": {"weather": "rainy", "gameday": True}})
    for _ in range(3):
        obs, *_, info = real.step(1)
    batched = {k: v[None] for k, v in obs.items()} if isinstance(obs, dict) else obs[None]
    with torch.no_grad():
        state = model.observe(model.initial_state(1), torch.zeros(1, dtype=torch.int64),
                              model.spec.to_torch(batched), torch.ones(1, dtype=torch.bool))
    seen = model.causal_values(state)[0]
    for name, value in info["causal"].items():
        assert seen[name] == pytest.approx(value, abs=1e-5), name
    decoded = model.decode(state)
    again = decoded["causal"][0] if obs_mode == "dict" else decoded[0, 6:22]
    expected = obs["causal"] if obs_mode == "dict" else obs[6:22]
    np.testing.assert_allclose(again.numpy(), expected, atol=1e-5)  # the decoded causal part is the state's


def test_without_causal_observations_the_heads_infer_them():
    real = gym.make("CampusNav-v0", obs_mode="state", observe_causal=False)
    model = model_zoo.make("causal_vae_mdnrnn", real.observation_space, real.action_space, **TINY)
    assert model.slot is None
    obs, _ = real.reset(seed=0)
    with torch.no_grad():
        state = model.observe(model.initial_state(1), torch.zeros(1, dtype=torch.int64),
                              torch.as_tensor(obs[None]), torch.ones(1, dtype=torch.bool))
        assert torch.equal(state["causal"], model.infer_codes(state["h"], state["z"]))


def test_bad_interventions_are_clear_errors(campus_model):
    state = state_at(campus_model, SATURDAY_NOON, batch=1)
    with pytest.raises(ValueError, match="unknown causal variable 'temperature'; valid names: day, hour"):
        imagine(campus_model, state, do={"temperature": 3})
    with pytest.raises(ValueError, match="weather must be one of 'sunny'"):
        imagine(campus_model, state, do={"weather": "foggy"})
    with pytest.raises(ValueError, match=r"hour must be a number in \[7, 23\]"):
        imagine(campus_model, state, do={"hour": 3})
    with pytest.raises(ValueError, match="Config.graph has a cycle"):
        Config(graph=graph_config({**causal.CAUSAL_GRAPH, "day": ("crowd",)}))
    with pytest.raises(ValueError, match="unknown latent group 'weather'"):
        Config(effects=(("weather", ("day",)),))


# --- checkpoints and dreams ------------------------------------------------------------------------


def test_save_load_keeps_the_graph_and_the_interventions(tmp_path, campus_model):
    real = gym.make("CampusNav-v0", obs_mode="state")
    graph = graph_config({**causal.CAUSAL_GRAPH, "crowd": ("hour", "gameday")})
    model = model_zoo.make("causal_vae_mdnrnn", real.observation_space, real.action_space, graph=graph, **TINY)
    shared = {k: v for k, v in campus_model.state_dict().items() if not k.startswith("mechanisms.crowd.")}
    model.load_state_dict(shared, strict=False)  # trained mechanisms, but crowd's (other parents)
    loaded = model_zoo.load(model.save(tmp_path / "ckpt"))
    assert loaded.config == model.config and loaded.parents["crowd"] == ("hour", "gameday")
    state = state_at(model, SATURDAY_NOON)
    a, b = imagine(model.eval(), state, do={"gameday": True}), imagine(loaded.eval(), state, do={"gameday": True})
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state) and torch.equal(a.reward, b.reward)


def test_dream_env_with_do_and_scheduled_interventions(campus_model):
    real = gym.make("CampusNav-v0", obs_mode="state")
    env = DreamEnv(campus_model, real, do={"gameday": True, "weather": "snowy"}, max_episode_steps=10)
    obs, _ = env.reset(seed=0)
    assert real.unwrapped.interventions == {"gameday": True, "weather": "snowy"}  # the real start, too
    for _ in range(3):
        obs, *_ = env.step(1)
        assert obs[6 + 12] == 1.0 and obs[6 + 8 + 3] == 1.0  # gameday, snowy in the decoded observation
    env = Intervene(DreamEnv(campus_model, gym.make("CampusNav-v0", obs_mode="state"), max_episode_steps=10),
                    [(2, {"weather": "rainy"}), (4, "undo", "weather")])
    obs, _ = env.reset(seed=1, options={"do": {"weather": "sunny"}})
    weather = [int(np.argmax(env.step(0)[0][6 + 8 : 6 + 12])) for _ in range(5)]
    assert weather == [0, 2, 2, 0, 0]
    envs = DreamVectorEnv(campus_model, 2, "CampusNav-v0", env_kwargs={"obs_mode": "state"}, do={"crowd": 0.95})
    envs.reset(seed=0)
    obs, *_ = envs.step(np.array([1, 2]))
    np.testing.assert_allclose(obs[:, 6 + 15], 0.95, atol=1e-6)
    with pytest.raises(ValueError, match="must be one of 'sunny'"):
        DreamEnv(campus_model, gym.make("CampusNav-v0", obs_mode="state"), do={"weather": "foggy"})

"""causal_vae_mdnrnn with ``delta_vector``: the vector part rides in the state; the causal part still shows do()."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env.schema import CAUSAL_DIM
from model_zoo import Batch
from model_zoo.models.causal_vae_mdnrnn import CausalVAEMDNRNN

TINY = dict(layout_dim=2, local_dim=2, social_dim=2, temporal_dim=2, hidden=16, mixtures=2, depth=4,
            vector_hidden=16, mech_hidden=16)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def campus():
    """A CampusNav-v0 state env (causal codes in the observation) and one short episode of it as a Batch."""
    env = gym.make("CampusNav-v0", obs_mode="state", max_episode_steps=12)
    obs, info = env.reset(seed=3)
    frames, actions, rewards, ends, codes = [obs], [0], [0.0], [False], [info["causal"]]
    rng = np.random.default_rng(0)
    for _ in range(11):
        obs, reward, terminated, _, info = env.step(int(rng.integers(0, 5)))
        frames.append(obs), actions.append(int(rng.integers(0, 5))), rewards.append(reward)
        ends.append(terminated), codes.append(info["causal"])
    first = torch.zeros(1, len(frames), dtype=torch.bool)
    first[0, 0] = True
    batch = Batch(obs=torch.as_tensor(np.stack(frames))[None], action=torch.as_tensor(actions)[None],
                  reward=torch.as_tensor(rewards, dtype=torch.float32)[None],
                  terminated=torch.as_tensor(ends)[None], is_first=first)
    return env, batch


def make(env, **overrides) -> CausalVAEMDNRNN:
    torch.manual_seed(0)
    return model_zoo.make("causal_vae_mdnrnn", env.observation_space, env.action_space, **{**TINY, **overrides})


def observe_first(model: CausalVAEMDNRNN, obs: torch.Tensor):
    return model.observe(model.initial_state(1), torch.zeros(1, dtype=torch.int64), obs[None],
                         torch.ones(1, dtype=torch.bool))


def test_a_filtered_state_decodes_to_its_observation_and_saves(campus, tmp_path):
    env, batch = campus
    model = make(env, delta_vector=True)
    loss, metrics = model.loss(batch)
    assert torch.isfinite(loss) and metrics["delta_mse"] > 0
    model.eval()
    obs = batch.obs[0, 0]
    with torch.no_grad():
        state = observe_first(model, obs)
        assert torch.allclose(model.decode(state)[0], obs, atol=1e-5)  # position, goal and codes as observed
        loaded = model_zoo.load(model.save(tmp_path / "m"))
        imagined = [m.imagine(observe_first(m, obs), torch.tensor([2]), generator=torch.Generator().manual_seed(1))
                    for m in (model, loaded)]
    assert torch.equal(imagined[0].state["vector"], imagined[1].state["vector"])
    assert model.feature_dim == loaded.feature_dim == model.features(state).shape[-1]


def test_do_still_shows_in_the_decoded_causal_part_and_the_head_moves_the_rest(campus):
    env, batch = campus
    model = make(env, delta_vector=True)
    model.loss(batch)  # running statistics of the vectors and their changes
    model.eval()
    with torch.no_grad():
        model.delta.net[-1].bias.fill_(1.0)  # a change of one standard deviation of every element
        state = observe_first(model, batch.obs[0, 0])
        out = model.imagine(state, torch.tensor([1]), do={"weather": "snowy"},
                            generator=torch.Generator().manual_seed(0))
        decoded = model.decode(out.state)[0]
    moved = state["vector"] + model.delta.changes.std + model.delta.changes.mean
    assert torch.allclose(out.state["vector"], moved, atol=1e-5)
    causal_part = slice(model.slot, model.slot + CAUSAL_DIM)
    assert model.causal_values(out.state)[0]["weather"] == "snowy"
    expected = model.decode({**out.state, "vector": torch.zeros_like(out.state["vector"])})[0, causal_part]
    assert torch.equal(decoded[causal_part], expected)  # the causal part shows the codes in force, not the head's
    rest = torch.ones_like(decoded, dtype=torch.bool)
    rest[causal_part] = False
    box = env.observation_space
    low, high = torch.as_tensor(box.low), torch.as_tensor(box.high)
    assert torch.allclose(decoded[rest], moved[0].clamp(low, high)[rest], atol=1e-5)


def test_without_delta_vector_the_state_has_no_vector(campus):
    env, _ = campus
    model = make(env)
    assert model.delta is None and "vector" not in model.initial_state(1)


def test_decode_skips_vs_vector_decoder_with_delta_vector(campus):
    env, batch = campus
    model = make(env, delta_vector=True).eval()
    calls = []
    model.decoder.vector_net.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        decoded = model.decode(observe_first(model, batch.obs[0, 0]))
    assert decoded.shape == (1, batch.obs.shape[-1]) and not calls

"""Gymnasium's and stable-baselines3's environment checkers, warnings as errors.

Gymnasium's checker is given ``env.unwrapped`` (it warns about any wrapper, and
the warning would be an error here); it also re-creates the env from its spec
in every declared render mode, ``human`` included. SB3's checker is given the
env as ``gym.make`` returns it (what a user hands to SB3) and also runs its
NaN/Inf check through a ``DummyVecEnv``; the 64x64x3 uint8 image passes SB3's
image checks (uint8, bounds 0..255, at least 36x36), so Dict, pixel and state
observations are all checked in full, render included.
"""

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from tests.campus_env.helpers import OBS_MODES, make

RENDER_MODES = (None, "rgb_array", "human")
CONFIGS = [(o, r, True) for o in OBS_MODES for r in RENDER_MODES] + [(o, None, False) for o in OBS_MODES] + [
    ("dict", "human", False)
]


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(("obs_mode", "render_mode", "observe_causal"), CONFIGS)
def test_gymnasium_check_env(obs_mode, render_mode, observe_causal):
    env = make(obs_mode=obs_mode, render_mode=render_mode, observe_causal=observe_causal)
    try:
        assert env.unwrapped.spec is not None  # lets the checker re-create it in every render mode
        gym_check_env(env.unwrapped)
    finally:
        env.close()


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(("obs_mode", "render_mode", "observe_causal"), CONFIGS)
def test_sb3_check_env(obs_mode, render_mode, observe_causal):
    env = make(obs_mode=obs_mode, render_mode=render_mode, observe_causal=observe_causal)
    try:
        sb3_check_env(env, warn=True, skip_render_check=False)
        sb3_check_env(env.unwrapped, warn=True, skip_render_check=False)
    finally:
        env.close()


@pytest.mark.filterwarnings("error")
def test_make_without_import_uses_the_module_prefix():
    env = gym.make("campus_env:CampusNav-v0", obs_mode="state")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.spec.max_episode_steps == 200


@pytest.mark.parametrize("observe_causal", [True, False])
def test_observe_causal_hides_the_causal_variables_but_keeps_them_in_info(observe_causal):
    env = make(obs_mode="dict", observe_causal=observe_causal)
    obs, info = env.reset(seed=3)
    assert ("causal" in obs) == observe_causal
    assert set(info["causal"]) == set(env.unwrapped.causal_graph)
    state = make(obs_mode="state", observe_causal=observe_causal)
    hidden = make(obs_mode="state", observe_causal=not observe_causal)
    # the flat state obs is longer exactly by the causal encoding when it is observed
    full, small = (state, hidden) if observe_causal else (hidden, state)
    causal_len = make(obs_mode="dict").observation_space["causal"].shape[0]
    assert full.observation_space.shape[0] - small.observation_space.shape[0] == causal_len

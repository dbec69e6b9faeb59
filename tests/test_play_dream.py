"""``campusnav play --dream``: the keys, the two-world session, the window driven by posted events, the CLI."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env.play import KEY_ACTIONS, QUIT, QUIT_KEYS, RESTART, RESTART_KEYS
from campusnav import cli
from campusnav.play_dream import (
    CYCLE_WEATHER,
    DREAM_KEYS,
    NO_DO_NOTE,
    TOGGLE_GAMEDAY,
    WEATHER_CYCLE,
    DreamPlaySession,
    WorldStatus,
    check_model,
    dream_command_for_key,
    play_dream,
)

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
pygame = pytest.importorskip("pygame")

PLAIN_MODEL = "rssm/campusnav-state-v0"  # takes no do()
CAUSAL_MODEL = "causal_vae_mdnrnn/campusnav-state-v0"  # supports_do


@pytest.fixture(scope="module")
def plain_model():
    return model_zoo.load_pretrained(PLAIN_MODEL)


@pytest.fixture(scope="module")
def causal_model():
    return model_zoo.load_pretrained(CAUSAL_MODEL)


# --- keys ----------------------------------------------------------------------------------------


def test_intervention_keys_clash_with_no_play_key():
    assert not set(DREAM_KEYS) & (set(KEY_ACTIONS) | RESTART_KEYS | QUIT_KEYS)
    assert dream_command_for_key("g") == TOGGLE_GAMEDAY and dream_command_for_key("G") == TOGGLE_GAMEDAY
    assert dream_command_for_key("c") == CYCLE_WEATHER
    for name, action in KEY_ACTIONS.items():  # every key of campus_env.play keeps its meaning
        assert dream_command_for_key(name) == action
    assert dream_command_for_key("r") == RESTART and dream_command_for_key("escape") == QUIT
    assert dream_command_for_key("x") is None
    assert dream_command_for_key(pygame.key.name(pygame.K_g)) == TOGGLE_GAMEDAY
    assert dream_command_for_key(pygame.key.name(pygame.K_c)) == CYCLE_WEATHER


# --- the session -----------------------------------------------------------------------------------


def test_both_worlds_start_from_the_same_state_and_take_the_same_actions(plain_model):
    session = DreamPlaySession(plain_model, seed=4)
    try:
        start, _ = session.start_env.reset()  # the dream's start source repeats reality's reset
        np.testing.assert_array_equal(start, session.reality_obs)
        for action in (3, 3, 1, 0):
            assert session.handle(action)
        assert session.actions == [3, 3, 1, 0] and session.steps == 4
        assert session.reality_status.steps == session.dream_status.steps == 4
        assert session.reality_status.action == session.dream_status.action == 0
        reality, dream = session.frames()
        assert reality.shape == dream.shape == session.reality.render().shape
        assert reality.dtype == dream.dtype == np.uint8 and reality.shape[-1] == 3
        under_reality, under_dream = session.captions()
        assert under_reality[0].startswith("step 4   action 0 stay   reward")
        assert under_dream[0].startswith("step 4   action 0 stay")
    finally:
        session.close()


def test_interventions_change_reality_alone_for_a_model_without_do(plain_model):
    session = DreamPlaySession(plain_model, seed=0)
    try:
        session.handle(TOGGLE_GAMEDAY)
        session.handle(CYCLE_WEATHER)
        assert session.reality.unwrapped.interventions == {"gameday": True, "weather": WEATHER_CYCLE[0]}
        session.handle(2)
        assert session.reality_info["causal"]["gameday"] is True
        assert session.reality_info["causal"]["weather"] == WEATHER_CYCLE[0]
        assert session.dream.interventions == {}
        assert NO_DO_NOTE in session.captions()[1][1]
        session.handle(TOGGLE_GAMEDAY)  # undo
        assert session.reality.unwrapped.interventions == {"weather": WEATHER_CYCLE[0]}
        assert session.intervention_log == ["do(gameday=True)", "do(weather=sunny)", "undo(gameday)"]
    finally:
        session.close()


def test_interventions_reach_the_dream_of_a_model_with_do(causal_model):
    assert causal_model.supports_do
    session = DreamPlaySession(causal_model, seed=1)
    try:
        session.handle(TOGGLE_GAMEDAY)
        assert session.dream.interventions == session.reality.unwrapped.interventions == {"gameday": True}
        seen = []
        for _ in WEATHER_CYCLE:  # sunny, cloudy, rainy, snowy, then back to its mechanism
            session.handle(CYCLE_WEATHER)
            seen.append(session.dream.interventions.get("weather"))
            assert session.dream.interventions == session.reality.unwrapped.interventions
        assert seen == list(WEATHER_CYCLE)
        session.handle(3)
        assert session.dream_status.steps == 1 and "gameday=True" in session.captions()[1][1]
    finally:
        session.close()


def test_restart_resets_both_worlds_with_one_seed_and_the_command_line_do(causal_model):
    session = DreamPlaySession(causal_model, seed=2, do={"weather": "snowy"})
    try:
        assert session.dream.interventions == {"weather": "snowy"}
        first_seed = session.episode_seed
        session.handle(TOGGLE_GAMEDAY)
        for action in (1, 1, 4):
            session.handle(action)
        session.handle(RESTART)
        assert session.episodes == 2 and session.episode_seed != first_seed
        assert session.start_env.pinned_seed == session.episode_seed
        assert session.reality_status.steps == session.dream_status.steps == 0
        assert session.reality.unwrapped.interventions == {"weather": "snowy"}  # the key's gameday is gone
        assert session.dream.interventions == {"weather": "snowy"}
        start, _ = session.start_env.reset()
        np.testing.assert_array_equal(start, session.reality_obs)
        assert session.handle(QUIT) is False
    finally:
        session.close()


def test_an_ended_world_waits_for_r_while_the_other_goes_on():
    status = WorldStatus("dream")
    status.record(1, 0.5, terminated=True, truncated=False)
    assert status.done and status.message == "Goal reached in the dream in 1 steps"
    truncated = WorldStatus("reality")
    truncated.record(0, -0.01, terminated=False, truncated=True)
    assert truncated.message == "Out of time after 1 steps"


def test_stepping_goes_on_in_the_world_that_has_not_ended(plain_model):
    session = DreamPlaySession(plain_model, seed=3)
    try:
        session.dream_status.done = True
        assert session.act(0) and session.reality_status.steps == 1 and session.dream_status.steps == 0
        session.reality_status.done = True
        assert session.done and session.act(0) is False and session.steps == 1
    finally:
        session.close()


@pytest.mark.parametrize("shipped", [None, "vae_mdnrnn/campusnav-pixels-v0", "rssm/campusnav-pixels-v0"],
                         ids=["tiny-mlp", "vae_mdnrnn", "rssm"])
def test_a_pixel_model_shows_its_decoded_frame_enlarged(shipped):
    real = gym.make("CampusNav-v0", obs_mode="pixels")
    model = (model_zoo.load_pretrained(shipped) if shipped
             else model_zoo.make("mlp", real.observation_space, real.action_space, hidden=8))
    session = DreamPlaySession(model, seed=0)
    try:
        session.handle(1)
        reality, dream = session.frames()
        scale = reality.shape[0] // real.observation_space.shape[0]
        assert dream.shape == (64 * scale, 64 * scale, 3) and dream.dtype == np.uint8
    finally:
        session.close()


def test_a_model_of_another_env_is_refused():
    cartpole = gym.make("CartPole-v1")
    model = model_zoo.make("mlp", cartpole.observation_space, cartpole.action_space, hidden=8)
    with pytest.raises(ValueError, match="not built for CampusNav-v0"):
        check_model(model)


# --- the window ----------------------------------------------------------------------------------


def test_keys_drive_both_worlds_r_restarts_and_q_quits(post_keys, plain_model):
    post_keys(pygame.K_g, pygame.K_c, pygame.K_RIGHT, pygame.K_d, pygame.K_x, pygame.K_r, pygame.K_UP,
              pygame.K_q, pygame.K_DOWN)
    result = play_dream(plain_model, seed=0, fps=0, max_frames=50)
    assert result.quit_reason == "key"
    assert result.actions == [3, 3, 1]  # x is ignored; nothing after q
    assert result.episodes == 2 and result.interventions == ["do(gameday=True)", "do(weather=sunny)"]


def test_the_window_draws_frames_until_max_frames(display, causal_model):
    result = play_dream(causal_model, seed=1, do={"gameday": True}, fps=0, max_frames=2)
    assert result.quit_reason == "max_frames" and result.frames == 2 and result.steps == 0


def test_the_window_stops_after_max_steps(post_keys, causal_model):
    post_keys(*[pygame.K_SPACE] * 4)
    result = play_dream(causal_model, seed=1, fps=0, max_steps=2)
    assert result.quit_reason == "max_steps" and result.steps == 2


def test_closing_the_window_quits(display, plain_model):
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    assert play_dream(plain_model, seed=1, fps=0, max_frames=20).quit_reason == "window"


# --- the command line ------------------------------------------------------------------------------


def exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(argv)
    return exc.value.code


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dream", "rssm/no-such-data"], "neither a model folder"),
        (["--dream", "/no/such/folder"], "neither a model folder"),
        (["--dream", PLAIN_MODEL, "--layout", "x.txt"], "not allowed with --dream"),
        (["--dream", PLAIN_MODEL, "--do", "weather=foggy"], "'sunny'"),
    ],
)
def test_bad_dream_arguments_exit_2_with_a_clear_message(argv, message, capsys):
    assert exit_code(["play", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.startswith("usage: campusnav play")


def test_play_dream_dispatches_with_the_loaded_model(monkeypatch, capsys):
    import campusnav.play_dream
    from campusnav.play_dream import DreamPlayResult

    calls = []

    def fake_play_dream(model, **kwargs):
        calls.append((model.model_id, kwargs))
        return DreamPlayResult("key", 3, 5, 1)

    monkeypatch.setattr(campusnav.play_dream, "play_dream", fake_play_dream)
    assert cli.main(["play", "--dream", "mlp/campusnav-state-v0", "--seed", "5", "--do", "gameday=true"]) == 0
    assert calls == [("mlp", {"seed": 5, "do": {"gameday": True}, "split": "all", "semester": None, "fps": 30})]
    assert "5 steps in reality and in mlp's dream" in capsys.readouterr().out


def test_a_checkpoint_of_another_env_exits_2(tmp_path, capsys):
    cartpole = gym.make("CartPole-v1")
    model_zoo.make("mlp", cartpole.observation_space, cartpole.action_space, hidden=8).save(tmp_path / "cartpole")
    assert cli.main(["play", "--dream", str(tmp_path / "cartpole")]) == 2
    assert "not built for CampusNav-v0" in capsys.readouterr().err

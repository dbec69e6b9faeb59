"""One diffusion model across two games (``model_zoo.data.Games``, ``Config.games``) and its 128-pixel frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

import model_zoo
from model_zoo.data import Episode, Games
from model_zoo.models.diffusion import Diffusion

TINY = dict(depth=4, hidden=16, layers=1)
CAMPUS_LIKE = (spaces.Box(0, 255, (64, 64, 3), np.uint8), spaces.Discrete(3))
CAR_LIKE = (spaces.Box(0, 255, (96, 96, 3), np.uint8), spaces.Box(-1.0, 1.0, (3,), np.float32))


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def synthetic_episodes(game: int, count: int = 3, steps: int = 8, seed: int = 0) -> list[Episode]:
    """Episodes of a game-like env: game 0 dark 64-px frames and Discrete actions, game 1 bright 96-px, Box."""
    rng = np.random.default_rng(seed + 100 * game)
    space, actions = (CAMPUS_LIKE, CAR_LIKE)[game]
    low, high = ((0, 60), (180, 255))[game]
    out = []
    for _ in range(count):
        obs = rng.integers(low, high, (steps + 1, *space.shape), dtype=np.uint8)
        action = (rng.integers(0, 3, steps) if game == 0
                  else rng.uniform(-1, 1, (steps, 3)).astype(np.float32))
        out.append(Episode(obs=obs, action=action, reward=rng.normal(size=steps).astype(np.float32),
                           terminated=np.zeros(steps, bool), truncated=np.zeros(steps, bool)))
    return out


def two_games() -> tuple[Games, list[Episode]]:
    games = Games([CAMPUS_LIKE, CAR_LIKE])
    return games, games.episodes([synthetic_episodes(0), synthetic_episodes(1)])


def make(games: Games, **config) -> Diffusion:
    torch.manual_seed(0)
    return model_zoo.make("diffusion", games.observation_space, games.action_space, games=len(games),
                          **{**TINY, **config})


def imagined(model: Diffusion, games: Games, game: int) -> torch.Tensor:
    """The frame imagined for ``game`` after the same grey history and action, from the same noise."""
    grey = np.full((2, 64, 64, 3), 128, np.uint8)
    obs = {"image": grey, "game": np.full(2, game)}
    state = model.observe(model.initial_state(2), torch.zeros(2, 6), obs, torch.ones(2, dtype=torch.bool))
    action = torch.as_tensor(games.action(0, [1, 2]))
    with torch.no_grad():
        return model.imagine(state, action, generator=torch.Generator().manual_seed(0)).state["frames"][:, -1]


def test_games_brings_episodes_to_one_space():
    games, episodes = two_games()
    assert games.observation_space["image"].shape == (64, 64, 3) and games.observation_space["game"].n == 2
    assert games.action_space.shape == (6,)  # a one-hot of 3 beside a Box of 3
    assert [e.metadata["game"] for e in episodes] == [0, 0, 0, 1, 1, 1]
    for e in episodes:
        assert e.obs["image"].shape == (9, 64, 64, 3) and e.obs["image"].dtype == np.uint8
        assert games.observation_space.contains({"image": e.obs["image"][0], "game": e.obs["game"][0]})
    car = synthetic_episodes(1)[0]
    assert np.allclose(games.env_action(1, episodes[3].action), car.action)
    assert (games.env_action(0, episodes[0].action) == synthetic_episodes(0)[0].action).all()
    assert (episodes[0].action[:, 3:] == 0).all() and (episodes[3].action[:, :3] == 0).all()


def test_games_resizes_a_double_size_frame_to_its_2x2_means():
    games = Games([(spaces.Box(0, 255, (128, 128, 3), np.uint8), spaces.Discrete(2))])
    frame = np.random.default_rng(0).integers(0, 64, (64, 64, 3)).astype(np.uint8) * 4
    assert (games.image(0, frame.repeat(2, 0).repeat(2, 1)) == frame).all()


def test_games_refuses_bad_inputs():
    with pytest.raises(ValueError, match="exactly one uint8 image"):
        Games([(spaces.Box(-1, 1, (4,), np.float32), spaces.Discrete(2))])
    with pytest.raises(ValueError, match="channel counts"):
        Games([CAMPUS_LIKE, (spaces.Box(0, 255, (64, 64, 1), np.uint8), spaces.Discrete(2))])
    games = Games([CAMPUS_LIKE, CAR_LIKE])
    with pytest.raises(ValueError, match="game must be an index"):
        games.obs(2, np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="episodes of 2 games"):
        games.episodes([synthetic_episodes(0)])


def test_two_game_model_learns_and_tells_the_games_apart():
    games, episodes = two_games()
    model = make(games)
    before = model.game.weight.detach().clone()
    rows = model_zoo.fit(model, episodes, steps=10, batch_size=4, seq_len=6, lr=3e-3, progress=False, log_every=1)
    assert all(np.isfinite(row["loss"]) for row in rows)
    assert not torch.equal(before, model.game.weight), "the game embedding did not learn"
    model.eval()
    game0, game1 = imagined(model, games, 0), imagined(model, games, 1)
    assert game0.shape == (2, 3, 64, 64)
    assert (game0 - game1).abs().max() > 1e-2, "the same history imagined the same frame for both games"
    state = model.observe(model.initial_state(1), torch.zeros(1, 6), {"image": np.zeros((1, 64, 64, 3), np.uint8),
                                                                      "game": np.ones(1, np.int64)}, torch.ones(1))
    for _ in range(2):  # the game stays in the state through a dream
        state = model.imagine(state, torch.zeros(1, 6)).state
    assert model.decode(state)["game"].tolist() == [1]


def test_two_game_checkpoint_round_trips(tmp_path):
    games, _ = two_games()
    model = make(games).eval()
    loaded = model_zoo.load(model.save(tmp_path / "model")).eval()
    assert loaded.config.games == 2 and loaded.game is not None
    assert torch.equal(imagined(model, games, 1), imagined(loaded, games, 1))


def test_one_game_builds_no_game_embedding():
    games = Games([CAMPUS_LIKE])
    model = make(games)  # games=1: the "game" part is an ordinary vector part
    assert model.game is None and not any("game" in name for name, _ in model.named_parameters())


def test_several_games_need_a_matching_game_part():
    image = spaces.Box(0, 255, (64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="Discrete\\(2\\) part 'game'"):
        model_zoo.make("diffusion", image, spaces.Discrete(3), games=2, **TINY)
    three = spaces.Dict({"image": image, "game": spaces.Discrete(3)})
    with pytest.raises(ValueError, match="Discrete\\(2\\) part 'game'"):
        model_zoo.make("diffusion", three, spaces.Discrete(3), games=2, **TINY)
    with pytest.raises(ValueError, match="Config.games"):
        model_zoo.make("diffusion", image, spaces.Discrete(3), games=0, **TINY)


def test_128_pixel_frames():
    space = spaces.Box(0, 255, (128, 128, 3), np.uint8)
    torch.manual_seed(0)
    model = model_zoo.make("diffusion", space, spaces.Discrete(3), image_size=128, patch=4, **TINY)
    obs = torch.as_tensor(np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8))
    state = model.observe(model.initial_state(2), torch.zeros(2, dtype=torch.long), obs, torch.ones(2))
    assert state["frames"].shape == (2, 4, 3, 128, 128)
    assert torch.equal(model.decode(state), obs)  # at the model's own size nothing is resized
    out = model.imagine(state, torch.tensor([0, 1]), generator=torch.Generator().manual_seed(0))
    assert model.decode(out.state).shape == (2, 128, 128, 3)
    with pytest.raises(ValueError, match="100-pixel frames"):
        model_zoo.make("diffusion", space, spaces.Discrete(3), image_size=100, **TINY)

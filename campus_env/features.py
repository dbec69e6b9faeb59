"""Per-action features of a "state" observation, for controllers that score each action.

A linear controller on the raw state vector has one weight row per action, and
the few weight settings that navigate (head for the goal *and* keep off closed
cells) are a vanishing corner of that space: CMA-ES from zero settles on standing
still. Scoring every action with the *same* weights over features that describe
that action's move turns the search into a handful of numbers:

=====================  ==================================================================
``progress``           +1 if the move brings the agent a cell closer to the goal along a
                       row or column, -1 if it moves away, 0 otherwise (and for waiting)
``walkable``           the walkability of the cell the move leads to (1 for waiting,
                       which is never blocked)
``crowd``              the crowd density on that cell, a blocking risk (0 for waiting)
``wait``               1 for the wait action, 0 for the moves
``progress_walkable``  ``progress * walkable``: progress that the map allows
=====================  ==================================================================

>>> import gymnasium as gym
>>> import campus_env
>>> env = gym.make("CampusNav-v0", obs_mode="state")
>>> obs, _ = env.reset(seed=0)
>>> action_features(obs[None]).shape  # (N, actions, features)
(1, 5, 5)

``goal_biased_policy`` is an exploration policy for collecting data in which the
goal is actually reached: a uniform random walk rarely gets there, too rarely for
a world model to learn the goal reward from.
"""

from __future__ import annotations

import numpy as np

from campus_env.schema import MOVES, PATCH, STATE_SLICES, Action, state_slices

__all__ = ["ACTION_FEATURES", "ACTION_MOVES", "action_features", "goal_biased_policy"]

ACTION_FEATURES = ("progress", "walkable", "crowd", "wait", "progress_walkable")

ACTION_MOVES = np.array([MOVES[action] for action in Action], dtype=np.float32)
"""(actions, 2): each action's (row, column) step, ``schema.MOVES`` as an array."""
_CENTRE = PATCH // 2
# the patch index of the cell each action leads to (the patch is row-major around the agent)
_TARGET = np.array([(_CENTRE + dr) * PATCH + _CENTRE + dc for dr, dc in ACTION_MOVES.astype(int)])
_WAIT = (np.abs(ACTION_MOVES).sum(axis=1) == 0).astype(np.float32)
# observation size -> where its walkability patch starts, with and without the causal vector
_SIZES = {parts["crowd"].stop: parts["walkable"].start for parts in map(state_slices, (False, True))}


def action_features(obs: np.ndarray, map_size: tuple[int, int] = (32, 32)) -> np.ndarray:
    """(N, actions, 5) float32 features of each action (``ACTION_FEATURES``) for "state" observations (N, D).

    ``obs`` may come from the env (with or without ``observe_causal``) or from a
    world model's dream; imagined values are read as they are (a goal offset of
    under half a cell counts as reached along that axis). ``map_size`` is the
    layout's (height, width), which scales the goal offset.
    """
    obs = np.asarray(obs, dtype=np.float32)
    if obs.ndim != 2 or obs.shape[1] not in _SIZES:
        raise ValueError(
            f"action_features takes CampusNav-v0 'state' observations (N, {sorted(_SIZES)}), got shape {obs.shape}; "
            "'dict' and 'pixels' observations carry no walkability patch"
        )
    patch = _SIZES[obs.shape[1]]
    offset = obs[:, STATE_SLICES["goal_offset"]] * (np.asarray(map_size, dtype=np.float32) - 1)  # in cells
    direction = np.where(np.abs(offset) > 0.5, np.sign(offset), 0.0)
    progress = direction @ ACTION_MOVES.T  # (N, 5)
    # waiting is never blocked: it reads as a walkable, empty cell (the agent's own cell may show closed)
    walkable = np.where(_WAIT > 0, 1.0, obs[:, patch + _TARGET]).astype(np.float32)
    crowd = np.where(_WAIT > 0, 0.0, obs[:, patch + PATCH**2 + _TARGET]).astype(np.float32)
    wait = np.broadcast_to(_WAIT, progress.shape)
    return np.stack([progress, walkable, crowd, wait, progress * walkable], axis=-1)


def goal_biased_policy(bias: float = 0.5, seed: int | None = None, map_size: tuple[int, int] = (32, 32)):
    """``policy(obs (N, D)) -> actions (N,)``: with probability ``bias`` a move towards the goal onto a
    walkable cell (a random one of them; a random action if there is none), otherwise a uniform random action.

    It reads only the "state" observation, so it suits ``model_zoo.data.collect(policy=...)``.

    >>> import numpy as np
    >>> policy = goal_biased_policy(bias=1.0, seed=0)
    >>> from campus_env.schema import Action, state_slices
    >>> parts = state_slices(observe_causal=False)
    >>> obs = np.zeros((1, parts["crowd"].stop), np.float32)
    >>> obs[0, parts["goal_offset"]] = (0, 3 / 31)  # the goal is three cells to the east
    >>> obs[0, parts["walkable"]] = 1  # every cell around is walkable
    >>> policy(obs).tolist() == [Action.EAST]
    True
    """
    if not 0.0 <= bias <= 1.0:
        raise ValueError(f"bias is a probability, got {bias}")
    rng = np.random.default_rng(seed)

    def policy(obs: np.ndarray) -> np.ndarray:
        good = action_features(obs, map_size)[..., ACTION_FEATURES.index("progress_walkable")] > 0.5  # (N, 5)
        n, num_actions = good.shape
        # a random good action: the argmax of uniform noise over the good ones
        pick = np.where(good, rng.random(good.shape), -1.0).argmax(axis=1)
        greedy = rng.random(n) < bias
        return np.where(greedy & good.any(axis=1), pick, rng.integers(0, num_actions, n)).astype(np.int64)

    return policy

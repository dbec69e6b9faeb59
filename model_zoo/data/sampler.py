"""Windows of experience: ``(B, T)`` sequences of episodes as ``model_zoo.base.Batch``.

The episodes are laid end to end on one timeline, an episode of T steps as T+1
aligned steps in the Dreamer convention of ``model_zoo.base`` (step 0:
``is_first`` True, action zero, reward 0, not terminated; step t > 0:
``action[t-1]``, ``reward[t-1]``, ``terminations[t-1]``). A window may start at
any step (so ``is_first[:, 0]`` is False when it starts mid-episode), and one
that runs past an episode's last step goes on with the first step of the next
episode, where ``is_first`` is True; the timeline wraps from the last episode to
the first. Nothing is padded, and no two episodes ever meet without ``is_first``.

``SequenceSampler`` draws random windows for training; ``all_windows`` and
``iterate`` give every window once, in order, for evaluation.

>>> import numpy as np
>>> episode = Episode(np.zeros((6, 3), np.float32), np.zeros(5, np.int64), np.zeros(5), np.zeros(5, bool),
...                   np.zeros(5, bool))
>>> batch = SequenceSampler([episode, episode], seq_len=4, batch_size=3).sample()
>>> batch.obs.shape, batch.action.shape, all_windows([episode, episode], 4).is_first.shape
(torch.Size([3, 4, 3]), torch.Size([3, 4]), torch.Size([3, 4]))
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import minari
import numpy as np
import torch

from model_zoo.base import Batch
from model_zoo.data.episodes import Episode, as_episodes, check_episode, check_positive_int

__all__ = ["SequenceSampler", "all_windows", "iterate"]


class _Timeline:
    """All episodes end to end as aligned steps (Dreamer convention), held as numpy arrays."""

    def __init__(self, episodes: Sequence[Episode]):
        with_causal = {e.causal is not None for e in episodes}
        if len(with_causal) > 1:
            raise ValueError("some episodes have causal values and some do not; use episodes of one env")
        first = episodes[0]
        self.is_dict = isinstance(first.obs, dict)
        for e in episodes:
            check_episode(e)
            if isinstance(e.obs, dict) != self.is_dict or (self.is_dict and set(e.obs) != set(first.obs)):
                raise ValueError("episodes have different observation formats; use episodes of one env")
        action = [_aligned_action(e.action) for e in episodes]
        if len({(a.dtype, a.shape[1:]) for a in action}) > 1:
            raise ValueError("episodes have different action dtypes or shapes; use episodes of one env")
        if self.is_dict:
            self.obs = {k: np.concatenate([e.obs[k] for e in episodes]) for k in first.obs}
        else:
            self.obs = np.concatenate([e.obs for e in episodes])
        self.action = np.concatenate(action)
        zero_f, zero_b = np.zeros(1, np.float32), np.zeros(1, bool)
        self.reward = np.concatenate([np.concatenate([zero_f, e.reward.astype(np.float32)]) for e in episodes])
        self.terminated = np.concatenate([np.concatenate([zero_b, e.terminated.astype(bool)]) for e in episodes])
        self.is_first = np.zeros(len(self.reward), dtype=bool)
        self.is_first[np.cumsum([0] + [len(e) + 1 for e in episodes[:-1]])] = True
        self.causal = None
        if first.causal is not None:
            self.causal = np.concatenate([e.causal.astype(np.float32) for e in episodes])
        self.num_steps = len(self.reward)
        self.num_episodes = len(episodes)

    def window(self, starts: np.ndarray, seq_len: int, device: torch.device | str) -> Batch:
        """Windows (B, seq_len) beginning at the timeline steps ``starts`` (wrapping at the end)."""
        index = (np.asarray(starts, dtype=np.int64)[:, None] + np.arange(seq_len)) % self.num_steps  # (B, T)

        def take(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.take(x, index, axis=0)).to(device)  # np.take: far faster than torch indexing

        return Batch(
            obs={k: take(v) for k, v in self.obs.items()} if self.is_dict else take(self.obs),
            action=take(self.action),
            reward=take(self.reward),
            terminated=take(self.terminated),
            is_first=take(self.is_first),
            causal=None if self.causal is None else take(self.causal),
        )

    def check_seq_len(self, seq_len: int) -> None:
        check_positive_int("seq_len", seq_len)
        if seq_len > self.num_steps:
            raise ValueError(
                f"seq_len={seq_len} is longer than the whole data ({self.num_steps} steps in "
                f"{self.num_episodes} episodes); collect more episodes or use a shorter seq_len"
            )


def _aligned_action(action: np.ndarray) -> np.ndarray:
    """T actions as T+1 aligned ones (a zero first): int64 (T+1,) or float32 (T+1, A)."""
    action = np.asarray(action)
    if np.issubdtype(action.dtype, np.integer) or action.dtype == bool:
        action = action.astype(np.int64)
    else:
        action = action.astype(np.float32).reshape(len(action), -1)
    return np.concatenate([np.zeros_like(action[:1]), action])


def _timeline(source: Any) -> _Timeline:
    return source if isinstance(source, _Timeline) else _Timeline(as_episodes(source))


class SequenceSampler:
    """Draws ``(batch_size, seq_len)`` windows of experience as ``model_zoo.base.Batch``.

    Windows start at any step of any episode, uniformly; one that runs past an
    episode's end continues into the next episode with ``is_first`` True at the
    join (see ``model_zoo.data.sampler``), so nothing is padded and ``seq_len`` may
    exceed an episode's length (not the whole data's). Observations keep the env's
    format (images uint8 (B, T, H, W, C)); actions are int64 (B, T) for Discrete
    spaces and float32 (B, T, A) for Box; ``causal`` is float32 (B, T, C) or None.

    Args:
        episodes_or_dataset: ``Episode`` records, a ``minari.MinariDataset`` or a dataset id.
        seq_len: window length T.
        batch_size: windows per batch B.
        seed: seeds the window starts; the same seed gives the same batches.
        device: where the batches' tensors go.
    """

    def __init__(
        self,
        episodes_or_dataset: Sequence[Episode] | minari.MinariDataset | str,
        seq_len: int,
        batch_size: int,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ):
        self._timeline = _timeline(episodes_or_dataset)
        self._timeline.check_seq_len(seq_len)
        check_positive_int("batch_size", batch_size)
        self.seq_len = int(seq_len)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self._rng = np.random.default_rng(seed)
        dataset = episodes_or_dataset if isinstance(episodes_or_dataset, minari.MinariDataset) else None
        self.observation_space = dataset.observation_space if dataset is not None else None
        self.action_space = dataset.action_space if dataset is not None else None

    @property
    def num_steps(self) -> int:
        """Aligned steps in the data (an episode of T steps counts T+1)."""
        return self._timeline.num_steps

    @property
    def num_episodes(self) -> int:
        return self._timeline.num_episodes

    def sample(self) -> Batch:
        """One batch of windows, (batch_size, seq_len)."""
        starts = self._rng.integers(0, self._timeline.num_steps, size=self.batch_size)
        return self._timeline.window(starts, self.seq_len, self.device)

    def state_dict(self) -> dict[str, Any]:
        """The generator's position (JSON-able), so a resumed run draws the same batches next."""
        return {
            "rng": self._rng.bit_generator.state,
            "num_steps": self.num_steps,
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores ``state_dict()``; raises ``ValueError`` if it was taken on other data or shapes."""
        mine = self.state_dict()
        wrong = {k: (state.get(k), mine[k]) for k in ("num_steps", "seq_len", "batch_size") if state.get(k) != mine[k]}
        if wrong or "rng" not in state:
            raise ValueError(
                "sampler state does not fit this sampler: "
                + (", ".join(f"{k} {a} (saved) != {b} (here)" for k, (a, b) in wrong.items()) or "no 'rng' entry")
            )
        rng = np.random.default_rng()
        rng.bit_generator.state = dict(state["rng"])
        self._rng = rng

    def __iter__(self) -> Iterator[Batch]:
        """Batches without end."""
        while True:
            yield self.sample()

    def __repr__(self) -> str:
        return (
            f"SequenceSampler(episodes={self.num_episodes}, steps={self.num_steps}, seq_len={self.seq_len}, "
            f"batch_size={self.batch_size}, device={str(self.device)!r})"
        )


def _starts(timeline: _Timeline, seq_len: int, stride: int | None) -> np.ndarray:
    timeline.check_seq_len(seq_len)
    stride = seq_len if stride is None else stride
    check_positive_int("stride", stride)
    return np.arange(0, timeline.num_steps - seq_len + 1, stride)


def all_windows(
    source: Sequence[Episode] | minari.MinariDataset | str,
    seq_len: int,
    *,
    stride: int | None = None,
    device: torch.device | str = "cpu",
) -> Batch:
    """Every window of the data once, in order, as one ``Batch`` (W, seq_len).

    Windows begin at timeline steps 0, stride, 2 * stride, ... (``stride`` defaults
    to ``seq_len``: back to back, each step once) and never wrap, so fewer than
    ``stride`` steps at the very end may be left out. Boundaries are marked with
    ``is_first`` as in ``SequenceSampler``.
    """
    timeline = _timeline(source)
    return timeline.window(_starts(timeline, seq_len, stride), seq_len, device)


def iterate(
    source: Sequence[Episode] | minari.MinariDataset | str,
    seq_len: int,
    batch_size: int,
    *,
    stride: int | None = None,
    device: torch.device | str = "cpu",
) -> Iterator[Batch]:
    """The windows of ``all_windows``, in the same order, in batches of ``batch_size`` (the last may be smaller)."""
    check_positive_int("batch_size", batch_size)
    timeline = _timeline(source)
    starts = _starts(timeline, seq_len, stride)  # checked here, before the first batch is asked for
    return (timeline.window(starts[i : i + batch_size], seq_len, device) for i in range(0, len(starts), batch_size))

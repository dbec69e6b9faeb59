"""Datasets of experience: collect episodes into Minari, read them back, cut them into windows.

- ``collection``: ``collect`` runs a vector env and writes a Minari dataset;
- ``shards``: ``run_shard`` steps a slice of its sub-envs, here or on a Ray worker;
- ``episodes``: ``load_episodes`` reads one into ``Episode`` records (checking the
  checksums ``collect`` recorded), ``split_episodes`` holds some out;
- ``games``: ``Games`` brings several envs' episodes to one observation and action space;
- ``sampler``: ``SequenceSampler`` draws ``(B, T)`` windows as ``model_zoo.base.Batch``,
  ``all_windows`` and ``iterate`` give every window once, in order.

Nothing here imports an env package: what an env offers (causal codes, a grid of
contexts, splits) is read from its ``metadata``.

>>> import tempfile, campus_env
>>> with tempfile.TemporaryDirectory() as root:
...     dataset = collect("CampusNav-v0", num_episodes=2, num_envs=2, max_episode_steps=5,
...                       env_kwargs={"obs_mode": "state"}, progress=False, data_path=root)
...     episodes = load_episodes(dataset)
...     batch = SequenceSampler(episodes, seq_len=4, batch_size=3).sample()
>>> len(episodes), episodes[0].causal.shape, batch.obs.shape, batch.causal.shape
(2, (6, 7), torch.Size([3, 4, 72]), torch.Size([3, 4, 7]))
"""

from model_zoo.data.collection import COVERAGES, Policy, collect, grid_cells
from model_zoo.data.episodes import CHECKSUMS_FILE, DatasetError, Episode, load_dataset, load_episodes, split_episodes
from model_zoo.data.games import Games
from model_zoo.data.sampler import SequenceSampler, all_windows, iterate

__all__ = [
    "CHECKSUMS_FILE",
    "COVERAGES",
    "DatasetError",
    "Episode",
    "Games",
    "Policy",
    "SequenceSampler",
    "all_windows",
    "collect",
    "grid_cells",
    "iterate",
    "load_dataset",
    "load_episodes",
    "split_episodes",
]


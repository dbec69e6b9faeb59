"""Pictures of CampusNav-v0 for the README: the whole campus, and what the agent sees.

Writes two PNGs:
- ``campus.png``: the whole-campus ``rgb_array`` frame on a rainy gameday at noon
  (stadium roads closed, crowds around the stadium), with its status strip;
- ``views.png``: the 64x64 egocentric observation of one seed under four
  interventions (sunny, rainy, snowy, crowd=1.0), enlarged 4x, side by side.

Run: ``python examples/snapshot.py --out docs``
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)


@dataclass
class Args:
    out: str = "docs"
    """folder the PNGs are written to"""
    seed: int = 3
    """seed of the episode shown"""


def parse_args(argv=None) -> Args:
    return tyro.cli(Args, args=argv, description=__doc__)


def main(argv=None) -> list[Path]:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. the whole campus on a rainy gameday at noon, a few steps into the walk to the stadium
    env = gym.make("CampusNav-v0", render_mode="rgb_array")
    do = {"gameday": True, "weather": "rainy", "hour": 12.0, "day": 5}
    env.reset(seed=args.seed, options={"do": do, "goal": "stadium", "start": "library"})
    for action in (2, 2, 3, 3):
        env.step(action)
    campus = env.render()

    # 2. one seed's egocentric view under four interventions (the same noise: counterfactual twins)
    views = []
    for do in ({"weather": "sunny"}, {"weather": "rainy"}, {"weather": "snowy"}, {"crowd": 1.0, "hour": 12.0}):
        obs, _ = env.reset(seed=args.seed, options={"do": do, "start": "union", "goal": "library"})
        big = np.kron(obs["image"], np.ones((4, 4, 1), dtype=np.uint8))
        views.append(np.pad(big, ((8, 8), (8, 8), (0, 0)), constant_values=255))
    env.close()

    paths = [out / "campus.png", out / "views.png"]
    iio.imwrite(paths[0], campus)
    iio.imwrite(paths[1], np.concatenate(views, axis=1))
    for path in paths:
        print(f"wrote {path}")
    return paths


if __name__ == "__main__":
    main()

"""Dream against reality: the same actions in the real env and in a world model's imagination.

``record_side_by_side`` resets the real env, filters that first observation
through the model (``observe``), then plays one action sequence in both: the
real env steps, the model imagines open loop (it never sees another real
observation). Each frame shows [real | dream], split by a white bar, with the
step, the action and each side's reward written below and a progress bar:

- observations with an image part: the image, as it is (a pixel model's
  decoded frame beside the real one), enlarged with ``np.kron``;
- vector observations of an env whose ``metadata["render_observation"]`` names
  a function ``f(obs, env=real_env) -> (H, W, 3) uint8`` (``"module:function"``):
  both sides drawn by it, the real one from the real observation, so they look
  alike (CampusNav-v0 draws its whole campus);
- other vector observations: their values as a grid of grey cells.

Actions are written in words where the env's ``metadata["action_meanings"]``
(or an Atari-style ``get_action_meanings()``) names them.

Videos are MP4 when imageio has a video backend (``imageio-ffmpeg`` or ``av``)
and GIF otherwise (Pillow, always there): asking for ``.mp4`` without a
backend writes ``.gif`` beside it, with a warning, and the returned ``path``
says which file was written. ``write_video`` and ``add_caption`` serve other
videos the same way.

>>> import tempfile, pathlib
>>> import gymnasium as gym
>>> import model_zoo
>>> env = gym.make("CartPole-v1")
>>> model = model_zoo.make("mlp", env.observation_space, env.action_space, hidden=32)
>>> out = pathlib.Path(tempfile.mkdtemp()) / "dream.gif"
>>> result = record_side_by_side(env, model, [0, 1, 0, 1], out, seed=0, steps=4)
>>> len(result["errors"]), result["frames"], result["path"] == str(out)
(4, 5, True)
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from model_zoo.base import WorldModel
from model_zoo.metadata import resolve_function
from wrappers.dream.guard import first_step_actions

__all__ = ["add_caption", "plot_error_vs_horizon", "record_side_by_side", "video_backend", "write_video"]

SEPARATOR = 255  # grey level of the bar between real and dream
TARGET_WIDTH = 256  # each half is enlarged to about this many pixels
_BLOCK = 16  # frame sides are multiples of this (video codecs want it)
_VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")
FONT_PX = 14  # text under the frames
LINE_PX = 18
TEXT_COLOR = (235, 235, 240)
STRIP_COLOR = 32
_Caption = tuple[list[str], list[str]]  # the lines under the real side, the lines under the dream


def video_backend() -> str | None:
    """The imageio plugin that can write MP4 here: ``"ffmpeg"``, ``"pyav"`` or None (GIF only)."""
    if importlib.util.find_spec("imageio_ffmpeg") is not None:
        return "ffmpeg"
    if importlib.util.find_spec("av") is not None:
        return "pyav"
    return None


def record_side_by_side(
    real_env: gym.Env,
    model: WorldModel,
    actions: Sequence[Any] | np.ndarray | Callable[[Any], Any],
    path: str | Path,
    *,
    seed: int,
    steps: int,
    fps: int = 10,
    do: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Plays ``steps`` actions in ``real_env`` and, open loop, in ``model``'s dream; writes the video.

    Args:
        real_env: a single env with the model's observation and action spaces.
        model: the world model (any from the zoo).
        actions: the actions, at least ``steps`` of them, or a policy
            ``policy(real_obs) -> action`` whose actions are fed to both.
        path: the video file; ``.gif``, or ``.mp4`` (see the module docstring).
        seed: seeds the real reset and the dream's sampling.
        steps: how many actions; fewer are played if the real episode ends first.
        fps: frames per second of the video.
        do: interventions for both: ``reset(options={"do": do})`` in reality and
            ``imagine(..., do=do)`` in the dream (the model must take them).

    Returns:
        a dict: ``path`` (the file written), ``errors`` (list, one per step:
        the MSE between the real and the dreamed observation at horizon
        1, 2, ...; images in [0, 1], vector parts as they are, Discrete parts
        one-hot), ``part_errors`` (the same per observation part), ``steps``,
        ``frames`` (``steps + 1``, the reset included), ``frame_shape``,
        ``rewards`` (``{"real": [...], "dream": [...]}``), ``dream_terminated``.
    """
    policy = _check_recording(real_env, model, actions, steps, fps)
    model.check_do(do)
    rollout = _play_side_by_side(real_env, model, actions, policy, seed=seed, steps=steps, do=do)
    frames = _frames(rollout.pairs, _captions(rollout, _action_meanings(real_env)))
    written = write_video(frames, path, fps)
    return {
        "path": str(written),
        "errors": rollout.errors,
        "part_errors": rollout.part_errors,
        "steps": len(rollout.errors),
        "frames": len(frames),
        "frame_shape": tuple(frames[0].shape),
        "rewards": rollout.rewards,
        "dream_terminated": rollout.dream_terminated,
    }


def _check_recording(real_env: gym.Env, model: WorldModel, actions: Any, steps: Any, fps: Any) -> Callable | None:
    """Raises on arguments ``record_side_by_side`` cannot use; returns the policy, or None for a list of actions."""
    if real_env.observation_space != model.observation_space or real_env.action_space != model.action_space:
        raise ValueError(
            "real_env's spaces are not the model's: record_side_by_side needs the env the model was trained on"
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if isinstance(fps, bool) or not isinstance(fps, int) or fps < 1:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")
    policy = actions if callable(actions) else None
    if policy is None and len(actions) < steps:
        raise ValueError(f"{steps} steps need at least {steps} actions, got {len(actions)}")
    return policy


@dataclasses.dataclass
class _SideBySide:
    """What one side-by-side rollout gathers, step by step."""

    pairs: list[tuple[np.ndarray, np.ndarray]]  # (real picture, dream picture), the reset first
    part_errors: dict[str, list[float]]
    errors: list[float] = dataclasses.field(default_factory=list)
    rewards: dict[str, list[float]] = dataclasses.field(default_factory=lambda: {"real": [], "dream": []})
    dream_terminated: list[bool] = dataclasses.field(default_factory=list)
    actions: list[Any] = dataclasses.field(default_factory=list)
    real_ended: list[str] = dataclasses.field(default_factory=list)  # "", "terminated" or "truncated"


def _play_side_by_side(
    real_env: gym.Env, model: WorldModel, actions: Any, policy: Callable | None, *, seed: int, steps: int,
    do: Mapping[str, Any] | None,
) -> _SideBySide:
    """Resets reality, filters its first observation into the dream, then plays the actions in both."""
    spec, device = model.spec, model.device
    generator = torch.Generator(device=device).manual_seed(seed)
    metadata = _env_metadata(real_env)
    view = _View(spec, resolve_function(metadata.get("render_observation")), real_env)
    obs, _ = real_env.reset(seed=seed, options={"do": dict(do)} if do else None)
    with torch.no_grad():
        first_action = torch.as_tensor(first_step_actions(spec.action_space, 1), device=device)
        first = torch.ones(1, dtype=torch.bool, device=device)
        state = model.observe(model.initial_state(1), first_action, spec.to_torch(_add_batch_axis(obs), device), first)
        dream = _first_row_numpy(model.decode(state))
    rollout = _SideBySide([(view.image(obs), view.image(dream))], {key or "obs": [] for key in spec.parts(obs)})
    for t in range(steps):
        action = policy(obs) if policy is not None else actions[t]
        obs, reward, terminated, truncated, _ = real_env.step(action)
        with torch.no_grad():
            imagined = model.imagine(state, torch.as_tensor(np.asarray(action)[None], device=device),
                                     do=do, generator=generator)
            state = imagined.state
            dream = _first_row_numpy(model.decode(state))
        total, parts = _mse(spec, obs, dream)
        rollout.errors.append(total)
        for key, value in parts.items():
            rollout.part_errors[key].append(value)
        rollout.rewards["real"].append(float(reward))
        rollout.rewards["dream"].append(float(imagined.reward[0]))
        rollout.dream_terminated.append(bool(imagined.terminated[0]))
        rollout.actions.append(action)
        rollout.real_ended.append("terminated" if terminated else "truncated" if truncated else "")
        rollout.pairs.append((view.image(obs), view.image(dream)))
        if terminated or truncated:
            break
    return rollout


def plot_error_vs_horizon(
    errors: Sequence[float] | Sequence[Sequence[float]] | Mapping[str, Any],
    path: str | Path,
    *,
    title: str = "dream error against horizon",
    ylabel: str = "observation MSE",
) -> Path:
    """Plots error against horizon and saves the figure (PNG, SVG, PDF: by ``path``'s suffix).

    ``errors`` is one rollout's list (``record_side_by_side(...)["errors"]``), a
    list of rollouts (their mean, with a band of one standard deviation, over
    the rollouts that reached each horizon), or a dict ``{label: either}`` for
    one line per model.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series = dict(errors) if isinstance(errors, Mapping) else {"": errors}
    fig = Figure(figsize=(6, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, values in series.items():
        mean, std = _mean_std(values)
        if not len(mean):
            continue
        horizon = np.arange(1, len(mean) + 1)
        (line,) = ax.plot(horizon, mean, marker="o" if len(mean) <= 30 else None, markersize=3, label=label or None)
        if np.any(std > 0):
            ax.fill_between(horizon, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("horizon (imagined steps)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if any(series):
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


# --- observations as pictures ------------------------------------------------------


class _View:
    """Turns an observation into an enlarged uint8 RGB picture: its first image part, the env's drawing of it,
    or its vector as cells."""

    def __init__(self, spec: Any, render: Callable | None = None, env: gym.Env | None = None):
        self.spec = spec
        self.key = spec.image_keys[0] if spec.image_keys else None
        self.render = render if self.key is None else None  # images are shown as they are
        self.env = env
        self.scale = None  # from the width of the first picture drawn by ``render``
        if self.key is not None:
            self.scale = max(1, TARGET_WIDTH // spec.images[self.key][1])
        elif self.render is None:
            low, high = [], []
            for space in spec.vectors.values():
                if isinstance(space, spaces.Discrete):
                    low.append(np.zeros(int(space.n)))
                    high.append(np.ones(int(space.n)))
                else:
                    low.append(np.broadcast_to(space.low, space.shape).astype(np.float64).ravel())
                    high.append(np.broadcast_to(space.high, space.shape).astype(np.float64).ravel())
            self.low, self.high = np.concatenate(low), np.concatenate(high)
            self.bounded = np.isfinite(self.low) & np.isfinite(self.high) & (self.high > self.low)
            self.cols = math.ceil(math.sqrt(len(self.low)))
            self.scale = max(1, TARGET_WIDTH // self.cols)

    def image(self, obs: Any) -> np.ndarray:
        if self.key is not None:
            img = np.asarray(obs[self.key] if self.spec.is_dict else obs)
            img = img[..., :3] if img.shape[-1] >= 3 else np.repeat(img[..., :1], 3, axis=-1)
        elif self.render is not None:
            img = np.asarray(self.render(obs, env=self.env), dtype=np.uint8)[..., :3]
            self.scale = self.scale or max(1, TARGET_WIDTH // img.shape[1])
        else:
            img = self._cells(self.spec.vector(obs).numpy().astype(np.float64))
        return img if self.scale == 1 else np.kron(img, np.ones((self.scale, self.scale, 1), dtype=np.uint8))

    def _cells(self, v: np.ndarray) -> np.ndarray:
        """Values in [low, high] (or squashed by tanh where unbounded) as grey cells, row by row."""
        span = np.where(self.bounded, self.high - self.low, 1.0)
        level = np.where(self.bounded, (v - np.where(self.bounded, self.low, 0.0)) / span, 0.5 + 0.5 * np.tanh(v))
        level = np.nan_to_num(level, nan=0.0)
        cells = np.zeros(self.cols * math.ceil(len(v) / self.cols), dtype=np.uint8)
        cells[: len(v)] = np.round(np.clip(level, 0.0, 1.0) * 255).astype(np.uint8)
        return np.repeat(cells.reshape(-1, self.cols)[..., None], 3, axis=-1)


def _env_metadata(env: gym.Env) -> Mapping[str, Any]:
    """The env's metadata: the unwrapped env's, with what a wrapper adds or changes on top."""
    inner = getattr(getattr(env, "unwrapped", env), "metadata", None) or {}
    return {**inner, **(getattr(env, "metadata", None) or {})}


def _action_meanings(env: gym.Env) -> Sequence[str] | None:
    """The words of a Discrete env's actions: ``metadata["action_meanings"]``, or Atari's ``get_action_meanings()``."""
    meanings = _env_metadata(env).get("action_meanings")
    getter = getattr(getattr(env, "unwrapped", env), "get_action_meanings", None)
    if meanings is None and callable(getter):
        try:
            meanings = getter()
        except Exception:  # words are a nicety: numbers will do
            meanings = None
    return None if meanings is None else [str(m) for m in meanings]


def _action_text(action: Any, meanings: Sequence[str] | None) -> str:
    a = np.asarray(action)
    if a.ndim == 0 and np.issubdtype(a.dtype, np.integer):
        word = meanings[int(a)] if meanings is not None and 0 <= int(a) < len(meanings) else ""
        return f"{int(a)} {word}".rstrip()
    return np.array2string(a, precision=2, separator=", ", max_line_width=10_000)


def _captions(rollout: _SideBySide, meanings: Sequence[str] | None) -> list[_Caption]:
    """(real lines, dream lines) under each frame: the step, then the action and that side's reward."""
    captions = [(["reality   step 0 (reset)"], ["dream   step 0 (filtered from reality)"])]
    for t, action in enumerate(rollout.actions):
        act = f"action {_action_text(action, meanings)}"
        real = f"{act}   reward {rollout.rewards['real'][t]:+.3f}   {rollout.real_ended[t]}".rstrip()
        dream = f"{act}   reward {rollout.rewards['dream'][t]:+.3f}"
        dream += "   terminated" if rollout.dream_terminated[t] else ""
        captions.append(([f"reality   step {t + 1}", real], [f"dream   step {t + 1}", dream]))
    return captions


def _frames(pairs: list[tuple[np.ndarray, np.ndarray]], captions: list[_Caption]) -> list[np.ndarray]:
    """[real | white bar | dream] over their captions and a progress bar; sides padded to multiples of 16."""
    height = max(max(a.shape[0], b.shape[0]) for a, b in pairs)
    width = max(max(a.shape[1], b.shape[1]) for a, b in pairs)
    sep = 8 + (-(2 * width + 8)) % _BLOCK
    text = 6 + LINE_PX * max(max(len(r), len(d)) for r, d in captions)
    strip = text + 8 + (-(height + text + 8)) % _BLOCK
    frames = []
    for t, ((real, dream), (real_lines, dream_lines)) in enumerate(zip(pairs, captions, strict=True)):
        frame = np.full((height + strip, 2 * width + sep, 3), STRIP_COLOR, dtype=np.uint8)
        frame[:height] = 0
        frame[: real.shape[0], : real.shape[1]] = real
        frame[: dream.shape[0], width + sep : width + sep + dream.shape[1]] = dream
        frame[:height, width : width + sep] = SEPARATOR
        _draw_lines(frame[height : height + text], [(0, real_lines), (width + sep, dream_lines)])
        done = round(frame.shape[1] * t / max(1, len(pairs) - 1))
        bar = height + text + (strip - text) // 2
        frame[bar - 2 : bar + 2, :done] = 200
        frames.append(frame)
    return frames


def add_caption(frame: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """``frame`` (H, W, 3) uint8 over a dark strip with ``lines`` of text; the strip keeps H a multiple of 16
    when it was one."""
    text = 6 + LINE_PX * len(lines)
    strip = np.full((text + (-text) % _BLOCK, frame.shape[1], 3), STRIP_COLOR, dtype=np.uint8)
    _draw_lines(strip, [(0, list(lines))])
    return np.concatenate([np.asarray(frame, dtype=np.uint8)[..., :3], strip], axis=0)


@functools.cache
def _font() -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=FONT_PX)  # a scalable font where Pillow has FreeType
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()  # the small bitmap font


def _draw_lines(strip: np.ndarray, columns: list[tuple[int, list[str]]]) -> None:
    """Writes each column's lines into ``strip`` (in place), starting at its x offset."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(strip)
    draw = ImageDraw.Draw(canvas)
    for x, lines in columns:
        for i, line in enumerate(lines):
            draw.text((x + 8, 4 + LINE_PX * i), line, fill=TEXT_COLOR, font=_font())
    strip[:] = np.asarray(canvas)


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """Writes (H, W, 3) uint8 frames as a video; returns the file written (see the module docstring for MP4/GIF).

    Frame sides should be multiples of 16 for MP4 (codecs want it; ``record_side_by_side``'s are).
    """
    import imageio.v2
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in _VIDEO_SUFFIXES or suffix == "":
        backend = video_backend()
        if backend == "ffmpeg":
            path = path if suffix else path.with_suffix(".mp4")
            imageio.v2.mimwrite(path, frames, fps=fps, macro_block_size=_BLOCK)
            return path
        if backend == "pyav":
            path = path if suffix else path.with_suffix(".mp4")
            iio.imwrite(path, np.stack(frames), plugin="pyav", codec="libx264", fps=fps)
            return path
        if suffix:
            warnings.warn(
                f"no video backend for {suffix} (pip install imageio-ffmpeg); writing a GIF instead",
                stacklevel=2,
            )
        path = path.with_suffix(".gif")
    elif suffix != ".gif":
        raise ValueError(f"the video must be .gif or {', '.join(_VIDEO_SUFFIXES)}, got {path.name!r}")
    iio.imwrite(path, np.stack(frames), extension=".gif", duration=round(1000 / fps), loop=0)
    return path


# --- numbers ---------------------------------------------------------------------------


def _mse(spec: Any, real: Any, dream: Any) -> tuple[float, dict[str, float]]:
    """MSE over every element (images in [0, 1]), and per observation part."""
    real_parts, dream_parts = spec.parts(real), spec.parts(dream)
    parts, total, count = {}, 0.0, 0
    for key, r in real_parts.items():
        space = spec.vectors.get(key)
        if key in spec.images:
            a, b = r.double() / 255.0, dream_parts[key].double() / 255.0
        elif isinstance(space, spaces.Discrete):
            n, start = int(space.n), int(space.start)
            a = torch.nn.functional.one_hot(r.long() - start, n).double()
            b = torch.nn.functional.one_hot(dream_parts[key].long() - start, n).double()
        else:
            a, b = r.double(), dream_parts[key].double()
        sq = float(((a - b) ** 2).sum())
        parts[key or "obs"] = sq / max(1, a.numel())
        total += sq
        count += a.numel()
    return total / max(1, count), parts


def _mean_std(values: Any) -> tuple[np.ndarray, np.ndarray]:
    rows = [np.asarray(values, dtype=np.float64)] if np.ndim(values[0] if len(values) else 0) == 0 else [
        np.asarray(v, dtype=np.float64) for v in values
    ]
    length = max((len(r) for r in rows), default=0)
    mean, std = np.zeros(length), np.zeros(length)
    for h in range(length):
        at = np.array([r[h] for r in rows if len(r) > h])
        mean[h], std[h] = at.mean(), at.std()
    return mean, std


def _add_batch_axis(obs: Any) -> Any:
    if isinstance(obs, Mapping):
        return {k: np.asarray(v)[None] for k, v in obs.items()}
    return np.asarray(obs)[None]


def _first_row_numpy(obs: Any) -> Any:
    if isinstance(obs, Mapping):
        return {k: v[0].detach().cpu().numpy() for k, v in obs.items()}
    return obs[0].detach().cpu().numpy()

"""Layout files: the default campus, another file via ``layout=``, and bad files with clear errors."""

import re

import gymnasium as gym
import numpy as np
import pytest

import campus_env
from campus_env.layout import BUILDINGS, DEFAULT_LAYOUT
from tests.campus_env.helpers import ENV_ID, make, random_actions, run

DEFAULT_ROWS = [line for line in DEFAULT_LAYOUT.read_text().splitlines() if line and not line.startswith(";")]


def write(tmp_path, rows, name="campus_test.txt"):
    path = tmp_path / name
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def edit(rows, row, col, ch):
    rows = list(rows)
    rows[row] = rows[row][:col] + ch + rows[row][col + 1 :]
    return rows


def find(rows, ch):
    return [(r, line.index(ch)) for r, line in enumerate(rows) if ch in line]


def test_default_layout_is_a_valid_campus():
    layout = campus_env.load_layout()
    assert (layout.height, layout.width) == (32, 32)
    assert len(layout.entrances) == len(BUILDINGS)
    for (row, col), (_, door, _) in zip(layout.entrances, BUILDINGS, strict=True):
        assert layout.chars[row][col] == door


def test_another_layout_file_is_used(tmp_path):
    # two more rows and a wider campus: the frame and the env follow the file
    rows = [line + line[-1] for line in DEFAULT_ROWS]
    rows = rows[:1] + [rows[1], rows[1]] + rows[1:]
    path = write(tmp_path, ["; a comment line", ""] + rows)
    env = make(layout=str(path), render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    frame = env.render()
    default_frame = make(render_mode="rgb_array")
    default_frame.reset(seed=0)
    assert frame.shape[0] - default_frame.render().shape[0] == 2 * 16
    assert frame.shape[1] - default_frame.render().shape[1] == 16
    run(env, random_actions(50))
    vec = gym.make_vec(ENV_ID, num_envs=2, layout=str(path), obs_mode="state")
    obs, _ = vec.reset(seed=0)
    assert vec.observation_space.contains(obs)


def test_layout_path_objects_are_accepted(tmp_path):
    path = write(tmp_path, DEFAULT_ROWS)
    env = make(layout=path, obs_mode="state")
    a = env.reset(seed=3)[0]
    b = make(obs_mode="state").reset(seed=3)[0]
    assert np.array_equal(a, b)  # the same text gives the same campus


def _ragged():
    return edit(DEFAULT_ROWS, 5, 31, ""), r"line 6: every row must have 32 cells, this one has 31"


def _unknown_char():
    return edit(DEFAULT_ROWS, 9, 3, "Q"), r"line 10, column 4: unknown cell 'Q'; valid cells: "


def _no_entrance():
    (row, col), = find(DEFAULT_ROWS, "G")
    return edit(DEFAULT_ROWS, row, col, "#"), r"the gym needs exactly one entrance 'G', found 0"


def _two_entrances():
    (row, col), = find(DEFAULT_ROWS, "L")
    return edit(DEFAULT_ROWS, row + 1, col, "L"), r"the library needs exactly one entrance 'L', found 2"


def _unreachable():
    # the stadium entrance opens north onto one walkway cell; turn it into water
    (row, col), = find(DEFAULT_ROWS, "S")
    assert DEFAULT_ROWS[row - 1][col] == "."
    return (
        edit(DEFAULT_ROWS, row - 1, col, "~"),
        rf"line {row + 1}, column {col + 1}: the stadium entrance cannot be reached from the library",
    )


def _stray_side_door():
    return edit(DEFAULT_ROWS, 7, 5, "+"), r"line 8, column 6: a side door '\+' must touch the interior of exactly one"


def _too_small():
    return ["....", "...."], r"a campus needs at least 4x4 cells, got 2x4"


def _empty():
    return ["; only a comment"], r"the layout is empty"


@pytest.mark.parametrize(
    "bad",
    [_ragged, _unknown_char, _no_entrance, _two_entrances, _unreachable, _stray_side_door, _too_small, _empty],
    ids=lambda f: f.__name__.strip("_"),
)
def test_bad_layout_file(tmp_path, bad):
    rows, problem = bad()
    path = write(tmp_path, rows)
    with pytest.raises(campus_env.LayoutError, match=re.escape(str(path)) + r".*" + problem) as raised:
        gym.make(ENV_ID, layout=str(path))
    assert isinstance(raised.value, ValueError)
    with pytest.raises(campus_env.LayoutError, match=problem):
        gym.make_vec(ENV_ID, num_envs=2, layout=str(path))


def test_missing_layout_file(tmp_path):
    path = tmp_path / "nowhere.txt"
    with pytest.raises(campus_env.LayoutError, match=re.escape(f"cannot read layout {str(path)!r}")):
        gym.make(ENV_ID, layout=str(path))


def test_layout_error_is_a_value_error():
    assert issubclass(campus_env.LayoutError, ValueError)

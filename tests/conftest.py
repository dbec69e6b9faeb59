"""Shared pytest set-up for the whole suite.

pygame must never try to open a real display or audio device in tests, so the
SDL drivers are set to ``dummy`` here, before any test module (or campus_env's
renderer) imports pygame.
"""

import os
import tempfile

import pytest

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ["SDL_AUDIODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
# One thread per torch op: on a 2-core machine shared with other work, torch's own thread pool
# makes small-model tests 10x slower or faster from run to run. Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture
def display(monkeypatch):
    """A dummy SDL display, so events can be posted before a play window opens."""
    pygame = pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    pygame.display.init()
    pygame.event.clear()
    yield
    pygame.display.quit()


@pytest.fixture
def post_keys(display):
    """Posts key presses (pygame key codes, in order) to the dummy display."""
    import pygame

    def post(*keys: int) -> None:
        for key in keys:
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key))

    return post


@pytest.fixture
def sb3_temp_dir(tmp_path, monkeypatch):
    """An empty temp directory of this test's own, where SB3's default logger would make its SB3-<time> folders."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    return temp

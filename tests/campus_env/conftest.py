"""Fixtures for the campus_env tests."""

import pytest

import campus_env


@pytest.fixture(autouse=True)
def fast_human_window(monkeypatch):
    """Lets ``render_mode="human"`` windows tick as fast as they can.

    The window waits for ``metadata["render_fps"]`` between frames (10 fps),
    which would make every human-mode test take seconds. Only the rate
    changes; the window is still created, drawn to and closed for real.
    """
    monkeypatch.setitem(campus_env.CampusNavEnv.metadata, "render_fps", 100_000)

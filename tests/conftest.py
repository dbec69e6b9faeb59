"""Shared pytest set-up for the whole suite.

pygame must never try to open a real display or audio device in tests, so the
SDL drivers are set to ``dummy`` here, before any test module (or campus_env's
renderer) imports pygame.
"""

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ["SDL_AUDIODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

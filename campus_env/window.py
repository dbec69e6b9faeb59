"""A pygame window that shows frames at a fixed rate (imported only for ``render_mode="human"``).

Pygame has one display per process. Every ``Window`` shares it: the display is
opened by the first window and shut down when the last one closes, and a window
whose display was shut down by someone else (``pygame.quit()``) opens it again.
"""

from __future__ import annotations

import numpy as np
import pygame

__all__ = ["Window"]

_OPEN: set[int] = set()  # ids of the windows that are open


class Window:
    """Shows uint8 (H, W, 3) frames; closing the window raises no error, it just stops showing."""

    def __init__(self, title: str, shape: tuple[int, ...], fps: int):
        self.title = title
        self.size = (shape[1], shape[0])
        self.fps = fps
        self.clock = pygame.time.Clock()
        self.screen = None
        self.open = True
        _OPEN.add(id(self))
        self._ensure_display()

    def _ensure_display(self) -> None:
        if not pygame.display.get_init() or self.screen is None or pygame.display.get_surface() is None:
            pygame.display.init()
            pygame.display.set_caption(self.title)
            self.screen = pygame.display.set_mode(self.size)
        elif pygame.display.get_surface().get_size() != self.size:
            self.screen = pygame.display.set_mode(self.size)
        else:
            self.screen = pygame.display.get_surface()

    def show(self, frame: np.ndarray) -> None:
        if not self.open:
            return
        self._ensure_display()
        for event in pygame.event.get(pygame.QUIT):
            if event.type == pygame.QUIT:
                self.close()
                return
        pygame.surfarray.blit_array(self.screen, frame.transpose(1, 0, 2))
        pygame.display.flip()
        self.clock.tick(self.fps)

    def close(self) -> None:
        if self.open:
            self.open = False
            _OPEN.discard(id(self))
            if not _OPEN and pygame.display.get_init():
                pygame.display.quit()

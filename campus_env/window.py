"""A pygame window that shows frames at a fixed rate (imported only for ``render_mode="human"``)."""

from __future__ import annotations

import numpy as np
import pygame

__all__ = ["Window"]


class Window:
    """Shows uint8 (H, W, 3) frames; closing the window raises no error, it just stops showing."""

    def __init__(self, title: str, shape: tuple[int, ...], fps: int):
        pygame.display.init()
        pygame.display.set_caption(title)
        self.screen = pygame.display.set_mode((shape[1], shape[0]))
        self.clock = pygame.time.Clock()
        self.fps = fps
        self.open = True

    def show(self, frame: np.ndarray) -> None:
        if not self.open:
            return
        for event in pygame.event.get(pygame.QUIT):
            if event.type == pygame.QUIT:
                self.close()
                return
        pygame.surfarray.blit_array(self.screen, frame.transpose(1, 0, 2))
        pygame.display.flip()
        self.clock.tick(self.fps)

    def close(self) -> None:
        if self.open:
            pygame.display.quit()
            self.open = False

"""What acts on a world model: CMA-ES controllers, an actor-critic, and the dream-to-reality transfer protocol."""

__all__: list[str] = []

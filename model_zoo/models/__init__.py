"""The world models of the zoo, one file each; ``model_zoo.make(id, ...)`` builds them by id."""

__all__: list[str] = []

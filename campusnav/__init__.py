"""The ``campusnav`` command line (see ``campusnav --help``)."""

__all__: list[str] = []

"""The ``qa`` command line, a shell over the ``qa`` library beside ``api`` and ``eval``."""

from cli.commands import main

__all__ = ["main"]

"""The ``eksops`` command line; see :mod:`producer.cli.main`."""

from producer.cli.main import main

__all__ = ["main"]

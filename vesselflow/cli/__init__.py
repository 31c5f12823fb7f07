"""The ``vesselflow`` command line: argument parsers that call the library."""

from vesselflow.cli.main import build_parser, main

__all__ = ["build_parser", "main"]

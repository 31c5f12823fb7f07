"""The ``vesselflow`` command line: argument parsers that call the library."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]

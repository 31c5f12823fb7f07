"""``vesselflow sr evaluate`` (placeholder while being written)."""
import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    pass

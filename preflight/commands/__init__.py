"""Subcommands of the ``preflight`` command line: each module defines ``register(subparsers)``."""

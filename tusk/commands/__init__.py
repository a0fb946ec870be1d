"""Subcommands of the ``tusk`` command line; each module adds one parser and its logic."""

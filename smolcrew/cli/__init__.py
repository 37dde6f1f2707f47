"""The command-line layer: `smolcrew` and its sub-commands, a thin layer over the runtime below it.

`app.py` holds the root command; `memory.py`, `audit.py`, `approvals.py` and `serve.py` one command group each;
`options.py` the options and helpers they share. Nothing outside this folder imports it.
"""

from smolcrew.cli.app import app, main

__all__ = ["app", "main"]

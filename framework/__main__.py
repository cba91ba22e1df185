"""``python -m framework``: the ``fw`` command line."""

from framework.cli.main import main

main()

"""``python -m kitaru.cli``: the same as the ``kitaru`` command."""

from kitaru.cli import main

main()

"""`python -m piherd`: the same as the `piherd` command."""

from piherd.cli.main import main

main()

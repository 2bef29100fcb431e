"""`python -m countdb …` is the `countdb` command."""

from countdb.cli import main

main()

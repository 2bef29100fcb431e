"""`python -m countdb.flight`: the Arrow Flight process that count-server starts beside gunicorn."""

from countdb.flight.process import main

main()

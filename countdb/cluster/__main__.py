"""`python -m countdb.cluster`: the cluster agent that count-server starts beside gunicorn when clustered."""

from countdb.cluster.process import main

main()

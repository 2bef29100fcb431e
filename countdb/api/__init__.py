"""The HTTP API (Falcon, WSGI): routes, resources, the one error mapping, and per-worker services."""

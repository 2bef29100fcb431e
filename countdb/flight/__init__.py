"""Arrow Flight: a process beside gunicorn that serves SQL results and takes Arrow writes."""

"""gunicorn configuration for Count: `gunicorn -c gunicorn.conf.py` from a checkout. All settings come from
the environment (see README); the logic lives in countdb/api/gunicorn_conf.py so installed copies share it."""

from countdb.api.gunicorn_conf import *  # noqa: F401,F403
from countdb.api.gunicorn_conf import child_exit, on_starting, when_ready, worker_exit  # noqa: F401  (hooks by name)

"""gunicorn's target (`countdb.api.wsgi:app`). Imported in each worker after fork (preload_app is off),
so DuckDB, SQLite and the WAL are opened per worker, never inherited from the master."""

from __future__ import annotations

from countdb.api.app import create_app
from countdb.api.services import Services
from countdb.config import Settings

services = Services.open(Settings.from_env())
app = create_app(services)

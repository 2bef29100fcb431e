"""Command line: `count-server` (gunicorn with Count's config) and `countdb config|migrate|serve`."""

from __future__ import annotations

import argparse
import json
import sys

from countdb.config import Settings
from countdb.errors import ConfigError, CountError


def _settings_or_exit(program: str) -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as error:
        print(f"{program}: invalid configuration: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def serve_main() -> None:
    """Validate the environment, then hand over to gunicorn with countdb.api.gunicorn_conf."""
    _settings_or_exit("count-server")
    from gunicorn.app.wsgiapp import run

    sys.argv = ["count-server", "-c", "python:countdb.api.gunicorn_conf"]
    run()


def _config(args) -> int:
    settings = _settings_or_exit("countdb config")
    print(json.dumps(settings.describe(), indent=2))
    from countdb.datadir import DataDir

    datadir = DataDir(settings.data_dir)
    if datadir.root.exists() and not datadir.create().is_writable():
        print(f"countdb config: DATA_DIR {datadir.root} is not writable", file=sys.stderr)
        return 1
    print("configuration OK", file=sys.stderr)
    return 0


def _migrate(args) -> int:
    from countdb.catalog.migrate import migrate
    from countdb.datadir import DataDir

    settings = _settings_or_exit("countdb migrate")
    applied = migrate(DataDir(settings.data_dir).create().catalog_path)
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="countdb", description="Count time-series store")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the server (same as count-server)")
    commands.add_parser("config", help="print the effective configuration and check it")
    commands.add_parser("migrate", help="create or upgrade the catalog in DATA_DIR")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve_main()
        return
    try:
        raise SystemExit({"config": _config, "migrate": _migrate}[args.command](args))
    except CountError as error:
        print(f"countdb {args.command}: {error}", file=sys.stderr)
        raise SystemExit(1) from None

"""Applies migrations/NNNN_name.sql in order, each once, recorded in schema_migrations.

Invariant: a migration runs inside one transaction together with its schema_migrations row.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import time
from pathlib import Path

from countdb.catalog.db import connect
from countdb.errors import CatalogError

_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql\Z")


def migrations_dir() -> Path:
    """migrations/ beside the package in a checkout, or the copy a wheel installs under share/countdb/."""
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "countdb" / "migrations"


def pending(connection: sqlite3.Connection, folder: Path) -> list[Path]:
    connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                       "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)")
    applied = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
    files = sorted(p for p in folder.iterdir() if _NAME.match(p.name))
    return [p for p in files if int(p.name[:4]) not in applied]


def migrate(catalog_path: Path, folder: Path | None = None) -> list[str]:
    """Bring the catalog up to date; returns the names applied. Safe to call from several processes."""
    folder = folder or migrations_dir()
    connection = connect(catalog_path)
    applied = []
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            for path in pending(connection, folder):
                for statement in _statements(path.read_text()):
                    connection.execute(statement)
                connection.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                                   (int(path.name[:4]), path.stem, int(time.time() * 1000)))
                applied.append(path.stem)
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            connection.execute("ROLLBACK")
            raise CatalogError(f"migration failed: {error}") from None
    finally:
        connection.close()
    return applied


def _statements(script: str) -> list[str]:
    """Split a migration into statements (sqlite3.complete_statement knows where each one ends)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]

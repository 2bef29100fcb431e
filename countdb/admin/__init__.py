"""Operator commands on a data directory — backup, restore, verify — that cli.py exposes as `countdb …`."""

"""Command line: `count-server` (gunicorn with Count's config) and
`countdb config|migrate|serve|backup|restore|verify|compact|delete|cluster status|leave|repair|token`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from dataclasses import asdict

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


def _datadir(args, program: str):
    """--data-dir if given, else DATA_DIR from the environment; raises StorageError when it doesn't exist."""
    from countdb.datadir import DataDir
    from countdb.errors import StorageError

    root = Path(args.data_dir) if args.data_dir else _settings_or_exit(program).data_dir
    if not root.is_dir():
        raise StorageError(f"no data directory at {root}", path=str(root))
    return DataDir(root)


def _verify(args) -> int:
    from countdb.admin.progress import ProgressBar
    from countdb.admin.verify import acknowledge_damage, verify

    datadir = _datadir(args, "countdb verify")
    if args.acknowledge_damage:
        print(f"forgot {acknowledge_damage(datadir)} registered damaged files (quarantined files are kept)")
        return 0
    report = verify(datadir, repair=args.repair, progress=ProgressBar(sys.stderr))
    for finding in report.findings:
        print(finding.line())
    problems = len(report.problems)
    print(f"checked {report.blocks} blocks ({report.rows} rows) and {report.segments} WAL segments in "
          f"{datadir.root}: {problems} problem{'s' * (problems != 1)}"
          + (", repaired where it could be (see the lines above)" if args.repair and problems else ""))
    return 1 if problems else 0


def _backup(args) -> int:
    from countdb.admin.backup import backup
    from countdb.admin.progress import ProgressBar, human_bytes

    datadir = _datadir(args, "countdb backup")
    report = backup(datadir, Path(args.destination), ProgressBar(sys.stderr))
    for warning in report.warnings:
        print(f"countdb backup: warning: {warning}", file=sys.stderr)
    print(f"backed up {datadir.root} to {report.destination}: {report.blocks} blocks ({report.block_rows} rows), "
          f"{report.segments} WAL segments ({report.wal_records} unflushed records), the catalog; "
          f"{human_bytes(report.bytes_written)} in {report.seconds:.1f}s"
          + (f" ({report.attempts} attempts)" if report.attempts > 1 else ""))
    return 0


def _restore(args) -> int:
    from countdb.admin.progress import ProgressBar
    from countdb.admin.restore import restore
    from countdb.datadir import DataDir

    report = restore(Path(args.source), DataDir(Path(args.data_dir)), ProgressBar(sys.stderr))
    if report.moved_aside is not None:
        print(f"countdb restore: the directory's previous contents are in {report.moved_aside}", file=sys.stderr)
    print(f"restored {args.source} into {report.datadir}: {report.blocks} blocks ({report.block_rows} rows), "
          f"{report.segments} WAL segments ({report.wal_records} records, replayed when the node starts) "
          f"in {report.seconds:.1f}s")
    return 0


def _compact(args) -> int:
    """Compact now (safe while the server runs: the node's compaction lock makes it wait its turn)."""
    from countdb.catalog.migrate import migrate
    from countdb.datadir import DataDir
    import duckdb

    from countdb.errors import StorageError
    from countdb.ingest.settled import settled_stamps
    from countdb.storage.compact import Compactor, delete_retired_files
    from countdb.wal.log import any_live_writer

    settings = _settings_or_exit("countdb compact")
    datadir = DataDir(settings.data_dir).create()
    migrate(datadir.catalog_path)
    compactor = Compactor(datadir, settings.retention_days, settings.retired_block_grace_seconds,
                          memory_limit_mb=args.memory_limit_mb, settled=settled_stamps(settings, datadir))
    try:
        try:
            report = compactor.run(force=True, months={args.month} if args.month else None, wait=True)
        except duckdb.OutOfMemoryException as error:
            raise StorageError(f"compaction ran out of memory ({str(error).splitlines()[0]}); nothing was "
                               "swapped: retry with a larger --memory-limit-mb", path=str(datadir.root)) from None
        # NOTE: checked after the swap: with no worker alive, no query holds a snapshot that lists the
        # replaced files, and any worker started later sees the new ones, so they can go now.
        if not any_live_writer(datadir.wal):
            report.deleted_files += delete_retired_files(datadir, compactor.catalog, before_ms=2**62)
    finally:
        compactor.close()
    print(json.dumps(asdict(report), indent=2))
    return 0


def _delete(args) -> int:
    """Record a tombstone, exactly as DELETE /series/{series} does."""
    import time

    from countdb.catalog.migrate import migrate
    from countdb.datadir import DataDir
    from countdb.ingest.delete import delete_points

    settings = _settings_or_exit("countdb delete")
    datadir = DataDir(settings.data_dir).create()
    migrate(datadir.catalog_path)
    tombstone = delete_points(datadir, args.series, args.start, args.end, time.time_ns())
    print(json.dumps({"series": tombstone.series, "start": tombstone.start_ms, "end": tombstone.end_ms,
                      "seq": tombstone.seq}))
    return 0


def _cluster(args) -> int:
    """Ask this node (BIND_ADDRESS, signed with CLUSTER_SECRET) for its view of the cluster, to leave it, or to
    repair now."""
    from countdb.cluster.peers import PeerClient, local_address

    settings = _settings_or_exit("countdb cluster")
    if not settings.cluster_enabled:
        print("countdb cluster: this node is not clustered (CLUSTER_ENABLED is false)", file=sys.stderr)
        return 2
    # NOTE: a repair or a leave can take minutes on a large node: the request waits as long as the command
    client = PeerClient(settings.cluster_nodes, settings.node_index, settings.cluster_secret, 3600.0,
                        local_address(settings.bind_host, settings.bind_port))
    try:
        return {"status": _cluster_status, "leave": _cluster_leave,
                "repair": _cluster_repair}[args.cluster_command](args, client, settings.node_index)
    finally:
        client.close()


def _cluster_status(args, client, me: int) -> int:
    import time

    from countdb.cluster.status import render_status

    status = client.call(me, "GET", "/cluster/status").json()
    print(json.dumps(status, indent=2) if args.json else render_status(status, time.time()))
    return 0 if status["majority"] else 1


def _cluster_leave(args, client, me: int) -> int:
    """Start leaving, then follow the change until this node holds nothing (or --no-wait)."""
    import time

    from countdb.cluster.status import ring_lines

    client.call(me, "POST", "/cluster/leave")
    status = client.call(me, "GET", "/cluster/status").json()
    while args.wait and not _left(status, me):
        if sys.stderr.isatty():
            print("\r\033[K" + " | ".join(ring_lines(status["ring"], time.time())), end="", file=sys.stderr)
        time.sleep(1)
        status = client.call(me, "GET", "/cluster/status").json()
    done = _left(status, me)
    if args.json:
        print(json.dumps({"node": me + 1, "left": done, "ring": status["ring"]}, indent=2))
    else:
        print(f"node {me + 1} {'left the cluster: it holds no series and can be stopped' if done else 'is leaving'}")
    return 0


def _left(status: dict, me: int) -> bool:
    return status["ring"]["phase"] == "settled" and not status["members"][me]["in_ring"]


def _cluster_repair(args, client, me: int) -> int:
    body = json.dumps({"node": args.node}).encode()
    report = client.call(me, "POST", "/cluster/repair", body, headers={"Content-Type": "application/json"}).json()
    if args.json:
        print(json.dumps(report, indent=2))
    for peer, moved in [] if args.json else sorted(report["peers"].items()):
        if "error" in moved:
            print(f"node {peer}: stopped: {moved['error']}")
        else:
            print(f"node {peer}: {moved['cells_differing']} of {moved['cells_compared']} cells differed; pushed "
                  f"{moved['points_pushed']} points, pulled {moved['points_pulled']}, sent {moved['tombstones_sent']} "
                  f"deletes")
    return 1 if any("error" in moved for moved in report["peers"].values()) else 0


def _token(args) -> int:
    """create | list | revoke access tokens in DATA_DIR's catalog (safe while the node runs)."""
    from datetime import datetime, timezone

    from countdb.catalog import tokens
    from countdb.catalog.db import connect
    from countdb.catalog.migrate import migrate

    datadir = _datadir(args, "countdb token").create()
    migrate(datadir.catalog_path)
    connection = connect(datadir.catalog_path)
    try:
        if args.action == "create":
            given = sys.stdin.readline().strip() if args.from_stdin else None
            token, info = tokens.create_token(connection, args.name, tokens.parse_scopes(args.scopes), given)
            print(token)
            print(f"countdb token: created {info.token_id} ({info.name}; scopes {','.join(sorted(info.scopes))}). "
                  "This is the only time the token is shown: store it now.", file=sys.stderr)
            return 0
        if args.action == "revoke":
            revoked = tokens.revoke_tokens(connection, args.token)
            for info in revoked:
                print(f"revoked {info.token_id} ({info.name})")
            if not revoked:
                print(f"countdb token: no valid token has the id or name {args.token!r}", file=sys.stderr)
            return 0 if revoked else 1
        for info in tokens.list_tokens(connection):
            when = datetime.fromtimestamp(info.created_ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            state = "revoked" if info.revoked_ms is not None else "valid"
            print(f"{info.token_id}  {state:7}  {','.join(sorted(info.scopes)):16}  {when}  {info.name}")
        return 0
    finally:
        connection.close()


def _month(text: str) -> str:
    from countdb.model import YearMonth

    try:
        return str(YearMonth.parse(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYY-MM month") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="countdb", description="Count time-series store")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the server (same as count-server)")
    commands.add_parser("config", help="print the effective configuration and check it")
    commands.add_parser("migrate", help="create or upgrade the catalog in DATA_DIR")
    save = commands.add_parser("backup", help="consistent backup of a running node's data directory")
    save.add_argument("destination", help="a new folder, or a file ending .tar.gz or .tgz")
    save.add_argument("--data-dir", help="the data directory (default: DATA_DIR)")
    load = commands.add_parser("restore", help="rebuild a data directory from a backup (the node must be stopped)")
    load.add_argument("source", help="a backup folder or .tar.gz written by `countdb backup`")
    load.add_argument("--data-dir", required=True,
                      help="the directory to restore into; what it held is moved into pre-restore-<time>/")
    check = commands.add_parser("verify", help="check a data directory (exit 1 on any problem); safe while it runs")
    check.add_argument("--data-dir", help="the data directory (default: DATA_DIR)")
    check.add_argument("--repair", action="store_true",
                       help="quarantine damaged blocks and stray files (moved to node_state/quarantine, never deleted)")
    check.add_argument("--acknowledge-damage", action="store_true",
                       help="forget the registered damage so /health says healthy again; checks nothing")
    compact = commands.add_parser("compact", help="merge small blocks, apply deletes and retention now")
    compact.add_argument("--month", type=_month, help="only this UTC month (YYYY-MM)")
    compact.add_argument("--memory-limit-mb", type=int, default=1024,
                         help="DuckDB memory for the merge sort (default 1024; the background compactor uses 128)")
    delete = commands.add_parser("delete", help="delete a series' points (bounds in ms, inclusive)")
    delete.add_argument("series", help="canonical series key, e.g. 'cpu{host=\"a\"}'")
    delete.add_argument("--start", type=int, help="first ms to delete (default: the beginning)")
    delete.add_argument("--end", type=int, help="last ms to delete (default: the end)")
    cluster = commands.add_parser("cluster", help="cluster operations on this node")
    cluster_commands = cluster.add_subparsers(dest="cluster_command", required=True)
    status = cluster_commands.add_parser("status", help="members, states, ring shares, hints, anti-entropy "
                                                        "(exit 1 when this node is in a minority)")
    status.add_argument("--json", action="store_true", help="the status document as JSON")
    leave = cluster_commands.add_parser("leave", help="move this node's series to the other nodes, after which it "
                                                      "can be stopped and removed from CLUSTER_NODES")
    leave.add_argument("--no-wait", dest="wait", action="store_false", help="start leaving and return at once")
    leave.add_argument("--json", action="store_true", help="the outcome as JSON")
    repair = cluster_commands.add_parser("repair", help="an anti-entropy round now with every co-owner (exit 1 if "
                                                        "a node could not be repaired)")
    repair.add_argument("--node", type=int, help="only with this node (its number in CLUSTER_NODES)")
    repair.add_argument("--json", action="store_true", help="what moved, as JSON")
    token = commands.add_parser("token", help="create, list or revoke access tokens (AUTH_REQUIRED)")
    token_actions = token.add_subparsers(dest="action", required=True)
    create = token_actions.add_parser("create", help="make a token; it is printed once, on stdout")
    create.add_argument("name", help="who or what uses it, e.g. telegraf")
    create.add_argument("--scopes", default="write",
                        help="comma-separated: write, read, admin (admin also allows read and write); default write")
    create.add_argument("--from-stdin", action="store_true",
                        help="register the token read from stdin (made on another node) instead of a new one, "
                             "so one token works on every node of a cluster")
    revoke = token_actions.add_parser("revoke", help="revoke a token by id, or every valid token with a name")
    revoke.add_argument("token", help="the token's id (from `countdb token list`) or name")
    token_actions.add_parser("list", help="every token: id, valid/revoked, scopes, created (UTC), name")
    for action in (create, revoke, token_actions.choices["list"]):
        action.add_argument("--data-dir", help="the data directory (default: DATA_DIR)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve_main()
        return
    try:
        raise SystemExit({"config": _config, "migrate": _migrate, "backup": _backup, "restore": _restore,
                          "verify": _verify, "compact": _compact, "delete": _delete,
                          "cluster": _cluster, "token": _token}[args.command](args))
    except (CountError, OSError) as error:  # OSError: a destination that can't be written, a full disk…
        print(f"countdb {args.command}: {error}", file=sys.stderr)
        raise SystemExit(1) from None

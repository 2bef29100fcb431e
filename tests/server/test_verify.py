"""`countdb verify` on real data directories (written by a real server, then damaged): it catches each
kind of damage, exits 1, changes nothing unless asked to repair, and --repair quarantines what is bad."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys

import pytest

from countdb.model import YearMonth
from countdb.wal.segment import HEADER, read_segment

SERIES = "verify.me"
MONTHS = [YearMonth(2024, n) for n in (1, 2, 3)]
UNFLUSHED_REQUESTS = 6


@pytest.fixture(scope="module")
def pristine(count_server, tmp_path_factory):
    """A data directory with one block per month and a dead worker's WAL of several records."""
    node = count_server(WORKERS=1, MEMORY_BUFFER_SIZE=100_000)
    for month in MONTHS:
        points = [{"series": SERIES, "timestamp": month.start_ms() + i, "value": float(i)} for i in range(100)]
        assert node.post("/insert", json=points).status_code == 201
    assert node.stop() == 0
    node = count_server(data_dir=node.data_dir, WORKERS=1, MEMORY_BUFFER_SIZE=100_000)
    for i in range(UNFLUSHED_REQUESTS):
        point = {"series": SERIES, "timestamp": MONTHS[0].start_ms() + 1000 + i, "value": 1.0}
        assert node.post("/insert", json=point).status_code == 201
    node.kill_all()
    return node.data_dir


@pytest.fixture
def data_dir(pristine, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(pristine, copy)
    return copy


def verify(data_dir, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "countdb", "verify", "--data-dir", str(data_dir), *flags],
                          capture_output=True, text=True, timeout=120)


def problem_lines(result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("PROBLEM")]


def blocks(data_dir) -> list:
    return sorted((data_dir / "time_blocks").glob("*/points-*.parquet"))


def segment(data_dir):
    (path,) = [p for p in (data_dir / "wal").glob("*/*.wal") if p.stat().st_size > 8]
    return path


def tree_digest(root) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def catalog(data_dir) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "series_index" / "catalog.sqlite", isolation_level=None)


def test_a_clean_data_directory_verifies(data_dir):
    result = verify(data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert problem_lines(result) == []
    assert "checked 3 blocks (300 rows) and 1 WAL segments" in result.stdout


def test_a_missing_block_is_a_problem(data_dir):
    gone = blocks(data_dir)[0]
    gone.unlink()
    result = verify(data_dir)
    assert result.returncode == 1
    (line,) = problem_lines(result)
    assert line.split()[1] == "missing" and str(gone.relative_to(data_dir)) in line


def test_a_flipped_byte_is_a_checksum_mismatch(data_dir):
    block = blocks(data_dir)[1]
    data = bytearray(block.read_bytes())
    data[len(data) // 2] ^= 0x01
    block.write_bytes(bytes(data))
    result = verify(data_dir)
    assert result.returncode == 1
    (line,) = problem_lines(result)
    assert line.split()[1] == "checksum" and block.name in line


def test_a_truncated_block_is_a_size_problem(data_dir):
    block = blocks(data_dir)[2]
    block.write_bytes(block.read_bytes()[:100])
    (line,) = problem_lines(verify(data_dir))
    assert line.split()[1] == "size" and "100 bytes" in line


def test_a_row_count_that_disagrees_with_the_file_is_a_problem(data_dir):
    with catalog(data_dir) as connection:
        connection.execute("UPDATE blocks SET rows = rows + 1 WHERE path LIKE 'time_blocks/2024-02/%'")
    (line,) = problem_lines(verify(data_dir))
    assert line.split()[1] == "rows" and "100 rows where the catalog says 101" in line


def test_files_the_catalog_does_not_list_are_orphans_or_leftovers(data_dir):
    original = blocks(data_dir)[0]
    shutil.copy(original, original.with_name("points-00000000000000000001-0badf00d.parquet"))
    shutil.copy(original, original.with_name(".tmp-points-00000000000000000002-0badf00d.parquet"))
    result = verify(data_dir)
    assert result.returncode == 1
    assert sorted(line.split()[1] for line in problem_lines(result)) == ["leftover", "orphan"]


def test_an_unreadable_wal_record_is_a_problem_with_its_offset(data_dir):
    path = segment(data_dir)
    frames, _, _ = read_segment(path)
    data = bytearray(path.read_bytes())
    data[frames[2].offset + HEADER.size] ^= 0xFF
    path.write_bytes(bytes(data))
    (line,) = problem_lines(verify(data_dir))
    assert line.split()[1] == "wal:bad_crc" and f"offset {frames[2].offset}" in line


def test_a_torn_tail_of_the_last_segment_is_only_a_note(data_dir):
    path = segment(data_dir)
    path.write_bytes(path.read_bytes()[:-5])
    result = verify(data_dir)
    assert result.returncode == 0 and "NOTE     wal:torn_tail" in result.stdout


def test_a_damaged_catalog_is_a_problem(data_dir):
    path = data_dir / "series_index" / "catalog.sqlite"
    data = bytearray(path.read_bytes())
    data[4096:8192] = b"\xff" * 4096  # page 2 onward: the header still says SQLite
    path.write_bytes(bytes(data))
    result = verify(data_dir)
    assert result.returncode == 1
    (line,) = problem_lines(result)
    assert line.split()[1] == "catalog"


def test_verify_changes_nothing_even_when_it_finds_problems(data_dir):
    blocks(data_dir)[0].unlink()
    shutil.copy(blocks(data_dir)[0], blocks(data_dir)[0].with_name("points-00000000000000000001-0badf00d.parquet"))
    before = tree_digest(data_dir)
    assert verify(data_dir).returncode == 1
    after = tree_digest(data_dir)
    after.pop("node_state/flush.lock", None)  # the lock it holds while it lists files (empty, not data)
    before.pop("node_state/flush.lock", None)
    assert after == before


def test_repair_quarantines_bad_files_and_leaves_a_directory_that_verifies(data_dir, count_server):
    missing, corrupt, kept = blocks(data_dir)
    missing.unlink()
    corrupt.write_bytes(corrupt.read_bytes()[:-20])
    orphan = kept.with_name("points-00000000000000000001-0badf00d.parquet")
    shutil.copy(kept, orphan)
    wal = segment(data_dir)
    frames, _, _ = read_segment(wal)
    data = bytearray(wal.read_bytes())
    data[frames[3].offset + HEADER.size] ^= 0xFF
    wal.write_bytes(bytes(data))

    result = verify(data_dir, "--repair")
    assert result.returncode == 1  # it found problems (and repaired them)
    assert len(problem_lines(result)) == 4 and all("[" in line for line in problem_lines(result))
    quarantine = data_dir / "node_state" / "quarantine"
    assert (quarantine / corrupt.relative_to(data_dir)).exists() and (quarantine / orphan.relative_to(data_dir)).exists()
    assert not corrupt.exists() and not orphan.exists() and kept.exists()
    assert wal.stat().st_size == frames[3].offset  # cut where the damage starts
    with catalog(data_dir) as connection:
        assert connection.execute("SELECT count(*) FROM blocks").fetchone() == (1,)
        assert connection.execute("SELECT count(*) FROM damaged_files").fetchone() == (3,)  # 2 blocks, 1 segment

    again = verify(data_dir)
    assert again.returncode == 0, again.stdout
    assert again.stdout.count("NOTE     damaged") == 3  # registered damage is reported, not a problem any more

    node = count_server(data_dir=data_dir, WORKERS=1)
    health = node.get("/health").json()
    assert health["status"] == "degraded" and health["damaged_files"] == 3
    answer = node.get(f"/query/range/{SERIES}", params={"start": 0, "end": MONTHS[2].end_ms()}).json()
    assert len(answer) == 100 + 3  # the intact month, and the 3 WAL records before the damage
    assert verify(data_dir, "--acknowledge-damage").returncode == 0
    assert node.get("/health").json()["status"] == "healthy"
    node.stop()

"""WAL segments: round trips, and table-driven damage with the number of records that survive."""

from __future__ import annotations

import errno
import os

import pyarrow as pa
import pytest

from countdb.wal.log import WriteAheadLog, oldest_unflushed_stamp
from countdb.wal.record import Columns, decode_points, encode_points
from countdb.wal.segment import HEADER, MAGIC, first_stamp, read_segment


def write_records(tmp_path, count: int):
    wal = WriteAheadLog(tmp_path / "wal")
    for i in range(count):
        wal.append_unsynced(*_record(i))
    path = wal.current_path
    wal.close()
    return path


def _record(i: int):
    record_type, payload = encode_points(Columns([f"s{i}"], [i], [float(i)]))
    return record_type, i, payload


def test_records_round_trip(tmp_path):
    path = write_records(tmp_path, 5)
    frames, end, problem = read_segment(path)
    assert problem is None and end == path.stat().st_size
    assert [decode_points(f.record_type, f.payload).series for f in frames] == [[f"s{i}"] for i in range(5)]
    assert [f.seq for f in frames] == list(range(5))


def _frame_offsets(path):
    frames, _, _ = read_segment(path)
    return [f.offset for f in frames]


DAMAGE = {
    # name: (how to damage the bytes of a 5-record segment, records that survive, problem kind)
    "torn_tail": (lambda data, offs: data[:-3], 4, "torn_tail"),
    "truncated_header": (lambda data, offs: data[: offs[4] + HEADER.size - 2], 4, "torn_tail"),
    "bad_crc": (lambda data, offs: _flip(data, offs[2] + HEADER.size + 1), 2, "bad_crc"),
    "bad_length": (lambda data, offs: data[: offs[1]] + b"\xff\xff\xff\xff" + data[offs[1] + 4:], 1, "bad_length"),
    "bad_magic": (lambda data, offs: b"XXXXXXXX" + data[len(MAGIC):], 0, "bad_magic"),
}


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_segments_keep_the_records_before_the_damage(tmp_path, kind):
    path = write_records(tmp_path, 5)
    damage, survivors, problem_kind = DAMAGE[kind]
    path.write_bytes(damage(path.read_bytes(), _frame_offsets(path)))
    frames, end, problem = read_segment(path)
    assert len(frames) == survivors
    assert problem is not None and problem.kind == problem_kind


def test_close_removes_a_writer_folder_that_holds_no_records(tmp_path):
    wal = WriteAheadLog(tmp_path / "wal")
    folder = wal.dir
    wal.rotate()
    wal.close()
    assert not folder.exists()


def test_group_commit_syncs_everything_written_before_it(tmp_path):
    wal = WriteAheadLog(tmp_path / "wal")
    wal.append(*_record(1))
    position = wal.append_unsynced(*_record(2))
    wal.sync_to(position)
    assert wal._synced_total == position
    wal.close()


def test_a_failed_append_is_cut_off_so_later_records_stay_readable(tmp_path, monkeypatch):
    wal = WriteAheadLog(tmp_path / "wal")
    wal.append_unsynced(*_record(0))
    real_writev = os.writev

    def disk_full_after_some_bytes(fd, views):
        real_writev(fd, [bytes(views[0][:5])])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", disk_full_after_some_bytes)
    with pytest.raises(OSError):
        wal.append_unsynced(*_record(1))
    monkeypatch.setattr(os, "writev", real_writev)
    wal.append_unsynced(*_record(2))
    path = wal.current_path
    wal.close()
    frames, _, problem = read_segment(path)
    assert problem is None
    assert [f.seq for f in frames] == [0, 2]


def test_an_arrow_batch_record_round_trips_without_copying_through_bytes(tmp_path):
    batch = pa.record_batch([pa.array(["a", "b"]), pa.array([1, 2], pa.int64()), pa.array([0.5, 1.5])],
                            names=["series", "ts", "value"])
    wal = WriteAheadLog(tmp_path / "wal")
    record_type, payload = encode_points(batch)
    wal.append_unsynced(record_type, 7, payload)
    path = wal.current_path
    wal.close()
    (frame,), _, problem = read_segment(path)
    assert problem is None and decode_points(frame.record_type, frame.payload).equals(batch)


def test_the_oldest_unflushed_stamp_is_the_first_frame_of_the_oldest_segment_on_disk(tmp_path):
    root = tmp_path / "wal"
    assert oldest_unflushed_stamp(root) is None
    first, second = WriteAheadLog(root), WriteAheadLog(root)
    assert oldest_unflushed_stamp(root) is None  # segments with no frame yet
    record_type, payload = encode_points(Columns(["s"], [1], [1.0]))
    first.append_unsynced(record_type, 500, payload)
    second.append_unsynced(record_type, 300, payload)
    second.append_unsynced(record_type, 400, payload)
    sealed = second.rotate()
    second.append_unsynced(record_type, 700, payload)
    assert first_stamp(sealed) == 300 and oldest_unflushed_stamp(root) == 300
    sealed.unlink()  # flushed: published, then deleted
    assert oldest_unflushed_stamp(root) == 500
    assert first_stamp(sealed) is None
    first.close()
    second.close()


def test_records_appended_together_take_one_system_call_and_keep_their_stamps(tmp_path, monkeypatch):
    wal = WriteAheadLog(tmp_path / "wal")
    wal.append_unsynced(*_record(0))  # the segment and its magic bytes first
    calls = []
    real_writev = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, views: calls.append(len(views)) or real_writev(fd, views))
    wal.append_all_unsynced([_record(i) for i in range(1, 201)])
    assert calls == [400]  # a header and a payload per record
    path = wal.current_path
    wal.close()
    frames, _, problem = read_segment(path)
    assert problem is None and [f.seq for f in frames] == list(range(201))


def test_more_records_than_one_writev_takes_are_all_written(tmp_path):
    wal = WriteAheadLog(tmp_path / "wal")
    wal.append_all_unsynced([_record(i) for i in range(600)])  # 1,200 buffers: over IOV_MAX
    path = wal.current_path
    wal.close()
    frames, _, problem = read_segment(path)
    assert problem is None and [f.seq for f in frames] == list(range(600))


def test_records_appended_together_that_meet_a_full_disk_leave_none_of_them(tmp_path, monkeypatch):
    wal = WriteAheadLog(tmp_path / "wal")
    wal.append_unsynced(*_record(0))
    real_writev = os.writev

    def disk_full_after_two_records(fd, views):
        real_writev(fd, views[:4])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", disk_full_after_two_records)
    with pytest.raises(OSError):
        wal.append_all_unsynced([_record(i) for i in range(1, 4)])
    monkeypatch.setattr(os, "writev", real_writev)
    wal.append_unsynced(*_record(4))
    path = wal.current_path
    wal.close()
    frames, _, problem = read_segment(path)
    assert problem is None and [f.seq for f in frames] == [0, 4]

"""DiskSpace.check (storage/space.py): it looks at the filesystem at every check near the limit, and trusts a
roomy look for TRUST_SECONDS."""

from __future__ import annotations

import pytest

from countdb.errors import StorageFull
from countdb.storage import space
from countdb.storage.space import ROOMY_BYTES, TRUST_SECONDS, DiskSpace

MIN_FREE = 100 * 2**20


class Looked(DiskSpace):
    """A DiskSpace whose free bytes are set by the test, counting how often it looked."""

    def __init__(self, free: int):
        super().__init__(root=None, min_free_bytes=MIN_FREE)
        self.free, self.looks = free, 0

    def usage(self) -> tuple[int, int]:
        self.looks += 1
        return self.free, 10 * self.free


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(space.time, "monotonic", lambda: now[0])
    return now


def test_a_roomy_look_is_trusted_until_it_is_stale(clock):
    disk = Looked(MIN_FREE + ROOMY_BYTES)
    for _ in range(5):
        disk.check()
    assert disk.looks == 1
    clock[0] += TRUST_SECONDS
    disk.check()
    assert disk.looks == 2


def test_near_the_limit_every_check_looks(clock):
    disk = Looked(MIN_FREE + ROOMY_BYTES - 1)
    for _ in range(5):
        disk.check()
    assert disk.looks == 5


def test_a_disk_that_filled_within_the_trusted_second_is_seen_once_it_is_stale(clock):
    disk = Looked(MIN_FREE + ROOMY_BYTES)
    disk.check()
    disk.free = MIN_FREE - 1
    clock[0] += TRUST_SECONDS
    for _ in range(3):
        with pytest.raises(StorageFull):
            disk.check()
    assert disk.looks == 4

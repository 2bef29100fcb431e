"""BlockPath: the one place block file names are built and parsed.

time_blocks/<YYYY-MM>/<kind>-<max_seq:020d>-<token>.parquet; names sort by the newest write they hold.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from countdb.model import YearMonth

TIME_BLOCKS = "time_blocks"
_NAME = re.compile(r"(points|shadow)-(\d{20})-([0-9a-f]{8})\.parquet\Z")
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class BlockPath:
    month: YearMonth
    kind: str
    max_seq: int
    token: str

    @classmethod
    def new(cls, month: YearMonth, kind: str, max_seq: int) -> "BlockPath":
        return cls(month, kind, max_seq, secrets.token_hex(4))

    @classmethod
    def parse(cls, relative: str) -> "BlockPath":
        """Inverse of `relative`; raises ValueError for anything that is not a block path."""
        parts = Path(relative).parts
        if len(parts) != 3 or parts[0] != TIME_BLOCKS:
            raise ValueError(f"not a block path: {relative!r}")
        match = _NAME.match(parts[2])
        if match is None:
            raise ValueError(f"not a block file name: {parts[2]!r}")
        return cls(YearMonth.parse(parts[1]), match.group(1), int(match.group(2)), match.group(3))

    @property
    def relative(self) -> str:
        return f"{TIME_BLOCKS}/{self.month}/{self.kind}-{self.max_seq:020d}-{self.token}.parquet"

    def under(self, root: Path) -> Path:
        return root / self.relative

    def tmp_under(self, root: Path) -> Path:
        """The temporary name the block is written under before its atomic rename."""
        final = self.under(root)
        return final.with_name(TMP_PREFIX + final.name)

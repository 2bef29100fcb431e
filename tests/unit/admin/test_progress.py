"""The progress bar draws on a terminal only, and ends its line when the job finishes."""

from __future__ import annotations

import io

from countdb.admin.progress import ProgressBar, human_bytes


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_that_ends_with_its_line():
    screen = Terminal()
    bar = ProgressBar(screen)
    bar.start("backup", 4 * 1024 * 1024)
    bar.advance(1024 * 1024)
    bar.advance(3 * 1024 * 1024)
    bar.finish()
    last = screen.getvalue().split("\r")[-1]
    assert last == f"backup [{'#' * 30}] 100% 4.0 MiB / 4.0 MiB\n"


def test_a_pipe_or_log_file_gets_nothing():
    log = io.StringIO()
    bar = ProgressBar(log)
    bar.start("verify", 100)
    bar.advance(100)
    bar.finish()
    assert log.getvalue() == ""


def test_sizes_are_human():
    assert [human_bytes(n) for n in (0, 1023, 1536, 5 * 1024**3)] == ["0 B", "1023 B", "1.5 KiB", "5.0 GiB"]

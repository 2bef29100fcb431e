"""Coverage-guided fuzzing (atheris) of every parser and decoder, a few seconds each (bench/contract/fuzz.py),
and the inputs it found that once crashed, kept as regression cases (tests/contract/regressions/)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `bench` is a folder of the repo, not a package
from bench.contract.fuzz import fuzz_target  # noqa: E402
from bench.contract.fuzz_targets import TARGETS, run_once, seeds  # noqa: E402
from countdb.errors import InvalidInput  # noqa: E402
from countdb.ingest.parse import parse_arrow, parse_csv  # noqa: E402
from countdb.query.buckets import parse_step  # noqa: E402
from countdb.wal.record import decode_points  # noqa: E402

SECONDS_PER_TARGET = 1
FUZZ_SEED = 14  # repeatable here; the long run (python -m bench.contract.fuzz) draws new seeds
REGRESSIONS = Path(__file__).parent / "regressions"
ONE_INPUT_SECONDS = 5


@pytest.mark.timeout(120)
@pytest.mark.parametrize("target", list(TARGETS))
def test_fuzzing_finds_no_crash_or_hang(target, tmp_path):
    if importlib.util.find_spec("atheris") is None:  # no wheel for this platform (pyproject.toml)
        if os.environ.get("CI") == "true":
            pytest.fail("atheris is not installed (CI must install the test extras)")
        pytest.skip("atheris is not installed (Linux only)")
    run = fuzz_target(target, SECONDS_PER_TARGET, tmp_path, timeout_seconds=ONE_INPUT_SECONDS, seed=FUZZ_SEED)
    assert run.ok and not run.artifacts, run.output[-6000:]
    assert run.runs > 100, run.output[-3000:]  # it really fuzzed, not just started


@pytest.mark.parametrize("target", list(TARGETS))
def test_seed_inputs_are_accepted_quickly(target):
    for seed in seeds(target):
        run_once(target, seed, ONE_INPUT_SECONDS)


@pytest.mark.parametrize("path", sorted(REGRESSIONS.iterdir()), ids=lambda path: path.stem)
def test_a_once_crashing_input_is_handled(path):
    run_once(path.stem.split("-")[0], path.read_bytes(), ONE_INPUT_SECONDS)


@pytest.mark.parametrize("name", ["arrow-int128-not-implemented", "arrow-negative-string-offsets",
                                  "arrow-field-name-not-utf8"])
def test_a_malformed_arrow_stream_is_invalid_input(name):
    with pytest.raises(InvalidInput, match="not an Arrow IPC stream"):
        parse_arrow((REGRESSIONS / f"{name}.bin").read_bytes(), 1000)


def test_a_bare_carriage_return_in_csv_is_invalid_input_naming_the_line():
    with pytest.raises(InvalidInput, match="line 1: not valid CSV") as error:
        parse_csv((REGRESSIONS / "csv-bare-carriage-return.bin").read_bytes(), 1000)
    assert error.value.line == 1


@pytest.mark.parametrize("name", ["wal_payload-array-length-mismatch", "wal_payload-read-out-of-bounds",
                                  "wal_payload-end-of-stream"])
def test_a_malformed_wal_payload_raises_value_error_only(name):
    data = (REGRESSIONS / f"{name}.bin").read_bytes()
    with pytest.raises(ValueError):
        decode_points(1 + data[0] % 3, data[1:])


def test_a_step_of_thousands_of_digits_is_invalid_input():
    with pytest.raises(InvalidInput, match="step"):
        parse_step("9" * 5000 + "ms")
    assert parse_step("1h30m") == 5_400_000

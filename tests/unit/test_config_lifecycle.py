"""RETENTION_DAYS and COMPACTION_INTERVAL_SECONDS: 0 is allowed (keep forever / no background compaction),
anything else must be a plain non-negative number; the retired-file grace follows QUERY_TIMEOUT_SECONDS."""

from __future__ import annotations

import pytest

from countdb.config import Settings
from countdb.errors import ConfigError


def test_defaults_keep_everything_and_compact_in_the_background():
    settings = Settings.from_env({})
    assert (settings.retention_days, settings.compaction_interval_seconds) == (0, 30.0)


def test_zero_and_positive_values_are_accepted():
    settings = Settings.from_env({"RETENTION_DAYS": "30", "COMPACTION_INTERVAL_SECONDS": "0"})
    assert (settings.retention_days, settings.compaction_interval_seconds) == (30, 0.0)
    assert Settings.from_env({"RETENTION_DAYS": "0", "COMPACTION_INTERVAL_SECONDS": "2.5"}).retention_days == 0


@pytest.mark.parametrize("variable, value", [
    ("RETENTION_DAYS", "-1"), ("RETENTION_DAYS", "1.5"), ("RETENTION_DAYS", "week"),
    ("COMPACTION_INTERVAL_SECONDS", "-1"), ("COMPACTION_INTERVAL_SECONDS", "nan"), ("COMPACTION_INTERVAL_SECONDS", "inf"),
])
def test_a_bad_value_names_its_variable(variable, value):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: value})
    assert raised.value.variable == variable


def test_retired_blocks_outlive_the_longest_query():
    assert Settings.from_env({"QUERY_TIMEOUT_SECONDS": "5"}).retired_block_grace_seconds == 10

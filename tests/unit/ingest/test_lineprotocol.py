"""Line protocol parser: every syntax feature, every rejection (with its line number), precisions."""

from __future__ import annotations

import pytest

from countdb.errors import InvalidInput
from countdb.ingest import lineprotocol
from countdb.ingest.lineprotocol import LineError, normalize_precision, parse_lines
from countdb.model import MAX_SERIES_KEY_BYTES, MAX_TAGS, MAX_TIMESTAMP_MS, series_key

NOW_NS = 1_700_000_000_123_456_789
NOW_MS = 1_700_000_000_123
TSBS_LINE = (
    "cpu,hostname=host_1,region=eu-west-1,datacenter=eu-west-1a,rack=42,os=Ubuntu16.10,arch=x64,team=SF,"
    "service=19,service_version=1,service_environment=test usage_user=58i,usage_system=2i,usage_idle=24i,"
    "usage_nice=61i,usage_iowait=22i,usage_irq=63i,usage_softirq=6i,usage_steal=44i,usage_guest=80i,"
    "usage_guest_nice=38i 1451606400000000000"
)


def parse(text: str, precision: str = "ns"):
    return parse_lines(text.encode("utf-8"), precision, NOW_NS)


def points(text: str, precision: str = "ns"):
    parsed = parse(text, precision)
    assert parsed.errors == []
    return list(zip(parsed.series, parsed.ts_ms, parsed.values))


def only_error(text: str) -> LineError:
    parsed = parse(text)
    assert parsed.series == [] and len(parsed.errors) == 1
    return parsed.errors[0]


# --- points, names and tags -----------------------------------------------------------------------------


def test_tsbs_line_gives_one_point_per_field_with_all_tags():
    parsed = parse(TSBS_LINE)
    tags = {"hostname": "host_1", "region": "eu-west-1", "datacenter": "eu-west-1a", "rack": "42",
            "os": "Ubuntu16.10", "arch": "x64", "team": "SF", "service": "19", "service_version": "1",
            "service_environment": "test"}
    assert parsed.series[0] == series_key("cpu.usage_user", tags)
    assert parsed.series[-1] == series_key("cpu.usage_guest_nice", tags)
    assert parsed.values == [58.0, 2.0, 24.0, 61.0, 22.0, 63.0, 6.0, 44.0, 80.0, 38.0]
    assert parsed.ts_ms == [1_451_606_400_000] * 10
    assert parsed.lines == 1 and parsed.errors == []


def test_field_named_value_is_stored_under_the_bare_measurement():
    assert points("temp,room=a value=21.5,max=30 1000000") == [
        (series_key("temp", {"room": "a"}), 1, 21.5),
        (series_key("temp.max", {"room": "a"}), 1, 30.0),
    ]


def test_line_without_tags_gives_bare_series_names():
    assert points("load value=1,avg=2 5000000") == [("load", 5, 1.0), ("load.avg", 5, 2.0)]


def test_tags_are_sorted_into_the_canonical_key_whatever_their_order():
    assert points("m,b=2,a=1 f=1 0") == points("m,a=1,b=2 f=1 0") == [('m.f{a="1",b="2"}', 0, 1.0)]


def test_same_series_prefix_with_other_fields_reuses_nothing_wrong():
    assert points("m,a=1 value=1 0\nm,a=1 x=2 0\nm,a=1 value=3,x=4 0") == [
        ('m{a="1"}', 0, 1.0), ('m.x{a="1"}', 0, 2.0), ('m{a="1"}', 0, 3.0), ('m.x{a="1"}', 0, 4.0)]


# --- field values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, value", [
    ("1", 1.0), ("-1", -1.0), ("1.5", 1.5), ("-0.25", -0.25), ("1e3", 1000.0), ("1.5E-3", 0.0015),
    ("-2e+2", -200.0), ("12i", 12.0), ("-12i", -12.0), ("7u", 7.0), ("9223372036854775807i", 9.223372036854776e18),
    ("-9223372036854775808i", -9.223372036854776e18), ("18446744073709551615u", 1.8446744073709552e19),
])
def test_numeric_field_values_become_floats(raw, value):
    assert points(f"m f={raw} 0") == [("m.f", 0, value)]


@pytest.mark.parametrize("raw", ["t", "T", "true", "True", "TRUE"])
def test_true_spellings_are_one(raw):
    assert points(f"m f={raw} 0") == [("m.f", 0, 1.0)]


@pytest.mark.parametrize("raw", ["f", "F", "false", "False", "FALSE"])
def test_false_spellings_are_zero(raw):
    assert points(f"m f={raw} 0") == [("m.f", 0, 0.0)]


def test_string_fields_are_counted_and_not_stored():
    parsed = parse('m a="x, y=z \\" \\\\",b=2,c="" 0')
    assert list(zip(parsed.series, parsed.values)) == [("m.b", 2.0)]
    assert parsed.string_fields == 2 and parsed.errors == []


def test_line_with_only_string_fields_is_valid_and_stores_nothing():
    parsed = parse('m s="hello world" 0')
    assert parsed.series == [] and parsed.errors == [] and parsed.string_fields == 1 and parsed.lines == 1


# --- escapes --------------------------------------------------------------------------------------------


def test_escaped_comma_and_space_in_measurement():
    assert points("my\\ cpu\\,1 value=1 0") == [("my cpu,1", 0, 1.0)]


def test_equals_sign_in_measurement_needs_no_escape_and_its_escape_stays_literal():
    assert points("a=b value=1 0\na\\=b value=2 0") == [("a=b", 0, 1.0), ("a\\=b", 0, 2.0)]


def test_escaped_comma_space_and_equals_in_tag_values():
    assert points("m,host=a\\,b\\ c\\=d value=1 0") == [(series_key("m", {"host": "a,b c=d"}), 0, 1.0)]


def test_unescaped_equals_sign_in_tag_value_is_part_of_the_value():
    assert points("m,expr=a=b value=1 0") == [(series_key("m", {"expr": "a=b"}), 0, 1.0)]


def test_escaped_characters_in_field_keys():
    assert points("m a\\ b\\,c\\=d=1 0") == [("m.a b,c=d", 0, 1.0)]


@pytest.mark.parametrize("written, meant", [
    ("\\", "\\"), ("\\\\", "\\"), ("\\\\\\", "\\\\"), ("\\\\\\\\", "\\\\"), ("\\\\\\\\\\", "\\\\\\"),
])
def test_backslashes_follow_the_reference_table(written, meant):
    assert points(f"m,t=a{written}b value=1 0") == [(series_key("m", {"t": f"a{meant}b"}), 0, 1.0)]


def test_unknown_escape_is_kept_literally():
    assert points("m\\x,t=a\\nb value=1 0") == [(series_key("m\\x", {"t": "a\\nb"}), 0, 1.0)]


def test_quotes_in_names_are_part_of_the_name():
    assert points("'m',t=\"q\" value=1 0") == [(series_key("'m'", {"t": '"q"'}), 0, 1.0)]


def test_escaped_and_plain_paths_agree_on_the_same_point():
    plain = points("m,a=b f=1i,g=2.5 7000000")
    with_string = points('m,a=b f=1i,s="x",g=2.5 7000000')
    assert plain == with_string == [('m.f{a="b"}', 7, 1.0), ('m.g{a="b"}', 7, 2.5)]


# --- lines, whitespace, comments, encodings -------------------------------------------------------------


def test_comments_and_blank_lines_are_skipped_and_not_counted():
    parsed = parse("# header\n\nm value=1 0\n   # indented comment\n \t \nm value=2 0\n")
    assert parsed.values == [1.0, 2.0] and parsed.lines == 2 and parsed.errors == []


def test_crlf_line_endings_are_tolerated():
    assert points("m value=1 1000000\r\nm value=2 2000000\r\n") == [("m", 1, 1.0), ("m", 2, 2.0)]


def test_trailing_carriage_return_without_newline_is_tolerated():
    assert points("m value=1 1000000\r") == [("m", 1, 1.0)]


def test_leading_whitespace_repeated_and_trailing_spaces_are_tolerated():
    assert points("  \tm,a=b  value=1   3000000  ") == [(series_key("m", {"a": "b"}), 3, 1.0)]


def test_missing_timestamp_uses_now():
    assert points("m value=1\nm value=2 ") == [("m", NOW_MS, 1.0), ("m", NOW_MS, 2.0)]


def test_line_that_is_not_utf8_is_one_error_and_the_others_parse():
    parsed = parse_lines(b"m value=1 0\nm,t=\xff value=2 0\nm value=3 0", "ns", NOW_NS)
    assert parsed.values == [1.0, 3.0]
    assert [(e.line_number, e.message) for e in parsed.errors] == [(2, "line is not valid UTF-8")]
    assert parsed.lines == 3


def test_empty_body_has_no_lines():
    parsed = parse_lines(b"", "ns", NOW_NS)
    assert (parsed.series, parsed.errors, parsed.lines) == ([], [], 0)


# --- timestamps and precision ---------------------------------------------------------------------------


@pytest.mark.parametrize("precision, raw, ms", [
    ("ns", 1_451_606_400_123_999_999, 1_451_606_400_123), ("us", 1_451_606_400_123_999, 1_451_606_400_123),
    ("ms", 1_451_606_400_123, 1_451_606_400_123), ("s", 1_451_606_400, 1_451_606_400_000),
    ("m", 24_193_440, 1_451_606_400_000), ("h", 403_224, 1_451_606_400_000), ("ns", 0, 0),
])
def test_precision_converts_to_milliseconds_rounding_down(precision, raw, ms):
    assert points(f"m value=1 {raw}", precision) == [("m", ms, 1.0)]


@pytest.mark.parametrize("raw, ms", [
    (1_700_000_000, 1_700_000_000_000),              # < 5e9: seconds
    (4_999_999_999, 4_999_999_999_000),
    (5_000_000_000, 5_000_000_000),                  # < 5e12: milliseconds
    (1_700_000_000_123, 1_700_000_000_123),
    (1_700_000_000_123_456, 1_700_000_000_123),      # < 5e15: microseconds
    (5_000_000_000_000_000, 5_000_000_000),          # larger: nanoseconds
    (1_700_000_000_123_456_789, 1_700_000_000_123),
])
def test_auto_precision_guesses_the_unit_from_the_magnitude(raw, ms):
    assert points(f"m value=1 {raw}", "auto") == [("m", ms, 1.0)]


def test_unknown_precision_is_invalid_input_for_the_whole_body():
    with pytest.raises(InvalidInput) as caught:
        parse_lines(b"m value=1", "fortnight", NOW_NS)
    assert caught.value.field == "precision"


@pytest.mark.parametrize("api, text, normalized", [
    ("v1", "ns", "ns"), ("v1", "n", "ns"), ("v1", "u", "us"), ("v1", "µ", "us"), ("v1", "ms", "ms"),
    ("v1", "s", "s"), ("v1", "m", "m"), ("v1", "h", "h"), ("v1", "", "ns"),
    ("v2", "ns", "ns"), ("v2", "us", "us"), ("v2", "ms", "ms"), ("v2", "s", "s"), ("v2", "", "ns"),
    ("v3", "auto", "auto"), ("v3", "nanosecond", "ns"), ("v3", "microsecond", "us"),
    ("v3", "millisecond", "ms"), ("v3", "second", "s"), ("v3", "", "auto"), ("v3", "ms", "ms"),
])
def test_normalize_precision_maps_each_apis_spellings(api, text, normalized):
    assert normalize_precision(text, api) == normalized


@pytest.mark.parametrize("api, text", [("v1", "us "), ("v1", "auto"), ("v2", "u"), ("v2", "m"), ("v2", "h"),
                                       ("v3", "m"), ("v3", "h"), ("v3", "u"), ("v4", "ns")])
def test_normalize_precision_rejects_what_the_api_does_not_accept(api, text):
    with pytest.raises(InvalidInput) as caught:
        normalize_precision(text, api)
    assert caught.value.field == "precision"


# --- rejected lines -------------------------------------------------------------------------------------

_TOO_MANY_TAGS = "m," + ",".join(f"t{i}=v" for i in range(MAX_TAGS + 1)) + " value=1 0"
_KEY_TOO_LONG = "m,t=" + "x" * MAX_SERIES_KEY_BYTES + " value=1 0"


@pytest.mark.parametrize("line, message", [
    ("m", "missing field set"),
    ("m ", "missing field set"),
    ("m,a=b", "missing field set"),
    (",a=b f=1", "missing measurement at column 1 (found ',')"),
    ("m,=b f=1", "missing tag key at column 3 (found '=')"),
    ("m,a f=1", "tag 'a' has no '=' at column 4 (found ' ')"),
    ("m,a= f=1", "missing value of tag 'a' at column 5 (found ' ')"),
    ("m, f=1", "missing tag key at column 3 (found ' ')"),
    ("m,1a=b f=1", "tag key '1a' is not allowed"),
    ("m,a\\ b=c f=1", "tag key 'a b' is not allowed"),
    ("m,a=1,a=2 f=1", "duplicate tag 'a'"),
    ("m f=1,f=2", "duplicate field 'f'"),
    ("m f=", "field 'f' has invalid value ''"),
    ("m f=abc", "field 'f' has invalid value 'abc'"),
    ("m f=1.5i", "field 'f' has invalid value '1.5i'"),
    ("m f=-1u", "field 'f' has invalid value '-1u'"),
    ("m f=+1", "field 'f' has invalid value '+1'"),
    ("m f=.5", "field 'f' has invalid value '.5'"),
    ("m f=1.", "field 'f' has invalid value '1.'"),
    ("m f=nan", "field 'f' has invalid value 'nan'"),
    ("m f=inf", "field 'f' has invalid value 'inf'"),
    ("m f=yes", "field 'f' has invalid value 'yes'"),
    ("m f=1_000", "field 'f' has invalid value '1_000'"),
    ("m f=1\t5", "field 'f' has invalid value '1\\t5'"),
    ("m f=1e400", "field 'f': 1e400 is not a finite float"),
    ("m f=-1e400", "field 'f': -1e400 is not a finite float"),
    ("m f=9223372036854775808i", "field 'f': 9223372036854775808i is out of the 64-bit range"),
    ("m f=18446744073709551616u", "field 'f': 18446744073709551616u is out of the 64-bit range"),
    ("m f=" + "9" * 5000 + "i", "is out of the 64-bit range"),
    ("m f=" + "9" * 5000 + "u", "is out of the 64-bit range"),
    ("m f=1" + "0" * 400, "is not a finite float"),
    ("m f", "field 'f' has no '=' at end of line"),
    ("m f=1,g", "field 'g' has no '=' at end of line"),
    ("m f=1,", "missing field key at end of line"),
    ("m f=1,,g=2", "missing field key at column 7 (found ',')"),
    ('m s="abc', "string field 's' has no closing quote"),
    ('m s="abc\\"', "string field 's' has no closing quote"),
    ('m s="a"b', "field 's': expected ',' or ' ' after the value at column 8 (found 'b')"),
    ("m f=1 abc", "timestamp 'abc' is not an integer of at most 19 digits"),
    ("m f=1 12a", "timestamp '12a' is not an integer of at most 19 digits"),
    ("m f=1 1.5", "timestamp '1.5' is not an integer of at most 19 digits"),
    ("m f=1 12345678901234567890", "timestamp '12345678901234567890' is not an integer of at most 19 digits"),
    ("m f=1 1 2", "unexpected text after the timestamp at column 9 (found '2')"),
    ("m f=1 -1", "timestamp -1 is -1 ms, outside 0.."),
    ("m f=1 -9223372036854775808", "outside 0.."),
    ("m{x value=1", "measurement 'm{x' contains '{'"),
    ("m a{b=1", "field 'a{b' contains '{'"),
    ("m,a=b\\", "expected ',' or ' ' after the series at column 6 (a lone trailing backslash must be"),
    (_TOO_MANY_TAGS, f"{MAX_TAGS + 1} tags, more than the limit of {MAX_TAGS}"),
    (_KEY_TOO_LONG, f"over the limit of {MAX_SERIES_KEY_BYTES}"),
])
def test_bad_line_is_rejected_with_a_precise_message(line, message):
    error = only_error(line)
    assert message in error.message
    assert (error.line_number, error.original_line) == (1, line)


def test_timestamp_just_past_the_last_millisecond_is_rejected():
    parsed = parse(f"m value=1 {MAX_TIMESTAMP_MS}\nm value=2 {MAX_TIMESTAMP_MS + 1}", "ms")
    assert parsed.ts_ms == [MAX_TIMESTAMP_MS]
    assert parsed.errors[0].line_number == 2
    assert f"is {MAX_TIMESTAMP_MS + 1} ms, outside 0..{MAX_TIMESTAMP_MS}" in parsed.errors[0].message


def test_timestamp_out_of_range_in_coarse_precision_is_rejected():
    assert "outside 0.." in parse("m value=1 9223372036854775807", "h").errors[0].message


def test_bad_lines_carry_their_line_numbers_and_do_not_stop_the_rest():
    body = "# comment\nm value=1 0\n\nm value=oops 0\nm value=2 0\r\nm,a=b,a=c value=3 0\nm value=4 0"
    parsed = parse(body)
    assert parsed.values == [1.0, 2.0, 4.0]
    assert [(e.line_number, e.original_line) for e in parsed.errors] == [
        (4, "m value=oops 0"), (6, "m,a=b,a=c value=3 0")]
    assert parsed.lines == 5


def test_bad_field_rejects_the_whole_line_including_its_good_fields():
    parsed = parse("m,a=b good=1,bad=x 0")
    assert parsed.series == [] and parsed.values == [] and len(parsed.errors) == 1


def test_string_fields_of_a_rejected_line_are_not_counted():
    assert parse('m s="x",bad=? 0').string_fields == 0


def test_now_outside_the_timestamp_range_rejects_lines_without_a_timestamp():
    parsed = parse_lines(b"m value=1\nm value=2 1000000", "ns", -5_000_000)
    assert parsed.values == [2.0] and "timestamp now is -5 ms" in parsed.errors[0].message


def test_results_stay_correct_after_the_prefix_cache_fills_up():
    count = lineprotocol._MAX_CACHED_PREFIXES + 10
    body = "\n".join(f"m,h=host{i} value={i} 0" for i in range(count)) + "\nm,h=host0 value=-1 0"
    parsed = parse(body)
    assert len(parsed.values) == count + 1 and parsed.errors == []
    assert parsed.series[-1] == parsed.series[0] == series_key("m", {"h": "host0"})
    assert len(lineprotocol._PREFIXES) <= lineprotocol._MAX_CACHED_PREFIXES

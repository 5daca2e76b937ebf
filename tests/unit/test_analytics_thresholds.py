"""Thresholds: shipped defaults, site overrides, and errors that name the bad key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from analytics.thresholds import from_document, load_thresholds
from deltasense.thresholds import ThresholdsError, default_document, merge


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site-thresholds.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_translate_the_reference_block() -> None:
    t = load_thresholds()
    # the reference block ships 6, 7, 8, 10, 12; 9 and 11 come from its cited table
    assert t.storm.wind_cap_ms == {6: 10.8, 7: 13.9, 8: 17.2, 9: 20.8, 10: 24.5, 11: 28.5, 12: 32.7}
    assert (t.storm.gust_warning_ms, t.storm.gust_critical_ms) == (17.2, 25.7)
    assert (t.storm.squall.rise_ms, t.storm.squall.peak_ms, t.storm.squall.min_s) == (8, 11, 60)
    assert t.rain.mm_24h.very_heavy == 100 and t.rain.mm_1h.heavy == 7.6
    assert t.rain.mm_3h_urban_critical == 76
    assert t.flood.street_warning_mm == 76 and t.flood.street_critical_mm == 300
    assert t.flood.max_rise_mm_per_min == 254
    ganh_hao = t.flood.canal_stations["ganh-hao"]
    assert ganh_hao.bd3_m == 2.20
    assert ganh_hao.bd1_m is None and ganh_hao.bd2_m is None  # placeholders, not made up
    assert t.lighting.dim_profile == {"22:00": 70, "00:00": 50, "05:00": 100}
    assert t.lighting.tariff_vnd_per_kwh == 2226
    assert t.health.mass_outage_fraction_of_district == 0.3
    assert t.alerting.for_.storm_s == 600 and t.alerting.for_.lighting_s == 900
    assert t.alerting.for_.flood_readings == 1  # first version: one reading fires
    assert t.alerting.keep_firing_for.default_s == 900
    assert t.alerting.keep_firing_for.flood_s == 0
    assert t.alerting.deadband.level_mm == 20


def test_placeholders_are_marked_in_the_shipped_file() -> None:
    text = (Path(__file__).parents[2] / "deltasense" / "thresholds.toml").read_text("utf-8")
    assert "PLACEHOLDER" in text and "bd1_m" in text and "bd2_m" in text


def test_override_merges_over_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[flood]
street_warning_mm = 100.0
[flood.canal_stations.ca-mau]
bd1_m = 1.0
bd2_m = 1.5
bd3_m = 2.0
[alerting.for]
flood_readings = 2
""",
    )
    t = load_thresholds(path)
    assert t.flood.street_warning_mm == 100.0
    assert t.flood.street_critical_mm == 300.0  # untouched keys keep their defaults
    assert set(t.flood.canal_stations) == {"ganh-hao", "ca-mau"}
    assert t.alerting.for_.flood_readings == 2
    assert t.alerting.for_.storm_s == 600


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[flood]\nstreet_warning_mm = 'deep'\n", "flood.street_warning_mm"),
        ("[flood]\nstreet_warnin_mm = 80\n", "flood.street_warnin_mm"),  # typo: extra key
        ("[alerting.for]\nflood_readings = 0\n", "alerting.for.flood_readings"),
        ("[alerting.deadband]\nlevel_mm = -1\n", "alerting.deadband.level_mm"),
        ("[flood]\nstreet_critical_mm = 50\n", "street_critical_mm must be above"),
        ("[flood.canal_stations.ganh-hao]\nbd1_m = 3.0\n", "bd1_m < bd2_m < bd3_m"),
        ("[flood.canal_stations.BAD]\nbd3_m = 3.0\n", "'BAD' is not a valid device id"),
        ("[lighting.dim_profile]\n'25:00' = 50\n", "'25:00' is not a HH:MM"),
        ("[alerting.deadband]\nlevel_mm = 80\n", "deadband.level_mm must be below"),
        ("flood = 3\n", "flood"),
        # NaN passes every ordering check (each comparison is false): refused as such.
        ("[storm.wind_cap_ms]\n8 = nan\n", "storm.wind_cap_ms.8"),
        ("[storm]\ngust_critical_ms = inf\n", "storm.gust_critical_ms"),
        ("[flood]\nnoise_floor_mm = nan\n", "flood.noise_floor_mm"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, names: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ThresholdsError) as info:
        load_thresholds(path)
    assert names in str(info.value)
    assert str(path) in str(info.value)


def test_malformed_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[flood]\nstreet_warning_mm = = 3\n")
    with pytest.raises(ThresholdsError, match=r"not valid TOML.*line 2") as info:
        load_thresholds(path)
    assert str(path) in str(info.value)


def test_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ThresholdsError, match="cannot read"):
        load_thresholds(tmp_path / "nope.toml")
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ThresholdsError, match="cannot read"):
        load_thresholds(binary)


def test_a_missing_section_is_named() -> None:
    document = default_document()
    del document["alerting"]
    with pytest.raises(ThresholdsError, match="alerting: Field required"):
        from_document(document)


def test_merge_is_deep_and_does_not_mutate() -> None:
    base = {"a": {"b": 1, "c": {"d": 2}}, "e": 3}
    out = merge(base, {"a": {"c": {"d": 5}}, "e": {"x": 1}})
    assert out == {"a": {"b": 1, "c": {"d": 5}}, "e": {"x": 1}}
    assert base == {"a": {"b": 1, "c": {"d": 2}}, "e": 3}


def test_shipped_file_is_valid_toml_on_its_own() -> None:
    text = (Path(__file__).parents[2] / "deltasense" / "thresholds.toml").read_text("utf-8")
    assert tomllib.loads(text) == default_document()

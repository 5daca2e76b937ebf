# firmware-test: micropython
"""Pure decisions of the node runtime: photocell, dimming profile, water event
mode, reconnect backoff."""

from ds import node


def test_photocell_hysteresis_16_and_65_lux() -> None:
    assert node.photocell(False, 15.9) is True
    assert node.photocell(True, 40) is True  # between the thresholds: unchanged
    assert node.photocell(False, 40) is False
    assert node.photocell(True, 65.1) is False
    assert node.photocell(True, None) is True  # sensor fault: keep the state


def test_dimming_profile_wraps_over_midnight() -> None:
    steps = node.parse_profile({"22:00": 70, "00:00": 50, "05:00": 100})
    assert steps == [(0, 50.0), (300, 100.0), (1320, 70.0)]
    assert node.profile_pct(steps, 21 * 60 + 59) == 100.0
    assert node.profile_pct(steps, 22 * 60) == 70.0
    assert node.profile_pct(steps, 23 * 60 + 59) == 70.0
    assert node.profile_pct(steps, 0) == 50.0
    assert node.profile_pct(steps, 4 * 60 + 59) == 50.0
    assert node.profile_pct(steps, 5 * 60) == 100.0
    late = node.parse_profile({"22:00": 70})
    assert node.profile_pct(late, 60) == 70.0  # before the only step: yesterday's level
    assert node.profile_pct([], 60) == 100.0


def test_water_event_on_warning_level_or_fast_rise() -> None:
    warn, rise = 7.6, 25
    assert node.water_event(7.6, None, 0, warn, rise) is True
    assert node.water_event(1.0, None, 0, warn, rise) is False
    # +2.5 cm in 5 min = 25 mm / 5 min: at the limit
    assert node.water_event(3.5, (0, 1.0), 300000, warn, rise) is True
    assert node.water_event(3.4, (0, 1.0), 300000, warn, rise) is False
    assert node.water_event(0.0, (0, 1.0), 60000, warn, rise) is False  # falling
    assert node.water_event(None, (0, 1.0), 60000, warn, rise) is False


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    assert node.backoff_ms(0, 300000, lambda: 0.999) == 999
    assert node.backoff_ms(3, 300000, lambda: 1.0) == 8000
    assert node.backoff_ms(40, 300000, lambda: 1.0) == 300000
    assert node.backoff_ms(5, 300000, lambda: 0.0) == 0

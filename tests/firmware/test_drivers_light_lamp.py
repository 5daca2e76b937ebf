# firmware-test: micropython
"""BH1750 light sensor and the lamp output."""

from ds.drivers import bh1750, lamp
from ds.hal_cpython import FakeI2C, FakePin, FakePWM
from fwtest import approx


def test_bh1750_one_time_high_res_and_lux() -> None:
    i2c = FakeI2C()
    i2c.reads[bh1750.ADDR_L] = [bytes((0x83, 0x90))]  # datasheet p.7 example: 0x8390 → 28067 lx
    slept = []
    lux = bh1750.BH1750(i2c).measure(slept.append)
    assert approx(lux, 28067, 1)
    assert [w[2] for w in i2c.writes] == [b"\x01", b"\x20"]
    assert slept == [180]


def test_bh1750_raw_conversion() -> None:
    assert bh1750.raw_to_lux(b"\x00\x00") == 0
    assert approx(bh1750.raw_to_lux(b"\xff\xff"), 54612.5, 0.01)


def test_lamp_dimming_relay_and_minimum() -> None:
    relay, pwm = FakePin(), FakePWM()
    out = lamp.Lamp(relay, pwm, min_pct=10)
    assert relay.value() == 0 and pwm.duty_u16() == 0 and not out.on
    out.set(70)
    assert relay.value() == 1 and pwm.duty_u16() == 45875 and out.dim_pct == 70
    out.set(3)  # below the driver's minimum: held at 10 %
    assert pwm.duty_u16() == 6554 and out.dim_pct == 10 and out.on
    out.set(150)
    assert pwm.duty_u16() == 65535 and out.dim_pct == 100
    out.set(0)
    assert relay.value() == 0 and pwm.duty_u16() == 0 and not out.on


def test_lamp_inverted_pwm_and_no_pwm() -> None:
    pwm = FakePWM()
    lamp.Lamp(FakePin(), pwm, invert=True).set(100)
    assert pwm.duty_u16() == 0
    relay = FakePin()
    lamp.Lamp(relay).set(40)
    assert relay.value() == 1
    assert lamp.duty_for(-5) == 0 and lamp.duty_for(50) == 32768

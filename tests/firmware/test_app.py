# firmware-test: micropython
"""The board entry's pure parts (ds.app) and Wi-Fi bring-up (ds.net) with a fake WLAN."""

from ds import app, clock, net
from fwtest import raises


class FakeWLAN:
    """network.WLAN in station mode: associates ``after`` polls after connect()."""

    def __init__(self, after: int = 3, connected: bool = False) -> None:
        self.after = after
        self.polls = -1 if not connected else 0
        self.calls: list = []
        self._connected = connected

    def active(self, on: "bool | None" = None) -> bool:
        self.calls.append(("active", on))
        return True

    def disconnect(self) -> None:
        self.calls.append(("disconnect",))
        self._connected = False
        self.polls = -1

    def connect(self, ssid: str, key: str) -> None:
        self.calls.append(("connect", ssid, key))
        self.polls = 0

    def isconnected(self) -> bool:
        if self._connected:
            return True
        if self.polls >= 0:
            self.polls += 1
            if self.after is not None and self.polls > self.after:
                self._connected = True
        return self._connected

    def status(self, param: "str | None" = None) -> "int":
        if param == "rssi":
            return -67
        return 1001  # STAT_CONNECTING

    def ifconfig(self) -> "tuple":
        return ("10.0.0.7", "255.255.255.0", "10.0.0.1", "10.0.0.1")


def _run(coro: "object") -> "object":
    """Run a coroutine that never really suspends (sleeps patched out)."""
    try:
        coro.send(None)  # type: ignore[attr-defined]
    except StopIteration as stop:
        return stop.value
    raise AssertionError("coroutine suspended")


def _with_instant_sleep(fn: "object") -> None:
    slept = []

    async def sleep_ms(ms: int) -> None:
        slept.append(ms)

    saved = clock.sleep_ms
    clock.sleep_ms = sleep_ms
    try:
        fn(slept)  # type: ignore[operator]
    finally:
        clock.sleep_ms = saved


def test_wifi_connects_polling_without_blocking() -> None:
    def body(slept: "list") -> None:
        w = FakeWLAN(after=3)
        wifi = net.WiFi("street-ap", "secret", wlan=w)
        _run(wifi.ensure())
        assert ("connect", "street-ap", "secret") in w.calls and ("active", True) in w.calls
        assert slept == [net.POLL_MS] * 3 and wifi.connected() and wifi.rssi() == -67
        _run(wifi.ensure())  # already up: nothing more
        assert len([c for c in w.calls if c[0] == "connect"]) == 1

    _with_instant_sleep(body)


def test_wifi_gives_up_after_its_timeout_with_an_oserror() -> None:
    def body(slept: "list") -> None:
        w = FakeWLAN(after=None)  # type: ignore[arg-type]
        wifi = net.WiFi("street-ap", "secret", wlan=w, timeout_ms=1000)
        e = raises(OSError, _run, wifi.ensure())
        assert "street-ap" in str(e) and "1001" in str(e)
        assert sum(slept) == 1000 and wifi.failures == 1 and not wifi.connected()
        assert w.calls[-1] == ("disconnect",) and wifi.rssi() is None

    _with_instant_sleep(body)


def test_wifi_without_ssid_and_the_opener() -> None:
    def body(slept: "list") -> None:
        raises(OSError, _run, net.WiFi("", "", wlan=FakeWLAN()).ensure())
        opened = []

        async def open_stream(host: str, port: int) -> str:
            opened.append((host, port))
            return "transport"

        up = net.opener(net.WiFi("ap", "pw", wlan=FakeWLAN(after=1)), open_stream)
        assert _run(up("10.0.0.2", 1883)) == "transport" and opened == [("10.0.0.2", 1883)]
        down = net.opener(
            net.WiFi("ap", "pw", wlan=FakeWLAN(after=None), timeout_ms=500), open_stream
        )  # type: ignore[arg-type]
        raises(OSError, _run, down("10.0.0.2", 1883))
        assert len(opened) == 1  # no broker connection without Wi-Fi

    _with_instant_sleep(body)


def test_board_profile_is_checked() -> None:
    raises(ValueError, app.load_profile, None)
    raises(ValueError, app.load_profile, b"[1, 2]")
    raises(ValueError, app.load_profile, b'{"board": "x"}')
    raises(ValueError, app.load_profile, b"{not json")
    good = b'{"board": "pico-w", "hw": "h", "i2c": {}, "uart_sensor": {}, "status_led": "LED"}'
    assert app.load_profile(good)["board"] == "pico-w"


def test_reset_cause_names_and_watchdog_period() -> None:
    class Machine:
        PWRON_RESET = 1
        HARD_RESET = 2
        WDT_RESET = 3
        DEEPSLEEP_RESET = 4
        SOFT_RESET = 5

    names = [app.reset_cause_name(c, Machine) for c in (1, 2, 3, 4, 5, 9)]
    assert names == ["power_on", "hard", "watchdog", "deepsleep", "soft", "unknown"]
    assert app.wdt_timeout_ms(60, {"board": "esp32-devkit"}) == 60000
    assert app.wdt_timeout_ms(60, {"board": "pico-w", "wdt_max_ms": 8388}) == 8388
    assert app.wdt_timeout_ms(5, {"wdt_max_ms": 8388}) == 5000

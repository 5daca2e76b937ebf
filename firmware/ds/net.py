"""Wi-Fi bring-up for the MQTT session (``network.WLAN``), bounded and retried.

The node's network task calls the opener made by :func:`opener` for every
connection attempt: it brings Wi-Fi up first (waiting at most
``timeout_ms``, polling without blocking the event loop), then opens the
non-blocking asyncio stream to the broker (``ds.mqtt.open_stream``:
``asyncio.open_connection`` sets the socket non-blocking). A failure is an
OSError like any network failure, so the node's reconnect loop (exponential
backoff with jitter) is the retry: no second retry policy here.
"""

from ds import clock, mqtt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WIFI_TIMEOUT_MS = 20000  # [design] association + DHCP normally take 2-8 s
POLL_MS = 250


class WiFi:
    """Station-mode Wi-Fi. ``wlan`` is injected in tests; on a board it is
    ``network.WLAN(network.STA_IF)``, made on first use."""

    def __init__(
        self, ssid: str, password: str, wlan: "Any" = None, timeout_ms: int = WIFI_TIMEOUT_MS
    ) -> None:
        self.ssid = ssid
        self.password = password
        self._wlan = wlan
        self.timeout_ms = timeout_ms
        self.attempts = 0
        self.failures = 0

    def wlan(self) -> "Any":
        if self._wlan is None:
            import network  # board only

            self._wlan = network.WLAN(network.STA_IF)
        return self._wlan

    def connected(self) -> bool:
        return bool(self._wlan is not None and self._wlan.isconnected())

    async def ensure(self) -> None:
        """Return once associated with an address; OSError after ``timeout_ms``."""
        w = self.wlan()
        if w.isconnected():
            return
        if not self.ssid:
            raise OSError("wifi: no wifi_ssid in /config.json")
        self.attempts += 1
        w.active(True)
        try:
            w.disconnect()  # a half-finished earlier attempt would refuse connect()
        except OSError:
            pass
        print("wifi: connecting to", self.ssid)
        w.connect(self.ssid, self.password)
        waited = 0
        while not w.isconnected():
            if waited >= self.timeout_ms:
                self.failures += 1
                status = w.status()
                try:
                    w.disconnect()
                except OSError:
                    pass
                raise OSError(
                    "wifi: no connection to %s within %d s (status %s)"
                    % (self.ssid, self.timeout_ms // 1000, status)
                )
            await clock.sleep_ms(POLL_MS)
            waited += POLL_MS
        print("wifi: connected,", w.ifconfig()[0])

    def rssi(self) -> "int | None":
        if not self.connected():
            return None
        try:
            return int(self.wlan().status("rssi"))
        except (OSError, ValueError, TypeError):
            return None


def opener(wifi: WiFi, open_stream: "Any" = mqtt.open_stream) -> "Any":
    """An MQTT transport opener that brings Wi-Fi up first."""

    async def open_(host: str, port: int) -> "Any":
        await wifi.ensure()
        return await open_stream(host, port)

    return open_

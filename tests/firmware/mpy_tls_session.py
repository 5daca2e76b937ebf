"""One MQTT session of the firmware over TLS on a real MicroPython with ``ssl``
(the unix port built with mbedTLS), and what it costs in the heap.

Run by tests/security/test_firmware_tls_micropython.py, not by the WebAssembly
runner (that port has no ``socket`` and no ``ssl``):

    micropython mpy_tls_session.py <firmware dir> <ca.der> <port> <device> <secret> <topic> [plain_port]

The firmware's own ``ds.tls`` and ``ds.mqtt`` connect to 127.0.0.1 with the CA
pinned, publish one QoS 1 message on ``topic`` and disconnect. Heap figures come
from ``gc.mem_alloc()``: ``session_live`` after a collection while connected
(mbedTLS's SSL context and its IN/OUT buffers: on a unix build with
``MICROPY_MBEDTLS_CONFIG_BARE_METAL``, as on the rp2 port, mbedTLS allocates from
the MicroPython heap), ``connect_bound`` everything allocated during CONNECT with
the collector off (an upper bound of the handshake's peak). With ``plain_port``
the same session runs in the clear first, so the TLS share can be told apart.
Prints one line ``@@DSTLS@@{json}``.
"""

import asyncio
import gc
import json
import sys

sys.path.insert(0, sys.argv[1])

from ds import mqtt, tls  # noqa: E402


async def session(port: int, device: str, secret: str, topic: str, ctx: "object") -> dict:
    opener = tls.opener(ctx) if ctx is not None else mqtt.open_stream
    c = mqtt.Client(device, "127.0.0.1", port, opener=opener, user=device, password=secret)
    gc.collect()
    base = gc.mem_alloc()
    gc.disable()
    try:
        await c.connect(clean=True)
        bound = gc.mem_alloc() - base
    finally:
        gc.enable()
    gc.collect()
    live = gc.mem_alloc() - base
    body = b'{"ts":%d,"seq":1,"boot":1,"t_c":29.5}' % (1767225600000,)
    await c.publish(topic, body, qos=1)
    gc.collect()
    after_publish = gc.mem_alloc() - base
    await c.disconnect()
    c.close()
    gc.collect()
    left = gc.mem_alloc() - base
    return {
        "connect_bound": bound,
        "session_live": live,
        "after_publish": after_publish,
        "after_close": left,
    }


async def main() -> None:
    ca_path, port, device, secret, topic = sys.argv[2:7]
    plain = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    out: "dict[str, object]" = {"impl": sys.implementation.name, "version": sys.version}
    try:
        if plain:
            out["plain"] = await session(plain, device, secret, topic, None)
        gc.collect()
        before = gc.mem_alloc()
        ctx = tls.load(ca_path)
        gc.collect()
        out["context_b"] = gc.mem_alloc() - before  # the SSLContext with the CA parsed
        out["tls"] = await session(int(port), device, secret, topic, ctx)
        out["ok"] = True
    except Exception as exc:  # noqa: BLE001 - reported to the test, which decides
        out["ok"] = False
        out["error"] = "%s: %s" % (type(exc).__name__, exc)
    print("@@DSTLS@@" + json.dumps(out))


asyncio.run(main())

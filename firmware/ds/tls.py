"""MQTT over TLS with the broker's CA pinned.

Loaded only when ``broker_tls`` is on (the default). The CA is the DER file
``ca_file`` (``/ca.der``, written by ``deltasense firmware flash``); the context
is made once per boot and serves every reconnect (the parsed CA stays in it).

One code path on both interpreters: ``ssl.SSLContext(PROTOCOL_TLS_CLIENT)``,
the CA as ``cadata`` (DER), then ``asyncio.open_connection(host, port,
ssl=ctx, server_hostname=host)`` in ``ds.mqtt.open_stream``. On a board,
``ssl`` is micropython-lib's wrapper of the ``tls`` module (mbedTLS); it starts
every context with ``CERT_NONE``, so ``CERT_REQUIRED`` is set here, always:
without it any certificate would do. mbedTLS then checks the chain against the
pinned CA and the broker's name against ``server_hostname``; MicroPython's
mbedTLS config has TLS 1.2 as its only protocol in use (mbedTLS 3 dropped 1.0/1.1).
Under CPython (the simulator, the tests) ``ssl`` is OpenSSL, TLS 1.2 or later.
"""

import ssl

from ds import hal, mqtt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def context(ca_der: bytes) -> "Any":
    """A client context that trusts ``ca_der`` only; ValueError if it is not a CA."""
    if not ca_der:
        raise ValueError("tls: the CA certificate is empty")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cadata=ca_der)
    except (ValueError, OSError) as exc:  # CPython: ssl.SSLError is an OSError
        raise ValueError("tls: unusable CA certificate (%s)" % exc) from None
    return ctx


def load(path: str) -> "Any":
    """The context for the CA in the file ``path``; OSError if it is missing."""
    raw = hal.read_bytes(path)
    if raw is None:
        raise OSError("tls: %s missing: flash the node with its broker's CA" % path)
    return context(raw)


def opener(ctx: "Any", open_stream: "Any" = mqtt.open_stream) -> "Any":
    """An MQTT transport opener that speaks TLS with ``ctx``."""

    async def open_(host: str, port: int) -> "Any":
        return await open_stream(host, port, ctx)

    return open_

"""A stand-in for ``ssl`` on the WebAssembly MicroPython, which has none (no
``socket`` either): lets the memory test (memday.py) load and run the
firmware's TLS code path (``ds.app.transport`` -> ``ds.tls``) on the real
interpreter. It is not TLS: no handshake, no crypto. It keeps the API the
firmware uses (micropython-lib's ``ssl`` wrapper of ``tls``: a context starts
at ``CERT_NONE``) and holds, per context, the heap a real one takes:
``CONTEXT_B``, measured on MicroPython 1.27's unix port with mbedTLS allocating
from the MicroPython heap as on the rp2 port (an SSLContext with the dev CA
loaded: 4160 B on that 64-bit build; less with 32-bit pointers). The TLS
session's buffers are not modelled here: docs/SECURITY.md "TLS" says where they
live on each board and what they cost.
"""

PROTOCOL_TLS_CLIENT = 0
PROTOCOL_TLS_SERVER = 1
CERT_NONE = 0
CERT_OPTIONAL = 1
CERT_REQUIRED = 2
CONTEXT_B = 4160


class SSLContext:
    def __init__(self, protocol: int) -> None:
        if protocol != PROTOCOL_TLS_CLIENT:
            raise ValueError("stand-in: client contexts only")
        self.verify_mode = CERT_NONE
        self._held = bytearray(CONTEXT_B - 64)  # about the object itself on top

    def load_verify_locations(self, cafile: "str | None" = None, cadata: "bytes | None" = None) -> None:
        if cafile:
            with open(cafile, "rb") as f:
                cadata = f.read()
        # DER: an ASN.1 SEQUENCE with a two-byte length (every real certificate)
        if not cadata or len(cadata) < 64 or cadata[0] != 0x30 or cadata[1] != 0x82:
            raise ValueError("not a DER certificate")
        n = (cadata[2] << 8) | cadata[3]
        if n + 4 != len(cadata):
            raise ValueError("not a DER certificate")

"""DeltaSense field-node firmware (MicroPython 1.27; also importable under CPython)."""

FW_VERSION = "0.2.0"

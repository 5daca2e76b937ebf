"""Sensor and actuator drivers. Each takes its bus injected; the decoding is in
pure functions so tests feed them known byte sequences and datasheet examples."""

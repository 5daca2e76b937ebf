"""Virtual DeltaSense devices for Bạc Liêu: city layout, value models, MQTT load."""

from simulators.run import SimStats, simulate

__all__ = ["SimStats", "simulate"]

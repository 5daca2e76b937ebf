"""DeltaSense shared package: the wire contract, settings and the InfluxDB/MQTT clients."""

__version__ = "0.1.0"

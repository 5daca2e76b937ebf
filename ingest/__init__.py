"""Ingest: MQTT telemetry, status and meta → validated points → InfluxDB, with dead letters."""

"""DeltaSense HTTP API: REST, the live alert feed (SSE), the operator console and auth."""

"""DeltaSense analytics: windows of readings as arrays, rules as pure functions, alert lifecycle."""

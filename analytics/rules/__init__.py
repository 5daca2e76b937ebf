"""Alert rules: pure functions over window arrays, no I/O."""

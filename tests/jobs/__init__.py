"""Background jobs of the test session (tests/background.py): each module computes
one slow, pure result; run as ``python -m tests.jobs.NAME OUT`` it writes it there."""

"""Parts of the end-to-end ingest benchmark (bench/ingest_e2e.py): the load
generator and peers run as processes of their own (``python -m bench.e2e.load``,
``python -m bench.e2e.peers``), the rest is the orchestrator's."""

"""The district edge gateway: the ward's broker → a durable spool → the platform (edge/README.md)."""

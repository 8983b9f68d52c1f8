"""Pure domain types: no I/O, no network, no database."""

"""Small helpers every layer may use: atomic writes, statistics, the command-line frame."""

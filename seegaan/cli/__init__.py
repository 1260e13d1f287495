"""Command-line interfaces: ``seegaan`` (model side) and ``seegaan-stats`` (statistics side)."""

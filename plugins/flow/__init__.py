"""Built-in flow plugins."""

"""Built-in colorizer plugins."""

"""Built-in landmarker plugins."""

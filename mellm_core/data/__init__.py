"""Datasets as samples: loading through plugins, splits, and the toolkit dataset plugins use (annotation
sheets, frame folders)."""

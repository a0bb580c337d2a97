"""Shipped recipes: YAML files; this module only anchors them as package data for `mellm --recipe NAME`."""

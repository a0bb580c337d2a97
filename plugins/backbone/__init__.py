"""Backbone plugins: the multimodal models MELLM fine-tunes and serves."""

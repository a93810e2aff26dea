"""Builders of the generated documents: each reads measured data and writes Markdown."""

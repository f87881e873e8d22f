"""Chorus package."""

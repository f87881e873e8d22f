"""Chorus API gateway."""

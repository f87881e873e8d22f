"""Chorus sandbox: simulated social platforms (dev and tests only)."""

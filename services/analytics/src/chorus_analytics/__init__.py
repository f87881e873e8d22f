"""Chorus analytics: every domain event into ClickHouse, dashboards and exports on top."""

"""Fake provider APIs for tests and the demo. Never imported by core or providers."""

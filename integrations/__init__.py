"""Adapters that turn outside events into calls of the console's services."""

"""The agent console: domain services, persistence and the web layer."""

__version__ = "0.1.0"

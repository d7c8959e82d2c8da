"""Safeguard endpoint agent. The keyword engine in `safeguard_agent.keywords` is shared with the server."""

__version__ = "0.1.0"

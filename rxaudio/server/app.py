"""The server's public names in one place (kept for existing imports).

The server is split by job: :mod:`.config` (``ServerConfig``), :mod:`.hub` (state, sessions,
limits), :mod:`.connection` (one WebSocket's state machine), :mod:`.routes` (the aiohttp
application and its handlers), :mod:`.limits` (rates, budgets, Host checks, connection guard).
"""

from __future__ import annotations

from .config import ServerConfig
from .connection import MAX_ERRORS, Connection
from .hub import Hub
from .routes import HUB, WEB_DIR, create_app, guard

__all__ = [
    "HUB",
    "MAX_ERRORS",
    "WEB_DIR",
    "Connection",
    "Hub",
    "ServerConfig",
    "create_app",
    "guard",
]

"""The live server: aiohttp app, WebSocket protocol, sessions, limits, metrics.

Importing this package imports aiohttp; ``rxaudio`` itself never imports it.
"""

from .app import HUB, Hub, ServerConfig, create_app, guard
from .protocol import PROTOCOL_VERSION

__all__ = ["HUB", "PROTOCOL_VERSION", "Hub", "ServerConfig", "create_app", "guard"]

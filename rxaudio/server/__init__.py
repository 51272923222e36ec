"""The live server: aiohttp app, WebSocket protocol, sessions, limits, metrics.

Using :func:`create_app` (or :class:`Hub`) imports aiohttp; ``rxaudio`` itself never imports
it, and neither does importing this package or its declarative modules (:mod:`.config`,
:mod:`.options`), which ``rxaudio serve --help`` reads: each name below is imported from its
module on first use (:mod:`rxaudio._lazy`).
"""

from typing import TYPE_CHECKING

from .._lazy import attributes

_NAMES = {
    "HUB": ".routes",
    "Hub": ".hub",
    "create_app": ".routes",
    "guard": ".routes",
    "ServerConfig": ".config",
    "PROTOCOL_VERSION": ".protocol",
}

if TYPE_CHECKING:
    from .config import ServerConfig
    from .hub import Hub
    from .protocol import PROTOCOL_VERSION
    from .routes import HUB, create_app, guard

__getattr__, __dir__ = attributes(__name__, _NAMES)

__all__ = ["HUB", "PROTOCOL_VERSION", "Hub", "ServerConfig", "create_app", "guard"]

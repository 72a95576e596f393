"""The HTTP server: ``retrievo serve PATH`` (FastAPI + uvicorn) and its search page."""

from retrievo.server.app import create_app
from retrievo.server.schemas import ServerSettings

__all__ = ["create_app", "ServerSettings"]

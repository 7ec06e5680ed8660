"""The HTTP check service (``preflight serve``) and its web page. Needs the ``service`` extra.

    pip install "progeny-preflight[service]"
    preflight serve --port 8080

``import preflight`` never imports this package (nor FastAPI or uvicorn).
"""

from __future__ import annotations

from .app import Settings, app_from_env, create_app

__all__ = ["Settings", "app_from_env", "create_app"]

"""The HTTP shell around ``qa``: ``create_app(settings)``."""

from api.app import create_app

__all__ = ["create_app"]

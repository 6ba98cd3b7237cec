"""The HTTP API: the k6 Cloud v6 resources over the store, with auth, health and metrics.

Importing this package connects to nothing; ``create_app`` builds an app from values.
"""

from tickwork.api.app import create_app
from tickwork.api.auth import ApiToken

__all__ = ["ApiToken", "create_app"]

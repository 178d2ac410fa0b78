"""lfa — Large Face Angles: identity-preserving video generation when the face turns far from the camera."""

__version__ = "0.1.0"

"""genwire: long generative-media jobs whose every update reaches the caller."""

__version__ = "0.1.0"

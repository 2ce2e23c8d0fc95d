"""mailbridge: a domain's mail, delivered into Gmail, described as code."""

__version__ = "0.1.0"

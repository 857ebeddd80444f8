"""switch: an internet call center in one Python process per node."""

__version__ = "0.1.0"

"""The calogen version, recorded in every file, card and manifest it writes."""

__version__ = "0.1.0"

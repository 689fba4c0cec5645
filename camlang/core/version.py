"""The package version, in a leaf so that any layer can stamp it without importing `camlang`."""

__version__ = "0.1.0"

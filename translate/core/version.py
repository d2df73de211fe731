"""The toolkit's version, written into every saved model and export."""

__version__ = "0.1.0"

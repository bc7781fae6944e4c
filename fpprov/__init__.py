"""fpprov: find the fixed points of pretrained LLMs and trace them back to their training data."""

__version__ = "0.1.0"

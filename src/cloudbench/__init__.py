"""cloudbench: run ruby-bench on many cloud instance types and collect every result."""

__version__ = "0.1.0"

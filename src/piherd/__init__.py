"""piherd: one file turns a stack of small Debian machines into a compute cluster."""

__version__ = "0.1.0"

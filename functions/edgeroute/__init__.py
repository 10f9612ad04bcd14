"""edgeroute: one OpenAI-compatible endpoint and one API key for every model a team runs."""

__version__ = "0.1.0"

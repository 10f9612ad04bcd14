"""The HTTP surface: an OpenAI-compatible FastAPI app."""

"""edgeroute side by side with LiteLLM's proxy and a bare FastAPI pass-through."""

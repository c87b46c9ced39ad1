"""The real-time service: events store, API keys, the live model and the HTTP API."""

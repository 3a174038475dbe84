"""The provider-agnostic core: config, state, scheduling, metrics and the HTTP server."""

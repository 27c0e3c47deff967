"""The HTTP layer: blueprints, negotiation, error handling."""

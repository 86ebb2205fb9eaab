"""viewer.model."""

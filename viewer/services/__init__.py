"""viewer.services."""

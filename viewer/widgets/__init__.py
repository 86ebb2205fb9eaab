"""viewer.widgets."""

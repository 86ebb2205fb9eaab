"""clinview entry point package (console script); dispatches to inference or viewer."""

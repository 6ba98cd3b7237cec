"""The leader-elected fire loop."""

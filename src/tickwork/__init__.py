"""tickwork: a distributed scheduler that triggers test runs on time, exactly once."""

__version__ = "0.1.0"

"""RQ workers that execute test runs."""

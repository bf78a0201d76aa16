"""burst's built-in policies."""

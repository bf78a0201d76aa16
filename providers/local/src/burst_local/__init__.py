"""burst's embedded simulated cloud."""

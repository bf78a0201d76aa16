"""OpenStack Magnum provider for burst (openstacksdk)."""

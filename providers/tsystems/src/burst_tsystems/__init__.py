"""T-Systems Open Telekom Cloud CCE provider for burst (openstacksdk + otcextensions)."""

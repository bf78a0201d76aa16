"""GCE GKE provider for burst (google-cloud-container)."""

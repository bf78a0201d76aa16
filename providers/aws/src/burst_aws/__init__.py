"""AWS EKS provider for burst (boto3)."""

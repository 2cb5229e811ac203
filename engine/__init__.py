"""clickstream-engine: streaming personalization."""

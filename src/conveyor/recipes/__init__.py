"""Step graphs one item goes through; each recipe is plain async code over durable steps."""

"""Running items: the item handler, durable steps, item files, cancellation, webhooks."""

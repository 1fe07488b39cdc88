"""order_svc: Order placement with a transactional outbox."""

"""The postal service's rules as plain Python: shipments, operator statuses, hand-over records."""

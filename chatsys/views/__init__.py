"""HTTP views, one module per resource.  Views add rows and outbox rows, never commit."""

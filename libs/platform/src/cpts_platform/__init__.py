"""The platform's shared foundation: settings, persistence, outbox, consumers, logging, metrics, auth."""

"""Commands of the indicators service (custom indicators, exports) live here as units of work."""

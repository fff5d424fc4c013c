"""Indicators service: ACI indicators per CPTS and period, computed from the events."""

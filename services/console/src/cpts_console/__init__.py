"""Web console of the CPTS / SAS platform."""

"""Commands of patient-matching (enrolment, rounds, proposals) live here as units of work."""

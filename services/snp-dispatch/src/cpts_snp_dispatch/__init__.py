"""SNP dispatch service: slots, SAS-style intake, ranked search, hold and booking."""

"""Patient matching service: patients without a médecin traitant, priority, fair assignment to GPs."""

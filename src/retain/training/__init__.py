"""Model families, cross-validated fitting, tuning, training runs and the registry."""

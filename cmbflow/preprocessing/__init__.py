"""Per-subject preprocessing: bias correction, template registration, normalization."""

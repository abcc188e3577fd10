"""Physics-based synthetic SWI cohort: anatomy from a real atlas, susceptibility sources,
dipole field, complex GRE signal on a supersampled grid, noise, homodyne-filtered phase."""

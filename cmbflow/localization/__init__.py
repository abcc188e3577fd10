"""Anatomical localization: the region (MARS) of every candidate, by a coordinate-aware U-Net or the warped atlas."""

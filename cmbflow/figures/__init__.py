"""Figures: QC overviews and, later, the evaluation figures of the paper."""

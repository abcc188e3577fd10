"""cmbflow: cerebral microbleed detection, anatomical localization and evaluation.

The package holds all logic, split by pipeline stage (``io``, ``synth``, ``atlas``,
``figures`` ...). The Snakemake rules in ``rules/`` call it through thin scripts.
"""

__version__ = "0.1.0"

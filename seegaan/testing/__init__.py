"""Test helpers: decoders, cohort builders and Hypothesis strategies, importable by tests and analyses.

decoders
    Small deterministic decoders (``seegaan.testing.decoders:linear8`` as a ``--decoder`` spec).
cnns
    Tiny deterministic CNNs for the explain, predict and attribution tests.
cohorts
    Latent cohorts with known structure (:func:`~seegaan.testing.cohorts.make_cohort`).
strategies
    Hypothesis strategies of tiny cohorts, decoders and seeds (needs ``hypothesis``: the test extra).
"""

"""A procedural frontal chest-radiograph phantom whose anatomy is driven by clinical variables.

Modules: :mod:`~seegaan.phantom.anatomy` (render parameters, density, display, side marker),
:mod:`~seegaan.phantom.clinical` (the joint distribution of the clinical variables, cohorts),
:mod:`~seegaan.phantom.truth` (effect maps, true regions, scoring) and :mod:`~seegaan.phantom.writer`
(a cohort folder with its ground truth). Every public name is importable from ``seegaan.phantom``.

Every image is the display of a *density* map (the sum of smooth anatomical shapes, larger = more
attenuating = brighter) defined in resolution-free coordinates ``x`` (image left -> right) and ``y`` (top
-> bottom), both in [-1, 1], so the phantom renders at any size.

Clinical effects (documented in ``truth/README.md`` of every phantom cohort, see :data:`EFFECTS`):

- ``bnpp`` (NT-proBNP, pg/mL, log-normal; much higher with acute heart failure, slightly with age): the
  cardiac silhouette grows (mostly to the patient's left = image right) and gets denser, and the central
  vasculature (the hilar vessels) gets larger and denser.
- ``ahf`` (acute heart failure, bool): bilateral pleural effusions, denser lung bases in the lateral
  costophrenic regions (its direct effect; AHF also raises BNPP, so its *total* effect includes the
  heart).
- ``sex`` (F/M): breast soft tissue over the lateral lung fields in women (placed higher than in real
  anatomy so that it does not overlap the heart or the effusions).
- ``age`` (years): lower bone density of the clavicles and shoulder girdle (humeral heads) with age.
- ``manufacturer`` (vendor_a/vendor_b/vendor_c): the display curve (gamma and dynamic range) of the
  device, a global change.

Nuisance: position shift, small rotation, body size, inspiration depth (lung height), individual heart
size, breast size and rib position, detector noise, and a radiopaque side marker (the letter ``L``) in an
upper corner; optionally (``PhantomParams.token``, off by default) a burned-in square token in the lower
image-left corner at :func:`shortcut_mask`, which an experiment can tie to a label (a shortcut); the marker is the
brightest thing on every image and the air around the body the darkest,
so per-image min-max scaling does not turn local effects into global ones.

The ground-truth *direct* effect of a feature (:func:`effect_map`) is ``render(feature=b) -
render(feature=a)`` with every other clinical variable at :data:`REFERENCE` and every nuisance at its
mean. Its *marginal* effect (:func:`marginal_effect_map`) lets the other clinical variables follow their
joint distribution given the feature (what an unadjusted comparison of images estimates).
"""

from seegaan.phantom.anatomy import (
    DISPLAY,
    EFFECTS,
    FEATURES,
    FULL_SCALE,
    LOG_BNPP_CENTER,
    MANUFACTURERS,
    MARKER_CENTER,
    MARKER_HALF,
    MARKER_JITTER,
    MIN_SIZE,
    NUMERIC_FEATURES,
    REFERENCE,
    SEXES,
    TOKEN_CENTER,
    TOKEN_HALF,
    PhantomParams,
    density,
    marker_free_mask,
    render,
    shortcut_mask,
)
from seegaan.phantom.clinical import AGE_MEAN, AGE_SD, LOG_BNPP_SD, MANUFACTURER_P, sample_clinical, sample_cohort
from seegaan.phantom.truth import (
    CATEGORICAL_CONTRAST,
    MASK_FRACTION,
    effect_map,
    effect_mask,
    explanation_scores,
    marginal_effect_map,
    read_truth,
    score_map,
    truth_contrasts,
)
from seegaan.phantom.writer import write_phantom

__all__ = [
    "AGE_MEAN",
    "AGE_SD",
    "CATEGORICAL_CONTRAST",
    "DISPLAY",
    "EFFECTS",
    "FEATURES",
    "FULL_SCALE",
    "LOG_BNPP_CENTER",
    "LOG_BNPP_SD",
    "MANUFACTURERS",
    "MANUFACTURER_P",
    "MARKER_CENTER",
    "MARKER_HALF",
    "MARKER_JITTER",
    "MASK_FRACTION",
    "MIN_SIZE",
    "NUMERIC_FEATURES",
    "REFERENCE",
    "SEXES",
    "TOKEN_CENTER",
    "TOKEN_HALF",
    "PhantomParams",
    "density",
    "effect_map",
    "effect_mask",
    "explanation_scores",
    "marginal_effect_map",
    "marker_free_mask",
    "read_truth",
    "render",
    "sample_clinical",
    "sample_cohort",
    "score_map",
    "shortcut_mask",
    "truth_contrasts",
    "write_phantom",
]

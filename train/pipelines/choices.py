"""The pipelines' enumerated options, in a module of their own so that config validation
(:mod:`train.validate_config`) reads them without importing the pipelines (which import the trainer)."""

from __future__ import annotations

__all__ = ["FITS", "INITS", "SOLVERS"]

#: ``pipeline.fit`` of ``approx_finetune``: how series layers are fitted to the dense kernels.
FITS = ("closed_form", "gradient")

#: ``pipeline.init`` of ``basis``: how the basis and coefficients start.
INITS = ("svd", "random")

#: ``pipeline.fdc3d.solver`` of ``fdc3d``: how the Eq. (9) layer fit is solved.
SOLVERS = ("eq9", "closed_form")

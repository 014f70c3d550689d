"""Former home of the sample-versus-sample metrics, kept for one import: ``sf_mre``.

The metrics now live by topic: :mod:`calogen.validation.binning` (condition bins, the sampling-fraction error),
:mod:`calogen.validation.distances` (histogram distances, Wasserstein, FPD, KPD, nearest neighbours),
:mod:`calogen.validation.images` (SSIM, MSCN, cell variances, correlations); the comparison that runs them all
is :mod:`calogen.compare`.
"""

from __future__ import annotations

from calogen.validation.binning import sf_mre

__all__ = ["sf_mre"]

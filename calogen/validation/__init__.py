"""Physics validation: per-shower observables (``features``), condition bins and the sampling-fraction error
(``binning``), sample-versus-sample distances (``distances``, ``images``), the classifier test (``classifier``),
the figures' meanings and targets (``targets``) and the typed result of a comparison (``comparison``)."""

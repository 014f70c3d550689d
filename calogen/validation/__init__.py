"""Physics validation: per-shower observables (``features``), sample-versus-sample distances (``metrics``) and
the classifier test (``classifier``)."""

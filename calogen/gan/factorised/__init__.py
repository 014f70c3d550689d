"""Factorised generators: a normalising flow for the layer energies times a GAN for the per-layer shapes.

``energy_flow`` (the layer-energy flow), ``shape_nets`` (3D-conv and Conv2D shape generators, the critic),
``model`` (the two combined into one generator module), ``data`` (training data in memory) and ``campaign``
(resumable training and export to a model folder).
"""

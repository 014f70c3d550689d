"""Shower engines: the analog electromagnetic-cascade Monte Carlo (``mc``), GFlash (``gflash``) and the held-out
reference sample made with the Monte Carlo (``reference``)."""

"""Training. The functional pieces are usable alone in your own loop: ``schedules`` (lambda ramp,
cyclic-step and step learning rates as plain functions of progress) and ``ema`` (the weight
average, ``ModelEMA``). The rest is ``nuat train``'s machinery: ``loop`` (one loop for every
method), ``config``, run folders, checkpoints, resume and health checks.

Submodules are imported where used; importing ``nuat.train`` loads nothing heavy.
"""

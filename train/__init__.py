"""Training package: ``python -m train`` (see ``train/__main__.py``).

Modules, each one job:

* ``config`` / ``configs/`` - experiments as ``get_config()`` files, ``--set`` overrides.
* ``data/`` - embedded offline datasets, tensorflow-datasets sources, the grain pipeline.
* ``models`` - zoo networks built with a dense or compact ``conv`` factory.
* ``optim`` - optax optimisers and schedules from the config.
* ``tasks`` - loss and evaluation sums per task; ``metrics`` - top-1, PSNR, SSIM, Dice.
* ``sharding`` / ``steps`` - the device mesh and the jitted train / eval steps.
* ``checkpoint`` - every Orbax call; ``writers`` - JSON lines, TensorBoard, progress bar.
* ``trainer`` - the loop; ``compare`` - the main job's dense-vs-compact table.

Nothing is imported here, so ``import train.metrics`` stays light.
"""

"""The model runtime: the one place that loads, warms, checks and calls a SavedModel.

Above :mod:`mnist_core` (which knows the on-disk layout and the signature without
TensorFlow) and below everything that runs the model: the service, ``mnist-batch
--local`` and the benchmarks all call :func:`runtime.savedmodel.load`.
"""

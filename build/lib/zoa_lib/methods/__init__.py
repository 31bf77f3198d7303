"""The reconstruction methods: the V-Net and its training and inference, and the classical
methods it is measured against (Wiener filters, POTENT), with their calibration on training mocks.

Imports :mod:`zoa_lib.survey` and :mod:`zoa_lib.universe`, never a higher wing.
"""

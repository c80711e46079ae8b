"""The engagement image model: webcam frames in, P(not engaged) out.

Torch is an optional extra (``retain[vision]``): training and the audit import it inside their
functions; serving needs only onnxruntime, Pillow and NumPy. Nothing here runs at import time.
"""

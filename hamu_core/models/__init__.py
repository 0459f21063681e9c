"""Models: architectures, the training recipe and the on-disk cache of original and retrained models.

Built on hamu_core.data only.
"""

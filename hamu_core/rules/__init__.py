"""Update rules: the HAMU closed form, the rule contract, HAMU-Q and HAMU-U, the baselines and their registry.

The lowest layer: it imports nothing else of hamu_core, so a rule can be checked on plain tensors.
"""

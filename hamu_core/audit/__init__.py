"""Privacy and durability audits: the shadow-model bank, per-sample membership attacks (LiRA, RMIA, U-LiRA)
and relearning / quantization checks.

The top of the core below the CLI: U-LiRA unlearns shadow models with the same runs the Studio uses.
"""

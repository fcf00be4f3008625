"""The method configs' shared pieces under their former path: they live in methods/base.py now.

Kept so a plugin written as docs/extending.md once showed (``from lodabench.methods.common import
LoRAStyleConfig, hp``) still imports; new code imports from ``lodabench.methods.base``.
"""

from lodabench.methods.base import (  # noqa: F401  (re-exported)
    DOMAIN, LoRAStyleConfig, and_model, check_choice, check_family, check_fraction, check_positive_int,
    check_rank_fits, check_targets, config_keys, fail, hp, low_rank_text, method_keys, rng,
)

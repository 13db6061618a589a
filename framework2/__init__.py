"""Framework Set 2: operations systems for software organisations, as Prefect 3 flows under PSO.

Programmatic use (the seed's API in snake_case)::

    import framework2
    framework2.ppis.get_recommendations(status="pending_approval")
    framework2.ppis.explain("SKU-000042")
    framework2.pso.get_system_health()
    framework2.plos.generate_deployment_plan("web", "registry.example.com/web:1.4.2")
    framework2.ppms.get_forecasts("github:octo/shop")
    framework2.ppos.get_health()
    framework2.puxt.get_optimizations()
"""

from __future__ import annotations

from typing import Any

__all__ = ["plos", "ppis", "ppms", "ppos", "pso", "puxt"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import framework2` stays cheap (the CLI and Prefect's flow loading import it).
    if name in __all__:
        from framework2 import api

        return getattr(api, name)
    raise AttributeError(f"module 'framework2' has no attribute {name!r}")

"""The sample world the demo runs on: a catalogue with sales history in the store, and competitor feeds
served over loopback HTTP in the shapes real feeds come in (nested JSON, flat JSON, CSV).

It is deliberately imperfect, as real inputs are: one product has a zero cost, one competitor runs a
promotion 30 % below us on three SKUs (an undercut alert), one feed sends a truncated document, and
the feeds carry a negative price, an absurd price, an unknown SKU and a duplicate row. The demo shows each
of them quarantined or reported stale, never silently dropped.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from framework2.blocks.competitor_feed import CompetitorFeed
from framework2.sample.market import SampleMarket, generate_market
from framework2.store import pricing as store


@dataclass
class Route:
    status: int
    content_type: str
    body: bytes


@dataclass
class FeedServer:
    """A loopback HTTP server answering fixed routes; use as a context manager."""

    routes: dict[str, Route] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FeedServer:
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                route = routes.get(self.path.split("?")[0], Route(404, "text/plain", b"not found"))
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

            def log_message(self, *_args: object) -> None:  # keep the demo output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass
class SampleFeed:
    block_name: str
    competitor: str
    path: str
    format: str
    records_path: str | None
    field_mapping: dict[str, str]


def _competitor_frames(market: SampleMarket) -> dict[str, pd.DataFrame]:
    offers = market.offers.astype({"sku": str, "competitor": str})
    return {name: frame for name, frame in offers.groupby("competitor")}


def build_routes(market: SampleMarket) -> tuple[dict[str, Route], list[SampleFeed]]:
    """Feed documents per competitor, with a few bad rows, plus one feed that is down."""
    routes: dict[str, Route] = {}
    feeds: list[SampleFeed] = []
    for i, (competitor, frame) in enumerate(sorted(_competitor_frames(market).items())):
        frame = frame.copy()
        slug = f"sample-{str(competitor).lower().replace(' ', '-')}"
        if i == 0:  # bad rows a real feed sends: negative, absurd, unknown sku, duplicate
            bad = frame.head(4).copy()
            bad.iloc[0, bad.columns.get_loc("price")] = -3.0
            bad.iloc[1, bad.columns.get_loc("price")] = float(bad.iloc[1]["price"]) * 50
            bad.iloc[2, bad.columns.get_loc("sku")] = "NOT-IN-CATALOGUE"  # the 4th row stays an exact repeat
            frame = pd.concat([frame, bad], ignore_index=True)
        if i == 1:  # a competitor's promotion: three SKUs 30 % below us, which PPIS alerts on
            latest = frame.sort_values("observed_at").drop_duplicates("sku", keep="last").head(3).index
            ours = market.catalogue.astype({"sku": str}).set_index("sku")["price"]
            frame.loc[latest, "price"] = (ours.reindex(frame.loc[latest, "sku"]).to_numpy() * 0.7).round(2)
            frame.loc[latest, "in_stock"] = True
        observed = pd.to_datetime(frame["observed_at"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        if i % 3 == 0:
            records = [
                {"product_id": s, "amount": round(float(p), 2), "available": bool(a), "ts": t}
                for s, p, a, t in zip(frame["sku"], frame["price"], frame["in_stock"], observed, strict=True)
            ]
            body = json.dumps({"data": {"offers": records}}).encode()
            feed = SampleFeed(
                slug,
                str(competitor),
                f"/{slug}.json",
                "json",
                "data.offers",
                {"sku": "product_id", "price": "amount", "in_stock": "available", "observed_at": "ts"},
            )
            routes[feed.path] = Route(200, "application/json", body)
        elif i % 3 == 1:
            out = io.StringIO()
            pd.DataFrame(
                {
                    "SKU": frame["sku"],
                    "Price": frame["price"].round(2),
                    "SeenAt": observed,
                    "InStock": frame["in_stock"].map({True: "yes", False: "no"}),
                }
            ).to_csv(out, index=False)
            feed = SampleFeed(
                slug,
                str(competitor),
                f"/{slug}.csv",
                "csv",
                None,
                {"sku": "SKU", "price": "Price", "in_stock": "InStock", "observed_at": "SeenAt"},
            )
            routes[feed.path] = Route(200, "text/csv", out.getvalue().encode())
        else:
            records = [
                {"sku": s, "price": round(float(p), 2), "in_stock": bool(a), "observed_at": t}
                for s, p, a, t in zip(frame["sku"], frame["price"], frame["in_stock"], observed, strict=True)
            ]
            feed = SampleFeed(
                slug,
                str(competitor),
                f"/{slug}.json",
                "json",
                None,
                {"sku": "sku", "price": "price", "in_stock": "in_stock", "observed_at": "observed_at"},
            )
            routes[feed.path] = Route(200, "application/json", json.dumps(records).encode())
        feeds.append(feed)
    down = SampleFeed(
        "sample-flaky-market",
        "Flaky Market",
        "/sample-flaky-market.json",
        "json",
        None,
        {"sku": "sku", "price": "price"},
    )
    # Cut off mid-document, as a feed behind a failing proxy often is: malformed, so not retried.
    routes[down.path] = Route(200, "application/json", b'[{"sku": "A1", "price": 12.5}, {"sku": "A2", "pr')
    feeds.append(down)
    return routes, feeds


def seed_store(engine: Engine, market: SampleMarket) -> None:
    """Write the sample catalogue (with one zero-cost product) and its sales history to the store."""
    catalogue = market.catalogue.astype({"sku": str, "category": str})
    catalogue.loc[catalogue.index[-1], "cost"] = 0.0  # quarantined by validation, shown in the summary
    store.upsert_catalogue(engine, catalogue)
    store.replace_sales(engine, market.sales.astype({"sku": str}))


def save_feed_blocks(feeds: list[SampleFeed], base_url: str) -> list[str]:
    """Save a CompetitorFeed block per sample feed pointing at the running server; returns the names."""
    for f in feeds:
        CompetitorFeed(
            competitor=f.competitor,
            url=base_url + f.path,
            format=f.format,
            records_path=f.records_path,
            field_mapping=f.field_mapping,
            timeout_seconds=5,
        ).save(f.block_name, overwrite=True)
    return [f.block_name for f in feeds]


def sample_market(n_skus: int = 300, seed: int = 7) -> SampleMarket:
    """The demo's market: a few hundred SKUs, four competitors, 90 days."""
    start = pd.Timestamp.now(tz="UTC").normalize().tz_localize(None) - pd.Timedelta(days=90)
    return generate_market(n_skus=n_skus, n_competitors=4, n_days=90, seed=seed, start=start)


def seed_release_history(engine: Engine, n: int = 150, seed: int = 7) -> int:
    """Store ``n`` plausible past releases (PLOS's launch-success model trains on them); returns how many.

    Idempotent for a seed: the ids derive from it, so a second demo run updates instead of duplicating.
    """
    import uuid

    from framework2.store.models import Release
    from framework2.store.releases import HISTORY_COLUMNS, save_release
    from framework2.tasks.launch.prediction import synthetic_history

    history = synthetic_history(n, seed=seed)
    for i, row in enumerate(history.itertuples(index=False)):
        facts = {c: getattr(row, c) for c in HISTORY_COLUMNS if c not in ("app", "started_at", "succeeded")}
        started = row.started_at.to_pydatetime()
        save_release(
            engine,
            Release(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"framework2-sample-release/{seed}/{i}")),
                namespace="shop",
                app=row.app,
                image=f"registry.example.com/{row.app}:sample-{i}",
                revision=f"sample-{i}",
                to_colour="blue" if i % 2 else "green",
                status="promoted" if row.succeeded else "rolled_back",
                phase="completed" if row.succeeded else "rolled_back",
                started_at=started,
                finished_at=started,
                succeeded=bool(row.succeeded),
                reason="sample history",
                features={k: (None if v != v else v) for k, v in facts.items()},  # NaN → null
            ),
        )
    return len(history)


def seed_projects(engine: Engine) -> int:
    """Store the PPMS sample projects (history, backlog, people, and bad rows to quarantine); returns tasks."""
    from framework2.sample.projects import sample_projects
    from framework2.store.planning import store_batch

    return len(store_batch(engine, sample_projects(), "sample").tasks)


def seed_requirements(home: Path) -> str:
    """Write the PCES sample requirement files under ``home`` and save a Requirements Source block for them;
    returns the block's name."""
    from framework2.blocks.requirements_source import RequirementsSource
    from framework2.sample.requirements import write_sample_requirements

    directory = write_sample_requirements(Path(home) / "sample-requirements")
    RequirementsSource(path=str(directory)).save("sample-requirements", overwrite=True)
    return "sample-requirements"

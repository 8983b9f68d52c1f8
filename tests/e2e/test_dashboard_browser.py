"""The dashboard page in a real headless Chromium: what a person sees is what the robot's store holds.

The app runs on uvicorn on a free port; Chromium loads the page and dumps its DOM after the
page's scripts ran (the page renders the snapshot the server embedded, draws the plotly chart and
then subscribes to the stream). The store then changes and the SAME page, never reloaded, must show
the new values: Playwright drives the machine's Chromium over the DevTools protocol and watches the
page's own live-update code (Server-Sent Events) change the DOM.

``--virtual-time-budget`` is not used: virtual time stands still while a request is open, and the
page's event stream stays open, so Chromium would never finish.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from autotrader.adapters.state import open_state_store
from autotrader.dashboard import create_app
from autotrader.domain.orders import OrderAccepted, OrderCanceled, OrderSide, OrderSubmitted, OrderType
from autotrader.live.records import Outcome
from autotrader.live.status import risk_management
from tests.integration.test_dashboard import MINUTE, T0, beat, decision, mark, new_order, robot_store, serving

# --------------------------------------------------------------------------------------- the browser


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is not installed: run scripts/ensure-chromium.sh (Debian package 'chromium')")
    return path


def rendered_dom(url: str) -> Node:
    """The page at ``url`` as headless Chromium renders it."""
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--dump-dom", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "<body" in result.stdout, result.stderr[-2000:]
    return parse_html(result.stdout)


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(" ".join([*self.text_parts, *(c.text for c in self.children)]).split())

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def walk(self) -> list[Node]:
        return [self, *(n for c in self.children for n in c.walk())]

    def by_id(self, element_id: str) -> Node:
        found = [n for n in self.walk() if n.attrs.get("id") == element_id]
        assert len(found) == 1, f"{len(found)} elements with id {element_id!r}"
        return found[0]

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        return [n for n in self.walk() if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)]

    def rows(self) -> list[list[str]]:
        """A table's body rows as cell texts."""
        return [[td.text for td in tr.find_all("td")] for tr in self.find_all("tbody")[0].find_all("tr")]


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        if self.stack[-1].tag not in ("script", "style"):
            self.stack[-1].text_parts.append(data)


def parse_html(html: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


# ----------------------------------------------------------------------------------------- the tests


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def test_dashboard_in_chromium_shows_the_stores_figures_and_new_ones_after_a_change(tmp_path) -> None:
    store = open_state_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        robot_store(store, wall_ms=wall_ms())
        with serving(create_app(store, refresh_s=0.5)) as url:
            page = rendered_dom(url + "/")
            block = risk_management(store, wall_ms())

            status = page.by_id("robot-status")
            assert (status.text, status.attrs["data-status"]) == ("ALIVE", "alive")
            assert "atrobot" in page.by_id("robot-name").text
            assert page.by_id("robot-mode").text == "demo mode"
            assert "hidden" in page.by_id("empty").attrs
            assert page.by_id("equity").text == "10,023.00"
            assert page.by_id("cash").text == "7,998.00"
            assert page.by_id("today-pnl").text == f"{block.today_pnl:,.2f}" == "-27.00"
            assert page.by_id("drawdown").text == f"{100 * block.drawdown:.2f}%"
            assert page.by_id("faults").text == "1"

            [position] = page.by_id("positions").rows()
            assert position[:3] == ["BTCUSDT", "long", "0.05"]
            assert position[3:7] == ["40,000.00", "40,500.00", "2,025.00", "+23.00"]
            assert position[7:9] == ["39,200.00 (initial, resting, 3.21% away)", "none"]  # the stop; no take-profit
            orders = page.by_id("orders").rows()
            assert [row[0] for row in orders] == ["atr-stop-btc1", "atr-entr-eth1"]
            assert orders[0][1:5] == ["BTCUSDT", "sell", "stop_market", "stop"]
            assert orders[0][8:10] == ["39,200.00", "submitted"]
            assert orders[1][7:10] == ["2,400.50", "", "accepted"]
            signals = page.by_id("signals").rows()
            assert [row[1] for row in signals] == ["sig-eth-2", "sig-eth-1", "sig-btc-1"]
            assert signals[0] == [
                "2024-01-01 00:11:00",
                "sig-eth-2",
                "ETHUSDT",
                "short",
                "0.41",
                "skipped",
                "low_confidence",
            ]

            risk_rows = page.by_id("risk").find_all("div", "risk-row")
            assert [r.attrs["data-limit"] for r in risk_rows] == [u.name for u in block.usage]
            breached = [r.attrs["data-limit"] for r in risk_rows if "breached" in r.classes]
            assert breached == ["position size"]  # 20 % of equity against a 5 % limit: red
            position_size = next(r for r in risk_rows if r.attrs["data-limit"] == "position size")
            assert "20.20 / 5.00 % of equity (404%)" in position_size.text  # 2,025 on 10,023 of equity

            chart = page.by_id("equity-chart")
            assert chart.find_all(cls="main-svg"), "plotly did not draw the equity chart"
            assert chart.find_all("path", "js-line"), "the equity line is missing"

    finally:
        store.close()


def test_dashboard_page_updates_itself_when_the_store_changes(tmp_path) -> None:
    from playwright.sync_api import expect, sync_playwright

    store = open_state_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        robot_store(store, wall_ms=wall_ms())
        with serving(create_app(store, refresh_s=0.5)) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page()
                page.goto(url + "/")
                expect(page.locator("#equity")).to_have_text("10,023.00")
                page.evaluate("window.__not_reloaded = true")

                # the robot trades on: a new exit signal, the ETH order cancelled, BTC marked at 46,000
                at = T0 + 40 * MINUTE
                store.record_decision(decision("sig-btc-2", "BTCUSDT", 0, 0.93, Outcome.EXIT, at, reason="signal"))
                eth = new_order("atr-entr-eth1", "ETHUSDT", OrderSide.BUY, OrderType.LIMIT, "1.5", T0, price="2400.5")
                eth = eth.apply(OrderSubmitted(eth.client_order_id, at)).apply(
                    OrderAccepted(eth.client_order_id, at, "v")
                )
                store.save_order(eth.apply(OrderCanceled(eth.client_order_id, at + 1, "expired")), "canceled")
                mark(store, 10300.0, at, btc_price=46000.0, position_fraction=0.23)
                beat(store, wall_ms())

                expect(page.locator("#equity")).to_have_text("10,300.00", timeout=15_000)
                assert page.evaluate("window.__not_reloaded") is True  # the same page, updated in place
                # ... by the event stream, not by the polling fallback
                expect(page.locator("#connection")).to_have_attribute("data-connection", "live")
                dom = parse_html(page.content())
            finally:
                browser.close()
    finally:
        store.close()
    [position] = dom.by_id("positions").rows()
    unrealised = Decimal("0.05") * (46000 - 40040)
    assert position[4:7] == ["46,000.00", "2,300.00", f"+{unrealised:,.2f}"]
    assert [row[0] for row in dom.by_id("orders").rows()] == ["atr-stop-btc1"]
    assert [row[1] for row in dom.by_id("signals").rows()][:2] == ["sig-btc-2", "sig-eth-2"]
    assert dom.by_id("signals").rows()[0][3] == "flat"


def test_dashboard_in_chromium_on_an_empty_store_says_there_is_no_robot_data(tmp_path) -> None:
    store = open_state_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with serving(create_app(store)) as url:
            page = rendered_dom(url + "/")
    finally:
        store.close()
    assert "hidden" not in page.by_id("empty").attrs
    assert page.by_id("empty").text.startswith("No robot data yet")
    assert page.by_id("robot-status").text == "NO ROBOT DATA"
    assert "hidden" in page.by_id("problem").attrs
    assert page.by_id("positions").rows() == [["No open positions."]]
    assert page.by_id("orders").rows() == [["No open orders."]]
    assert page.by_id("signals").rows() == [["No signals yet."]]
    assert page.by_id("equity-empty").text == "No equity snapshots yet."

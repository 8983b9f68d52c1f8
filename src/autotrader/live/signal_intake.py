"""Signals in, decisions out: each delivery is classified, decided, persisted, and only then acted on.

    await robot.intake.handle(deliveries)   # decide each, then commit them to the source

A decision is the kernel's step 3b for one signal, made by :mod:`autotrader.live.decider` with the
compiled functions the backtest calls: ``risk.policy.signal_action_nb`` (spot is long-only, an
opposite or flat signal exits, no pyramiding), then for an entry ``decide_entry_nb`` (risk gate
and sizing) and ``entry_quantity_nb`` (lot, minimums, free cash). This module gathers the
decider's inputs (prices, the book, the order manager's pending orders), turns its plan into
orders (:mod:`autotrader.live.intents`), records the decision with them and sends them. The order
goes out at once ("the next moment"), where the backtest fills at the next bar's open.

One message never stops the robot: a poison message is dead-lettered and the batch committed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence

import numpy as np

from autotrader.domain.errors import (
    BrokerError,
    ExchangeError,
    OrderRejected,
    StorageError,
    StoreUnavailable,
    TemporaryExchangeError,
)
from autotrader.domain.orders import OrderSubmitted
from autotrader.live.dead_letters import dead_letter, failure_detail
from autotrader.live.decider import EntryInputs, EntryPlan, Pause, decide_action, decide_entry
from autotrader.live.intents import entry_order, exit_intent
from autotrader.live.records import Decision, Intent, IntentKind, Outcome, RobotEvent, StoredOrder
from autotrader.live.robot_exits import RobotExits
from autotrader.live.robot_state import EntryPause, ExchangeFault, RobotState, StoreFault
from autotrader.risk.policy import exposure_vector_nb
from autotrader.risk.rules import Denial
from autotrader.risk.volatility import daily_volatility_of
from autotrader.signals.intake import Delivery, Verdict
from autotrader.signals.prediction import Prediction

log = logging.getLogger(__name__)

_SIGNAL_FIELDS = {
    "signal_id": "id",
    "symbol": "symbol",
    "direction": "sign",
    "confidence": "confidence",
    "signal_ts": "ts",
    "horizon": "horizon",
    "model": "model",
}
"""What a decision copies from its signal: ``Decision`` field -> ``Prediction`` attribute."""


class SignalIntake:
    """A robot's signal handling: deliveries and strategy signals to persisted decisions and sent orders."""

    def __init__(
        self,
        state: RobotState,
        exits: RobotExits,
        pause: EntryPause,
        exchange_fault: ExchangeFault,
        store_fault: StoreFault,
    ) -> None:
        self.state = state
        self.exits = exits  # sends a signal's exit
        self.pause = pause  # the robot's own reason to pause entries
        self.exchange_fault = exchange_fault
        self.store_fault = store_fault

    async def handle(self, deliveries: Sequence[Delivery]) -> int:
        """Decide every delivery, then commit them to the source (after their decisions are persisted).

        One message never stops the robot: whatever still fails while deciding or persisting it (a
        poison message) dead-letters it with a bounded reason, and the batch is committed. A store
        transaction that fails for a passing reason (``StoreUnavailable``) is one fault: the
        deliveries before it are committed, that one and the rest are not (the source
        ``rewind``s them: they come again at its next poll) and the robot goes on. A venue that is down
        (``ExchangeError``), a store that refuses (``StorageError``) or a broker failure stops it.
        Returns how many deliveries were decided (the rest were given back).
        """
        state = self.state
        perf = time.perf_counter()
        done = len(deliveries)
        for k, delivery in enumerate(deliveries):
            try:
                await self._handle_one(delivery, perf)
            except StoreUnavailable as e:  # not this message's fault: it is decided once the store is back
                self.store_fault(f"signal at {delivery.position}", e)
                done = k
                break
            except (StorageError, ExchangeError, BrokerError):
                raise  # not this message's fault: it comes again after the restart
            except Exception as e:
                await self._poison(delivery, e)
        if state.signals is None:
            return done
        if done:
            state.signals.commit(*deliveries[:done])
        if done < len(deliveries):
            state.signals.rewind(*deliveries[done:])
        return done

    async def _handle_one(self, delivery: Delivery, perf: float) -> None:
        state = self.state
        outcome = delivery.outcome
        state.metrics.signals.inc(verdict=str(outcome.verdict), source="kafka")
        if outcome.verdict is Verdict.INVALID:
            if delivery.dead_letter_error:
                self._fault("dead_letter", delivery.dead_letter_error)
            state.store.record_dead_letter(dead_letter(delivery, outcome.reason, outcome.detail))
            state.metrics.decisions.inc(outcome="dead_lettered", reason=outcome.reason)
            return
        prediction = delivery.prediction
        assert prediction is not None
        if outcome.verdict is Verdict.DUPLICATE:
            state.metrics.decisions.inc(outcome="ignored", reason="duplicate")
            log.info(
                "signal %s is a duplicate: ignored",
                prediction.id,
                extra={"signal_id": prediction.id, "symbol": prediction.symbol},
            )
            return
        if outcome.verdict is Verdict.STALE:
            self._record_skip(prediction, delivery.position, delivery.received_ms, outcome.reason, outcome.detail)
            return
        await self.on_signal(prediction, delivery.position, delivery.received_ms, perf)

    async def _poison(self, delivery: Delivery, error: Exception) -> None:
        """``delivery`` could not be handled: dead-letter it (store and, if it can, the source) and move on."""
        state = self.state
        detail = failure_detail(error)
        log.error("signal at %s could not be handled, dead-lettered: %s", delivery.position, detail)
        log.debug("signal at %s: traceback", delivery.position, exc_info=error)
        state.metrics.decisions.inc(outcome="dead_lettered", reason="poison")
        self._fault("signal", f"{delivery.position}: {detail}")
        try:
            state.store.record_dead_letter(dead_letter(delivery, "poison", detail))
        except Exception as e:  # the store may be why it failed: the log line and the fault keep the record
            log.error("could not store the dead letter of %s: %s", delivery.position, failure_detail(e))
        forward = getattr(state.signals, "dead_letter", None)  # the Kafka source copies it to its DLQ topic
        if forward is not None:
            try:
                await asyncio.to_thread(forward, delivery, "poison", detail)
            except Exception as e:  # the store has it; the topic copy is a convenience
                log.warning("could not copy the signal at %s to the dead-letter topic: %s", delivery.position, e)

    def _fault(self, where: str, detail: str) -> None:
        state = self.state
        try:
            state.store.record_event(RobotEvent(state.clock.now_ms(), "fault", f"{where}: {detail}"[:1000]))
        except Exception as e:  # a fault about a fault: the log line is the record
            log.error("could not record the fault (%s: %s): %s", where, detail, failure_detail(e))

    def _decision(
        self,
        p: Prediction,
        source: str,
        received_ms: int,
        outcome: Outcome,
        reason: str = "",
        detail: str = "",
        cid: str | None = None,
        price: float = 0.0,
    ) -> Decision:
        state = self.state
        return Decision(
            **{field: getattr(p, name) for field, name in _SIGNAL_FIELDS.items()},
            source=source,
            received_ms=received_ms,
            decided_ms=state.clock.now_ms(),
            outcome=outcome,
            reason=reason,
            detail=detail,
            client_order_id=cid,
            raw=p.model_dump_json(),
            price=price,
            expires_ms=p.ts + p.horizon_ms,
        )

    def _record_skip(self, p: Prediction, source: str, received_ms: int, reason: str, detail: str = "") -> None:
        state = self.state
        if state.store.record_decision(self._decision(p, source, received_ms, Outcome.SKIPPED, reason, detail)):
            state.metrics.decisions.inc(outcome="skipped", reason=reason)
            log.info("signal %s skipped: %s %s", p.id, reason, detail, extra={"signal_id": p.id, "symbol": p.symbol})

    async def on_signal(
        self, p: Prediction, source: str, received_ms: int, perf: float, *, bar_prices: bool = False
    ) -> None:
        """Decide one accepted signal (the kernel's step 3b), persist, then act."""
        state = self.state
        assert state.om is not None
        assert state.book is not None
        symbol = p.symbol
        if symbol not in state.instruments:
            self._record_skip(
                p, source, received_ms, Pause.UNKNOWN_SYMBOL.label, f"{symbol} is not traded by this robot"
            )
            return
        try:
            # the loop refreshes prices every iteration; a signal only waits for one when it is very old
            max_age_s = None if bar_prices else 5 * state.config.price_max_age_s
            price = await state.market_view.price(symbol, max_age_s=max_age_s)
            for stuck in state.om.pending(symbol):  # an earlier order's outcome is unknown: look it up first
                await state.om.refresh(stuck)
        except TemporaryExchangeError as e:
            self.exchange_fault("signal", e)
            self._record_skip(p, source, received_ms, Pause.EXCHANGE_UNAVAILABLE.label, str(e)[:300])
            return
        if state.om.pending(symbol):
            self._record_skip(
                p,
                source,
                received_ms,
                Pause.ORDER_PENDING.label,
                ", ".join(o.client_order_id for o in state.om.pending(symbol)),
            )
            return
        side = state.book.open_side(symbol, price)
        linear = state.config.market == "linear"
        action = decide_action(p.sign, side, state.om.pending_exit(symbol), linear)
        actions: list[tuple[Intent, StoredOrder]] = []
        now = state.clock.now_ms()
        if action.exit:
            cid = state.om.client_id(symbol, p.id, "exit")
            intent = exit_intent(cid, symbol, side, now, "signal", price, p)
            stored = self.exits.exit_order(intent, symbol, price)
            if stored is not None:
                actions.append((intent, stored))
        if action.entry_side == 0:
            if actions:
                await self._commit_and_act(p, source, received_ms, Outcome.EXIT, actions, price, perf)
                return
            # nothing to exit after all (no tradable quantity): the signal is what it means with no position
            skip = action.skip or decide_action(p.sign, 0, False, linear).skip
            self._record_skip(p, source, received_ms, skip.label if skip is not None else "")
            return
        entry = self.entry(p, action.entry_side, price, now, bar_prices)
        if isinstance(entry, str):
            if actions:  # the exit still goes out (a reversal whose entry was denied)
                await self._commit_and_act(p, source, received_ms, Outcome.EXIT, actions, price, perf, note=entry)
            else:
                self._record_skip(p, source, received_ms, entry)
            return
        actions.append(entry)
        await self._commit_and_act(p, source, received_ms, Outcome.ENTRY, actions, price, perf)

    def entry(
        self, p: Prediction, side: int, price: float, now: int, bar_prices: bool = False
    ) -> tuple[Intent, StoredOrder] | str:
        """The entry on ``side`` for an allowed signal (``decider.decide_entry``), or the label of why it is denied.

        ``price`` is the price the order goes out at, ``now`` the decision's time; with ``bar_prices``
        the book is marked at the closed bar's closes, where the kernel decides.
        """
        state = self.state
        symbol = p.symbol
        assert state.om is not None
        assert state.book is not None
        pause = self.pause()
        if pause is not None:  # the decider would refuse: spare the book's numbers
            return pause.label
        cfg = state.config
        prices = state.market_view.price_map()
        marks = {**prices, **state.market_view.bar_closes} if bar_prices else prices  # the kernel decides at the close
        data = state.history
        symbols = data.symbols if data is not None else state.symbols
        j = symbols.index(symbol)
        atr = 0.0
        if cfg.sizing == "volatility" and data is not None:
            atr = float(daily_volatility_of(data, cfg.timeframe)[data.n_bars - 1, j])
        inputs = EntryInputs(
            price=price,
            equity=state.book.equity(marks),
            free_cash=state.book.free_cash(prices, state.lev),
            close=np.ascontiguousarray(data.close) if data is not None else np.full((1, len(symbols)), price),
            exposure=self._exposure(symbols, marks),
            column=j,
            daily_volatility=atr,
            instrument=state.instruments[symbol],
        )
        plan = decide_entry(state.settings, side, p.confidence, None, state.risk, inputs)
        if not isinstance(plan, EntryPlan):
            return plan.label
        cid = state.om.client_id(symbol, p.id, "entry")
        try:
            intent, command = entry_order(plan, p, price, now, cid, cfg.market, state.instruments[symbol])
        except OrderRejected as e:
            return f"{Denial.BELOW_MIN_NOTIONAL.label}: {e}"[:100]
        return intent, state.om.new_order(intent, command)

    def _exposure(self, symbols: Sequence[str], marks: dict[str, float]) -> np.ndarray:
        """Signed exposure per symbol for the correlation check (the kernel's ``exposure_vector_nb``).

        Orders go out at once, so there is no entry decided and not yet sent: only positions count.
        """
        state = self.state
        assert state.om is not None
        assert state.book is not None
        n = len(symbols)
        mark = np.array([marks.get(s, 0.0) for s in symbols])
        qty = np.array(
            [
                float(state.book.position(s).qty) if state.book.open_side(s, m) else 0.0
                for s, m in zip(symbols, mark, strict=True)
            ]
        )
        exiting = np.array([state.om.pending_exit(s) for s in symbols], dtype=np.bool_)
        none = np.zeros(n)
        return exposure_vector_nb(qty, mark, exiting, none, none, none, state.lev, np.zeros(n))

    async def _commit_and_act(
        self,
        p: Prediction,
        source: str,
        received_ms: int,
        outcome: Outcome,
        actions: list[tuple[Intent, StoredOrder]],
        price: float,
        perf: float,
        note: str = "",
    ) -> None:
        state = self.state
        assert state.om is not None
        main = actions[-1][1].client_order_id
        decision = self._decision(p, source, received_ms, outcome, "signal", note, main, price)
        # an entry goes out right after this transaction: store it SUBMITTED already (one write less before
        # the send); an exit stays INITIALIZED because the stop is cancelled first and its size may change
        actions = [
            (i, dataclasses.replace(o, order=o.order.apply(OrderSubmitted(o.client_order_id, decision.decided_ms))))
            if i.kind is IntentKind.ENTRY
            else (i, o)
            for i, o in actions
        ]
        if not state.store.record_decision(decision, [(i, o.order) for i, o in actions]):
            state.metrics.decisions.inc(outcome="ignored", reason="duplicate")
            return
        state.metrics.decisions.inc(outcome=str(outcome), reason="signal")
        for intent, stored in actions:
            state.om.track(intent, stored)
        for intent, stored in actions:
            if intent.kind is IntentKind.EXIT:
                await state.om.run_exit(stored, price, perf)
            else:
                await state.om.run_entry(stored, price, perf)

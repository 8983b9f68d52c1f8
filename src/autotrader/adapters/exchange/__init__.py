"""Exchange adapters: Bybit v5 through ccxt (REST), WebSocket streams, candle download."""

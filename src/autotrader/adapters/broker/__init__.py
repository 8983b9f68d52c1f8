"""Message-broker adapters: Kafka signal intake and publishing, and a local Tansu broker for tests.

Import the submodules directly (``autotrader.adapters.broker.kafka``, ``...broker.tansu``); this
package imports nothing heavy so ``confluent-kafka`` is only loaded when it is used.
"""

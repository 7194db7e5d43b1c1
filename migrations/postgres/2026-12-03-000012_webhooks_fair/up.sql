-- Fair webhook delivery (issue 12).
-- A circuit breaker per subscription: `failures` counts its consecutive failed attempts;
-- from 5 on, its deliveries are not claimed before `open_until` (microseconds), and then one
-- probe at a time is (the probe's claim moves `open_until` to its lease's end).
ALTER TABLE webhooks ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN open_until BIGINT NOT NULL DEFAULT 0;
-- When a delivery stopped being pending (delivered, or dead): pruning counts from it.
ALTER TABLE deliveries ADD COLUMN settled_at BIGINT;
UPDATE deliveries SET settled_at = COALESCE(last_attempt, created) WHERE status <> 'pending';
-- Claims are per subscription (round-robin), oldest due first.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due_by_webhook ON deliveries (webhook_id, next_at, seq) WHERE status = 'pending';
CREATE INDEX deliveries_settled ON deliveries (settled_at) WHERE status <> 'pending';

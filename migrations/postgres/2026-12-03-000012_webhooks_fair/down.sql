DROP INDEX deliveries_settled;
DROP INDEX deliveries_due_by_webhook;
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status = 'pending';
ALTER TABLE deliveries DROP COLUMN settled_at;
ALTER TABLE webhooks DROP COLUMN open_until;
ALTER TABLE webhooks DROP COLUMN failures;

-- A deployment may also publish its logged payload rows to a Kafka topic
-- or a NATS subject (kafka://BROKER/TOPIC, nats://HOST:PORT/SUBJECT), as
-- JSON objects; '' for none. The URL has no credentials: those come from
-- the server's config (queues:).
ALTER TABLE deployments ADD COLUMN payload_to TEXT NOT NULL DEFAULT '';

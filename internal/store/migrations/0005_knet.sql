-- KNET's own ids of a payment, as Checkout.com reports them in the payment's source: the keys of
-- the acquiring bank's statement and the KNET merchant portal, for settlement matching and for
-- looking a payment up from a customer's or the bank's id. One row per payment, learned from the
-- API (and webhooks carrying them); a later answer fills what an earlier one lacked.
CREATE TABLE knet_ids (
    payment_id          TEXT PRIMARY KEY,
    knet_payment_id     TEXT NOT NULL DEFAULT '',
    knet_transaction_id TEXT NOT NULL DEFAULT '',
    bank_reference      TEXT NOT NULL DEFAULT '',
    auth_code           TEXT NOT NULL DEFAULT '',
    post_date           TEXT NOT NULL DEFAULT '',  -- MMDD, as KNET sends it
    knet_result         TEXT NOT NULL DEFAULT '',
    ptlf                TEXT NOT NULL DEFAULT '',
    udf1                TEXT NOT NULL DEFAULT '',
    udf2                TEXT NOT NULL DEFAULT '',
    udf3                TEXT NOT NULL DEFAULT '',
    udf4                TEXT NOT NULL DEFAULT '',
    udf5                TEXT NOT NULL DEFAULT '',
    learned_at          TEXT NOT NULL
);
CREATE INDEX knet_ids_payment_id ON knet_ids (knet_payment_id) WHERE knet_payment_id != '';
CREATE INDEX knet_ids_transaction_id ON knet_ids (knet_transaction_id) WHERE knet_transaction_id != '';
CREATE INDEX knet_ids_bank_reference ON knet_ids (bank_reference) WHERE bank_reference != '';
-- Lookup by the merchant's reference.
CREATE INDEX payments_reference ON payments (reference) WHERE reference != '';

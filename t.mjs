import { createClient } from "@libsql/client"
const c = createClient({ url: "file:/tmp/dsb.db" })
const T = "effect_a2a_delegation_delegations"
const now = "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
const qs = {
 claim: `UPDATE ${T} SET owner = 'x' WHERE id IN (SELECT id FROM ${T} WHERE origin = 'bench' AND finished_at IS NULL AND lease_expires_at < ${now} ORDER BY seq + 0 LIMIT 10) RETURNING *`,
 count: `SELECT count(*) AS n FROM ${T} WHERE finished_at IS NOT NULL AND is_read = 0 AND finished_at > 5`,
 boundary: `SELECT finished_seq FROM ${T} WHERE finished_at IS NOT NULL AND (is_read = 1 OR finished_at <= 5) ORDER BY finished_seq DESC LIMIT 1 OFFSET 3`,
 batch: `SELECT id FROM ${T} WHERE finished_at IS NOT NULL AND (is_read = 1 OR finished_at <= 5) AND finished_seq <= 9 ORDER BY finished_seq LIMIT 500`,
 cap: `SELECT id FROM ${T} WHERE finished_at IS NOT NULL AND is_read = 0 AND finished_at > 5 ORDER BY finished_at, finished_seq LIMIT 3`,
 nextFinished: `SELECT coalesce(max(finished_seq), 0) + 1 FROM ${T} WHERE finished_at IS NOT NULL`,
 nextSeq: `SELECT coalesce(max(seq), 0) + 1 FROM ${T}`,
 list: `SELECT * FROM ${T} WHERE origin = 'bench' ORDER BY seq DESC LIMIT 50`,
 renew: `UPDATE ${T} SET lease_expires_at = 5 WHERE owner = 'a' AND finished_at IS NULL RETURNING id`,
 cancels: `SELECT id FROM ${T} WHERE owner = 'a' AND finished_at IS NULL AND cancel_requested = 1 ORDER BY seq`,
 unfinishedOwner: `SELECT * FROM ${T} WHERE origin = 'o' AND owner = 'a' AND finished_at IS NULL ORDER BY seq`,
 markRead: `UPDATE ${T} SET is_read = 1 WHERE id IN ('a','b') AND finished_at IS NOT NULL AND is_read = 0`,
 forget: `DELETE FROM effect_a2a_delegation_evicted WHERE seq <= (SELECT max(seq) FROM effect_a2a_delegation_evicted) - 5`,
}
for (const [k, q] of Object.entries(qs)) {
  const rows = (await c.execute("EXPLAIN QUERY PLAN " + q)).rows
  console.log(k, rows.map(r => r.detail).join(" | "))
}
c.close()

-- resume_schedule.lua: re-activate a paused schedule at its resume_at, under the leader's
-- lease, exactly once: nothing is written unless the lease still holds the caller's
-- "{term}:{token}" and the schedule is still the version the leader read (a new leader, or
-- anyone who changed it meanwhile, makes the write void; the caller re-reads).
--
-- KEYS
--   1 lease       STRING  "{term}:{token}" of the leader
--   2 schedule    HASH    the schedule's record
--   3 due         ZSET    the due index
--   4 resume      ZSET    schedule id -> resume_at (ms) of paused schedules
--   5 feed        ZSET    the stack's audit feed of the schedule's kind
--   6 trail       ZSET    the schedule's own audit trail
--
-- ARGV
--   1 lease_value      must equal GET KEYS[1]
--   2 schedule_id
--   3 version          the version the leader read
--   4 due_ms           its next occurrence's due-index score ("" when none remains)
--   5 audit_entry      the "resumed" entry (JSON, see store/audit.py)
--   6 audit_score      its time (µs)
--   7...               name/value pairs of the record's new fields
--
-- Returns -1 when the lease is not held, 0 when the schedule changed, 1 when resumed.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[2], 'version') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 7))
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
else
  redis.call('ZREM', KEYS[3], ARGV[2])
end
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[5])
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[5])
return 1

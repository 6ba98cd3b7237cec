-- keep_expiry.lua: before a schedule's record is rewritten or removed, copy the audit entry
-- of its expiry into its own trail, if the record says it expired and the stack's feed still
-- holds the entry (retention has not removed it).
--
-- The fire commit writes an expiry to the stack's feed alone (commit_fires.lua); audit.py
-- shows it in the schedule's trail from the record, for as long as the record says expired.
-- A writer that changes the record queues this first, in its own transaction, so the entry
-- stays in the trail after the record no longer says so (or is gone).
--
-- KEYS[1] the schedule's hash; ARGV[1] tickwork's key prefix. Returns 1 when it copied.

local s = redis.call('HMGET', KEYS[1], 'next_us', 'committed_us', 'stack', 'dialect', 'id')
local next_us, at, stack, dialect, id = s[1], s[2], s[3], s[4], s[5]
if next_us ~= '' or not at then return 0 end  -- not expired by a fire (or no record)
local kind = ({k6 = 'schedule', kragle = 'kragle_job', report = 'report'})[dialect] or 'schedule'
local entry = 'x:' .. stack .. ':' .. kind .. ':' .. id .. ':' .. at
if not redis.call('ZSCORE', ARGV[1] .. ':stack:' .. stack .. ':audit:' .. kind, entry) then
  return 0
end
redis.call('ZADD', ARGV[1] .. ':audit:' .. kind .. ':' .. id, at, entry)
return 1

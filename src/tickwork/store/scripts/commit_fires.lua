-- commit_fires.lua: commit one batch of fires, atomically, under the leader's lease.
--
-- Nothing is written unless the lease still holds the caller's "{term}:{token}". Then, for
-- each entry (one schedule), its runs, their RQ jobs and the schedule's move are written
-- only if the schedule is still the version the plan was made from (and its stack's blackout
-- windows the version the plan saw), and only if none of
-- the entry's occurrences is at or before the schedule's committed_us: the last occurrence
-- this script settled, written by it alone. So no occurrence is ever committed twice, even
-- if every check made before this script were wrong.
--
-- Besides the keys below it writes, under the prefix, each run's hash and its entries in
-- {p}:stack:{stack}:runs and {p}:load_test:{id}:runs and {p}:schedule:{id}:ledger, its stack
-- in {p}:stacks, each fired run's entry in {p}:unclaimed and its load test's last_run, the
-- schedule's hash, and the audit entry of a schedule that expires in its stack's
-- {p}:stack:{stack}:audit:{kind}.
--
-- KEYS
--   1 lease    STRING  "{term}:{token}" of the leader
--   2 due      ZSET    schedule id -> next fire (ms): the due index
--   3 queues   SET     RQ's set of queue keys
--   4 queue    LIST    the RQ queue the jobs are pushed on
--
-- ARGV, in this order (positions in Python: fires.HEAD, fires.ENTRY, fires.RUN)
--   head:
--     +0 lease_value        must equal GET KEYS[1]
--     +1 prefix             tickwork's key prefix ("{p}" in keys.py)
--     +2 job_prefix         RQ's job key prefix ("rq:job:")
--     +3 stamp_us           creation instant of runs encoded ahead ("" in an ordinary batch)
--   terminal:      a count, then the run statuses that have finished (overlap check)
--   fired_common:  a count, then name/value pairs of the run hash that every run encoded
--                  ahead shares (created, status, history...): sent once per batch
--   job_template:  a count, then name/value pairs every RQ job hash of the batch shares
--   entries:       a count, then each entry:
--     entry:
--       +0 schedule_id
--       +1 version               the version the plan was made from
--       +2 expected_next_us      the next_us the plan was made from ("" when none)
--       +3 fired_through_us      the schedule's new high-water mark
--       +4 next_us               its new next occurrence ("" when none remains)
--       +5 due_ms                its new due-index score ("" to leave the index)
--       +6 overlap_load_test     load test whose unfinished run makes it busy ("": no check)
--       +7 first_occurrence_us   earliest occurrence among its runs ("" when none)
--       +8 n_runs
--       +9 windows_version       the stack's blackout windows' version the plan was made
--                                with ("": no check); another one is a conflict
--     then n_runs runs, each:
--       +0 run_id
--       +1 job_id                RQ job id of a fired run ("" for a skipped one)
--       +2 job_data              the job's serialized call
--       +3 job_description
--       +4 created_us            run index score ("": stamp_us)
--       +5 occurrence_us         the occurrence the run settles: its schedule's ledger score
--       +6 n_fields
--     then n_fields name/value pairs of the run hash, less those the script writes itself:
--     id and job_id (from the run's head), schedule_id (the entry's), stack and
--     load_test_id (the schedule's): an argument costs Redis ~1,200 instructions
--
-- Returns
--   -1 when the lease is not held (nothing was written), else {conflicts, busy, repeats}:
--   schedule ids left out because their version or next changed (re-read and re-plan),
--   because their load test has a run that has not finished (overlap), or because an
--   occurrence was already committed (refused; the caller moves the schedule past it).

-- Globals read once: a global is a table lookup each time (-1 % of the script).
local ARGV, call, unpack, tonumber = ARGV, redis.call, unpack, tonumber
if call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local due_key, queues_key, queue_key = KEYS[2], KEYS[3], KEYS[4]
local prefix, job_prefix, stamp_us = ARGV[2], ARGV[3], ARGV[4]
local i = 5

local function list_at(at, width)
  local n = tonumber(ARGV[at]) * width
  local out = {}
  for t = 1, n do out[t] = ARGV[at + t] end
  return out, at + n + 1
end
-- A run's hash fields (the batch's common ones, then its own), gathered in one table reused
-- for every run: a table per run cost 2 % of the script (bench/fire_instructions.py).
local fields = {}
local NO_FIELDS = {}  -- a skipped run shares none of the batch's fired fields
local function gather(first, from, count)
  local n = #first
  for t = 1, n do fields[t] = first[t] end
  for t = 0, count - 1 do fields[n + 1 + t] = ARGV[from + t] end
  return n + count
end
-- unpack() is bounded by Lua's C stack: variadic commands go in slices.
local function in_slices(command, key, items)
  for s = 1, #items, 1000 do
    call(command, key, unpack(items, s, math.min(s + 999, #items)))
  end
end

local terminal, fired_common, template
terminal, i = list_at(i, 1)
fired_common, i = list_at(i, 2)
template, i = list_at(i, 2)
local is_terminal = {}
for _, name in ipairs(terminal) do is_terminal[name] = true end

local AUDIT_KIND = {k6 = 'schedule', kragle = 'kragle_job', report = 'report'}
local expiries = {}  -- the stack's audit feed -> score/entry pairs
local windows_of = {}
local function stack_windows(stack)
  local version = windows_of[stack]
  if version == nil then
    version = call('GET', prefix .. ':stack:' .. stack .. ':windows_version') or '0'
    windows_of[stack] = version
  end
  return version
end
local n_entries = tonumber(ARGV[i]); i = i + 1
local conflicts, busy, repeats = {}, {}, {}
local job_ids, due_add, due_rem, stack_runs, unclaimed = {}, {}, {}, {}, {}
for _ = 1, n_entries do
  local schedule_id = ARGV[i + 0]
  local version = ARGV[i + 1]
  local expected_next_us = ARGV[i + 2]
  local fired_through_us = ARGV[i + 3]
  local next_us = ARGV[i + 4]
  local due_ms = ARGV[i + 5]
  local overlap_load_test = ARGV[i + 6]
  local first_occurrence_us = ARGV[i + 7]
  local n_runs = tonumber(ARGV[i + 8])
  local windows_version = ARGV[i + 9]
  i = i + 10
  local skey = prefix .. ':schedule:' .. schedule_id
  local current = call('HMGET', skey, 'version', 'next_us', 'committed_us', 'stack',
    'dialect', 'load_test_id')
  local stack, load_test_id = current[4], current[6]
  local committed = tonumber(current[3] or '') or -1
  local ok = current[1] == version and current[2] == expected_next_us
  if not ok then
    conflicts[#conflicts + 1] = schedule_id
  elseif windows_version ~= '' and stack_windows(stack) ~= windows_version then
    ok = false
    conflicts[#conflicts + 1] = schedule_id
  elseif first_occurrence_us ~= '' and tonumber(first_occurrence_us) <= committed then
    ok = false
    repeats[#repeats + 1] = schedule_id
  elseif overlap_load_test ~= '' then
    local last = call('GET', prefix .. ':load_test:' .. overlap_load_test .. ':last_run')
    local status = last and call('HGET', prefix .. ':run:' .. last, 'status')
    if status and not is_terminal[status] then
      ok = false
      busy[#busy + 1] = schedule_id
    end
  end
  for _ = 1, n_runs do
    local run_id = ARGV[i + 0]
    local job_id = ARGV[i + 1]
    local job_data = ARGV[i + 2]
    local job_description = ARGV[i + 3]
    local created_us = ARGV[i + 4]
    local occurrence_us = ARGV[i + 5]
    local n_fields = tonumber(ARGV[i + 6])
    i = i + 7
    local fired = job_id ~= ''  -- a fired run has its job; a skipped one none
    if created_us == '' then created_us = stamp_us end
    if ok then
      local common = fired and fired_common or NO_FIELDS
      local n = gather(common, i, n_fields * 2)
      fields[n + 1], fields[n + 2] = 'id', run_id
      fields[n + 3], fields[n + 4] = 'stack', stack
      fields[n + 5], fields[n + 6] = 'load_test_id', load_test_id
      fields[n + 7], fields[n + 8] = 'schedule_id', schedule_id
      n = n + 8
      if fired then
        fields[n + 1], fields[n + 2] = 'job_id', job_id
        n = n + 2
      end
      call('HSET', prefix .. ':run:' .. run_id, unpack(fields, 1, n))
      if fired then
        call('SET', prefix .. ':load_test:' .. load_test_id .. ':last_run', run_id)
      end
      local by_stack = stack_runs[stack] or {}
      stack_runs[stack] = by_stack
      by_stack[#by_stack + 1] = created_us
      by_stack[#by_stack + 1] = run_id
      call('ZADD', prefix .. ':load_test:' .. load_test_id .. ':runs', created_us, run_id)
      call('ZADD', skey .. ':ledger', occurrence_us, run_id)
      if fired then
        call('HSET', job_prefix .. job_id, 'data', job_data, 'description', job_description,
          unpack(template))
        job_ids[#job_ids + 1] = job_id
        unclaimed[#unclaimed + 1] = created_us
        unclaimed[#unclaimed + 1] = run_id
      end
    end
    i = i + n_fields * 2
  end
  if ok then
    -- fired_through_us is left as it was: the schedule's decode reads the later of it and
    -- committed_us, so the move is committed_us alone (a field less per fire).
    local settled = fired_through_us
    if tonumber(fired_through_us) < committed then settled = string.format('%d', committed) end
    call('HSET', skey, 'next_us', next_us, 'committed_us', settled)
    if due_ms ~= '' then
      due_add[#due_add + 1] = due_ms
      due_add[#due_add + 1] = schedule_id
    else
      due_rem[#due_rem + 1] = schedule_id
    end
    if next_us == '' then
      -- No occurrence remains: the scheduler's own change, in the stack's audit feed, in the
      -- short form audit.py reads as the whole entry ("x:{stack}:{kind}:{resource}:{at}",
      -- at = committed_us). Not in the schedule's own trail: audit.py shows it there from
      -- the record while the record says so, and keep_expiry.lua copies it there before the
      -- record is rewritten or removed. A trail (a new key) per one-shot cost 4 % of the fire
      -- (bench/fire_instructions.py). The feed takes a batch's in one ZADD.
      local kind = AUDIT_KIND[current[5]] or 'schedule'
      local feed = prefix .. ':stack:' .. stack .. ':audit:' .. kind
      local items = expiries[feed] or {}
      expiries[feed] = items
      items[#items + 1] = settled
      items[#items + 1] = 'x:' .. stack .. ':' .. kind .. ':' .. schedule_id .. ':' .. settled
    end
  end
end
for stack, items in pairs(stack_runs) do
  in_slices('ZADD', prefix .. ':stack:' .. stack .. ':runs', items)
  call('SADD', prefix .. ':stacks', stack)
end
for feed, items in pairs(expiries) do in_slices('ZADD', feed, items) end
in_slices('ZADD', due_key, due_add)
in_slices('ZREM', due_key, due_rem)
in_slices('ZADD', prefix .. ':unclaimed', unclaimed)
in_slices('RPUSH', queue_key, job_ids)
if #job_ids > 0 then call('SADD', queues_key, queue_key) end
return {conflicts, busy, repeats}

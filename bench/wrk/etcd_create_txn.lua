-- wrk script: etcd taking the same lock the plain way, ONE create-if-absent transaction per lock through its
-- JSON gateway (etcd 3.4: POST /v3/kv/txn, keys and values base64): compare create_revision(locks/<id>) == 0,
-- then put locks/<id> = owner and the owner's index key owners/<owner>/<id>. No lease (the harness's etcd
-- peer also grants one per create, a second request): this is etcd's fastest durable lock create.
--   wrk -t2 -c64 -d10s --latency -s bench/wrk/etcd_create_txn.lua http://127.0.0.1:2379 -- TAG [BATCH]
-- BATCH (default 1): locks per transaction (compares and puts for each). The keys are unique per run, so every
-- txn succeeds; `python -m bench wrk` (which uses this) counts the keys afterwards to prove it.

local counter = 0
local thread_id = 0
local threads = {}
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(data)
   local out = {}
   for i = 1, #data, 3 do
      local a, b, c = data:byte(i, i + 2)
      local n = a * 65536 + (b or 0) * 256 + (c or 0)
      local chars = {}
      for j = 3, 0, -1 do
         local index = math.floor(n / (64 ^ j)) % 64
         table.insert(chars, alphabet:sub(index + 1, index + 1))
      end
      if not b then chars[3] = "=" end
      if not c then chars[4] = "=" end
      table.insert(out, table.concat(chars))
   end
   return table.concat(out)
end

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   tag = args[1] or "wrk"
   batch = tonumber(args[2] or "1")
   thread_id = id
   owner = base64("WrkOwner")
   wrk.method = "POST"
   wrk.path = "/v3/kv/txn"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   local compare, success = {}, {}
   for i = 1, batch do
      counter = counter + 1
      local instance = string.format("%sT%dN%d|svc|1.0.0", tag, thread_id, counter)
      local key = base64("locks/" .. instance)
      table.insert(compare, '{"key":"' .. key .. '","target":"CREATE","result":"EQUAL","create_revision":"0"}')
      table.insert(success, '{"request_put":{"key":"' .. key .. '","value":"' .. owner .. '"}}')
      table.insert(success, '{"request_put":{"key":"' .. base64("owners/WrkOwner/" .. instance) .. '"}}')
   end
   return wrk.format(nil, nil, nil, '{"compare":[' .. table.concat(compare, ",") .. '],"success":[' ..
                     table.concat(success, ",") .. ']}')
end

function done(summary, latency, requests)
   io.write(string.format("WRK-RESULT requests=%d duration_us=%d errors_status=%d errors_connect=%d " ..
                          "errors_read=%d errors_write=%d errors_timeout=%d p50_us=%d p90_us=%d p99_us=%d " ..
                          "p999_us=%d max_us=%d\n", summary.requests, summary.duration, summary.errors.status,
                          summary.errors.connect, summary.errors.read, summary.errors.write,
                          summary.errors.timeout, latency:percentile(50), latency:percentile(90),
                          latency:percentile(99), latency:percentile(99.9), latency.max))
end

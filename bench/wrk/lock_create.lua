-- wrk script: lockstore's lock create, each request a fresh lock (or a batch of them), owned by "WrkOwner".
--   wrk -t2 -c64 -d10s --latency -s bench/wrk/lock_create.lua http://127.0.0.1:8441 -- TAG [BATCH]
-- TAG makes the names unique per run (run twice with the same TAG and every create after the first
-- conflicts: 400); BATCH (default 1) is the number of locks per request. Used by `python -m bench wrk`.

local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   tag = args[1] or "wrk"
   batch = tonumber(args[2] or "1")
   thread_id = id
   wrk.method = "POST"
   wrk.path = "/serviceorchestration/orchestration/mgmt/lock/create"
   wrk.headers["Authorization"] = "Bearer SYSTEM//Sysop"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   local locks = {}
   for i = 1, batch do
      counter = counter + 1
      locks[i] = string.format('{"serviceInstanceId":"%sT%dN%d|svc|1.0.0","owner":"WrkOwner",' ..
                               '"expiresAt":"2999-01-01T00:00:00Z"}', tag, thread_id, counter)
   end
   return wrk.format(nil, nil, nil, '{"locks":[' .. table.concat(locks, ",") .. ']}')
end

function done(summary, latency, requests)
   io.write(string.format("WRK-RESULT requests=%d duration_us=%d errors_status=%d errors_connect=%d " ..
                          "errors_read=%d errors_write=%d errors_timeout=%d p50_us=%d p90_us=%d p99_us=%d " ..
                          "p999_us=%d max_us=%d\n", summary.requests, summary.duration, summary.errors.status,
                          summary.errors.connect, summary.errors.read, summary.errors.write,
                          summary.errors.timeout, latency:percentile(50), latency:percentile(90),
                          latency:percentile(99), latency:percentile(99.9), latency.max))
end

-- wrk script for bench.ingest: PUT ArchiveLink `create` requests, each with a docId unique across threads,
-- connections and runs, and a count of every answer that is not 201.
--   wrk -t2 -c16 -d15s --latency -s bench/create.lua URL -- RUNTAG BODYBYTES PATH
-- RUNTAG (letters/digits) makes docIds unique across runs against the same server; PATH is the script
-- path, e.g. /archivelink/acme/production.

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("id", next_id)
   table.insert(threads, thread)
end

function init(args)
   tag = args[1] or "R"
   local size = tonumber(args[2] or "102400")
   path = args[3] or "/archivelink/acme/production"
   -- Not all one byte: a body that compresses or deduplicates would flatter a server that does either.
   local block = ""
   for i = 0, 255 do
      block = block .. string.char((i * 73 + 41) % 256)
   end
   body = string.rep(block, math.floor(size / 256)) .. string.rep("x", size % 256)
   headers = { ["Content-Type"] = "application/pdf" }
   counter = 0
   non201 = 0
   first_bad = 0
end

function request()
   counter = counter + 1
   local doc = string.format("%sT%dN%d", tag, id, counter)
   return wrk.format("PUT", path .. "?create&pVersion=0047&contRep=Z1&docId=" .. doc .. "&compId=data",
                     headers, body)
end

function response(status, headers, body)
   if status ~= 201 then
      non201 = non201 + 1
      if first_bad == 0 then
         first_bad = status
      end
   end
end

function done(summary, latency, requests)
   local bad, status = 0, 0
   for _, thread in ipairs(threads) do
      bad = bad + thread:get("non201")
      local first = thread:get("first_bad")
      if first ~= 0 then
         status = first
      end
   end
   -- One machine-readable line for bench.ingest; durations in microseconds.
   io.write(string.format("BENCH requests=%d non201=%d first_bad=%d duration_us=%d p50_us=%d p99_us=%d " ..
                          "connect=%d read=%d write=%d timeout=%d\n",
                          summary.requests, bad, status, summary.duration,
                          latency:percentile(50), latency:percentile(99),
                          summary.errors.connect, summary.errors.read, summary.errors.write,
                          summary.errors.timeout))
end

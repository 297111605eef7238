-- Shared by every scenario script (loaded with dofile): thread numbering, per-thread
-- counters of response statuses and notable events, and a done() that prints one
-- machine-readable line, so that bench/run.sh never has to scrape wrk's human output.
--
-- wrk runs one Lua state per thread plus a main state. setup() and done() run in the main
-- state; init(), request() and response() in the thread's own state. Counters therefore
-- live in each thread's globals and done() collects them with thread:get().

local threads = {}
local next_thread_id = 0

-- Called in the main state once per thread, before that thread's init().
function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
  table.insert(threads, thread)
end

-- Per-thread counters (only filled in by scripts that define response(): asking wrk for
-- responses makes it parse headers and bodies, which costs client CPU, so the cheap
-- scenarios rely on wrk's own count of statuses above 399 instead).
statuses = {}
notes = {}

function count_status(status)
  statuses[status] = (statuses[status] or 0) + 1
end

function note(what)
  notes[what] = (notes[what] or 0) + 1
end

-- Reads a file into a list of its non-empty lines.
function read_lines(path)
  assert(path and path ~= "", "a token or user file is required (see bench/run.sh)")
  local lines = {}
  for line in io.lines(path) do
    if line ~= "" then lines[#lines + 1] = line end
  end
  assert(#lines > 0, path .. " is empty")
  return lines
end

local function encode_number(x)
  if x ~= x or x == math.huge or x == -math.huge then return "null" end
  if x == math.floor(x) and math.abs(x) < 2^53 then return string.format("%d", x) end
  return string.format("%.3f", x)
end

-- A minimal JSON encoder for what done() prints: numbers, strings and flat tables.
local function encode(value)
  local kind = type(value)
  if kind == "number" then return encode_number(value) end
  if kind == "string" then return string.format("%q", value) end
  if kind == "table" then
    local parts = {}
    for k, v in pairs(value) do
      parts[#parts + 1] = string.format("%q", tostring(k)) .. ":" .. encode(v)
    end
    table.sort(parts)
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return "null"
end

local function add_into(total, part)
  if type(part) ~= "table" then return end
  for k, v in pairs(part) do
    local key = tostring(k)
    total[key] = (total[key] or 0) + v
  end
end

-- Latencies are in microseconds. wrk's `requests` counts every complete response,
-- whatever its status; errors.status counts those above 399.
function done(summary, latency, requests)
  local all_statuses, all_notes = {}, {}
  for _, thread in ipairs(threads) do
    add_into(all_statuses, thread:get("statuses"))
    add_into(all_notes, thread:get("notes"))
  end
  local result = {
    requests = summary.requests,
    duration_us = summary.duration,
    bytes = summary.bytes,
    errors = summary.errors,
    latency_us = {
      mean = latency.mean,
      stdev = latency.stdev,
      max = latency.max,
      p50 = latency:percentile(50),
      p90 = latency:percentile(90),
      p99 = latency:percentile(99),
      p999 = latency:percentile(99.9),
    },
    statuses = all_statuses,
    notes = all_notes,
    threads = #threads,
  }
  io.write("BENCH_RESULT ", encode(result), "\n")
end

-- POST /signup with a fresh email per request: BENCH_NONCE (unique per server and run),
-- the thread id and a per-thread counter. Every signup hashes a password and writes a user
-- and a session. Each comes from an address of its own (X-Forwarded-For, which the server
-- trusts from 127.0.0.1), as real signups do, within the per-address limit; with
-- BENCH_SIGNUP_FROM set, all come from that one address: a signup flood.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local headers = { ["Content-Type"] = "application/json" }
local nonce, password, from
local counter = 0

function init(args)
  nonce = assert(os.getenv("BENCH_NONCE"), "BENCH_NONCE is required")
  password = assert(os.getenv("BENCH_PASSWORD"), "BENCH_PASSWORD is required")
  from = os.getenv("BENCH_SIGNUP_FROM")
  if from == "" then from = nil end
end

function request()
  counter = counter + 1
  local email = string.format("signup-%s-t%d-%d@bench.example.com", nonce, thread_id, counter)
  local body = string.format('{"email":"%s","password":"%s"}', email, password)
  headers["X-Forwarded-For"] = from or
    string.format("10.%d.%d.%d", thread_id % 256, math.floor(counter / 256) % 256, counter % 256)
  return wrk.format("POST", "/signup", headers, body)
end

function response(status, headers, body)
  count_status(status)
end

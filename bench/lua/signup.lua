-- POST /signup with a fresh email per request: BENCH_NONCE (unique per server and run),
-- the thread id and a per-thread counter. Every signup hashes a password and writes a user
-- and a session.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local headers = { ["Content-Type"] = "application/json" }
local nonce, password
local counter = 0

function init(args)
  nonce = assert(os.getenv("BENCH_NONCE"), "BENCH_NONCE is required")
  password = assert(os.getenv("BENCH_PASSWORD"), "BENCH_PASSWORD is required")
end

function request()
  counter = counter + 1
  local email = string.format("signup-%s-t%d-%d@bench.example.com", nonce, thread_id, counter)
  local body = string.format('{"email":"%s","password":"%s"}', email, password)
  return wrk.format("POST", "/signup", headers, body)
end

function response(status, headers, body)
  count_status(status)
end

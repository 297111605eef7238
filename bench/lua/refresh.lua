-- POST /refresh along refresh-token chains: every request presents the refresh token that
-- the previous response of the same session returned, as a real client does.
--
-- wrk's response() callback is per thread and does not say which connection (so which
-- request) it answers. Instead of tying a session to a connection, each thread keeps a
-- queue of sessions that have no request in flight: request() takes the oldest one's token,
-- and response() puts the successor from the body back at the end. A session is therefore
-- never used by two requests at once, whichever connection carries it, and its chain is
-- followed strictly in order. The thread needs at least as many sessions as connections;
-- bench/run.sh gives each a few spare ones, because:
--   * wrk calls request() once at start-up on the first thread only to check the request's
--     shape and never sends it: that session is left aside, unused (harmless);
--   * a non-200 answer ends its chain (there is no successor to present), so the error is
--     counted (by status, and as `chain_broken`) and that session is not used again;
--   * requests in flight when the run stops are abandoned.
-- Should a thread run out of sessions, it sends a request with no valid token (answered
-- 401, so counted as an error) and notes `starved`.
--
-- BENCH_REFRESH_TOKENS: one refresh token a line, each of its own session; thread N of
-- BENCH_THREADS takes the lines N, N + BENCH_THREADS, ...
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local headers = { ["Content-Type"] = "application/json" }
local queue, first, last = {}, 1, 0

local function push(token)
  last = last + 1
  queue[last] = token
end

function init(args)
  local threads = tonumber(os.getenv("BENCH_THREADS") or "")
  assert(threads, "BENCH_THREADS is required")
  for n, token in ipairs(read_lines(os.getenv("BENCH_REFRESH_TOKENS"))) do
    if (n - 1) % threads == thread_id then push(token) end
  end
end

function request()
  local token
  if first <= last then
    token = queue[first]
    queue[first] = nil
    first = first + 1
  else
    note("starved")
    token = "starved"
  end
  return wrk.format("POST", "/refresh", headers, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  count_status(status)
  if status == 200 then
    local successor = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if successor then
      push(successor)
    else
      note("no_refresh_token_in_body")
    end
  else
    note("chain_broken")
  end
end

-- GET /me with the access tokens of many users, one after another (BENCH_TOKENS: one
-- access token a line). Every request verifies a JWT and checks its session in the database.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local requests = {}
local index = 0

function init(args)
  for _, token in ipairs(read_lines(os.getenv("BENCH_TOKENS"))) do
    requests[#requests + 1] = wrk.format("GET", "/me", { ["Authorization"] = "Bearer " .. token })
  end
  -- Threads start at different users so that they do not walk the list in lockstep.
  index = (thread_id * 97) % #requests
end

function request()
  index = index % #requests + 1
  return requests[index]
end

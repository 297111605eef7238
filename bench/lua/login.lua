-- POST /login with valid credentials of many users (BENCH_USERS: one email a line; all of
-- them share the password BENCH_PASSWORD). Statuses are counted so that a 429 (throttling)
-- or a 503 shows up by name in the results.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local requests = {}
local index = 0

local function json_string(text)
  return '"' .. text:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function init(args)
  local password = assert(os.getenv("BENCH_PASSWORD"), "BENCH_PASSWORD is required")
  local headers = { ["Content-Type"] = "application/json" }
  for _, email in ipairs(read_lines(os.getenv("BENCH_USERS"))) do
    local body = '{"email":' .. json_string(email) .. ',"password":' .. json_string(password) .. '}'
    requests[#requests + 1] = wrk.format("POST", "/login", headers, body)
  end
  index = (thread_id * 97) % #requests
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function response(status, headers, body)
  count_status(status)
end

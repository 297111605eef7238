-- GET /healthz: the ceiling of the stack (HTTP parsing, middleware, routing, no database).
-- A static request: wrk formats it once and reuses it.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
wrk.method = "GET"
wrk.path = "/healthz"

-- Berth's dynamic upstreams for nginx (lua-nginx-module + lua-resty-core).
--
-- Loaded once per nginx start or reload by the `init_by_lua_block` of the upstreams file
-- Berth writes; that block hands it the peer sets Berth last recorded in the file, so a
-- restart or reload comes back with the current peers (never none, never stale ones).
--
-- State lives in the shared dict `berth` (one per nginx, seen by every worker):
--   up:NAME       JSON of the upstream: {"gen": N, "sides": [{"rev", "weight", "peers":
--                 [{"addr": "IP:PORT", "id", "name"}]}], "sticky": bool}
--   gen:NAME      its generation (workers re-parse `up:` only when it moves)
--   inflight:ADDR requests balanced to that peer and not yet logged (per-backend drain)
--   req|NAME|REV|CLASS, lat|NAME|REV|LE, latsum|NAME|REV: traffic by revision (analysis)
-- Berth changes it through `control()`, served on a unix socket only.

local cjson = require "cjson.safe"
local ngx_balancer = require "ngx.balancer"

local dict = ngx.shared.berth
local M = {}
local parsed = {}            -- per worker: NAME -> {gen = N, up = decoded}
local BUCKETS = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
local CLASSES = {["1"] = "1xx", ["2"] = "2xx", ["3"] = "3xx", ["4"] = "4xx", ["5"] = "5xx"}
local MAX_PEERS = 1024
local seeded = false

local function valid_side(side)
  if type(side) ~= "table" or type(side.rev) ~= "string" or type(side.peers) ~= "table" then
    return false
  end
  if type(side.weight) ~= "number" or side.weight < 0 or side.weight > 100 then
    return false
  end
  if #side.peers > MAX_PEERS then return false end
  for _, p in ipairs(side.peers) do
    if type(p) ~= "table" or type(p.addr) ~= "string"
        or not p.addr:match("^%d+%.%d+%.%d+%.%d+:%d+$") then
      return false
    end
  end
  return true
end

local function valid_upstream(up)
  if type(up) ~= "table" or type(up.gen) ~= "number" or type(up.sides) ~= "table" then
    return false
  end
  for _, side in ipairs(up.sides) do
    if not valid_side(side) then return false end
  end
  return true
end

local function store(name, up)
  local raw = cjson.encode(up)
  local ok, err = dict:set("up:" .. name, raw)
  if not ok then return nil, err end
  ok, err = dict:set("gen:" .. name, up.gen)
  if not ok then return nil, err end
  return true
end

-- nginx does not remove a stale unix socket before binding it: after a crash (kill -9,
-- OOM) the control socket's file is left behind and nginx would never start again. Here,
-- before nginx binds, a socket file that nobody listens on is removed; a live one (the
-- running nginx, during a reload or an `nginx -t`) answers and stays.
local ffi = require "ffi"
ffi.cdef[[
  struct berth_sockaddr_un { unsigned short sun_family; char sun_path[108]; };
  int socket(int domain, int type, int protocol);
  int connect(int fd, const void *addr, unsigned int len);
  int close(int fd);
  int unlink(const char *path);
]]
local AF_UNIX, SOCK_STREAM, ECONNREFUSED = 1, 1, 111

local function clear_stale_socket(path)
  if not path or #path >= 108 then return end
  local fd = ffi.C.socket(AF_UNIX, SOCK_STREAM, 0)
  if fd < 0 then return end
  local addr = ffi.new("struct berth_sockaddr_un")
  addr.sun_family = AF_UNIX
  ffi.copy(addr.sun_path, path)
  local rc = ffi.C.connect(fd, addr, ffi.sizeof(addr))
  local err = ffi.errno()
  ffi.C.close(fd)
  if rc ~= 0 and err == ECONNREFUSED then
    ffi.C.unlink(path)
    ngx.log(ngx.NOTICE, "berth: removed the stale control socket ", path)
  end
end

-- init_by_lua (master, at every start and reload): the file's record wins.
function M.init(state_json, socket_path)
  clear_stale_socket(socket_path)
  local state = cjson.decode(state_json)
  if type(state) ~= "table" or type(state.upstreams) ~= "table" then
    error("berth: the peer record in the upstreams file is not valid JSON")
  end
  if not dict:get("started") then
    -- A fresh shared memory zone (nginx started, not reloaded): no request is in flight.
    dict:flush_all()
    dict:set("started", true)
  end
  local names = {}
  for name, up in pairs(state.upstreams) do
    if not valid_upstream(up) then error("berth: bad peer record for " .. name) end
    local ok, err = store(name, up)
    if not ok then error("berth: cannot store peers of " .. name .. ": " .. err) end
    names[#names + 1] = name
  end
  table.sort(names)
  dict:set("structure", state.structure or "")
  dict:set("names", table.concat(names, " "))
end

local function current(name)
  local gen = dict:get("gen:" .. name)
  local cached = parsed[name]
  if cached and cached.gen == gen then return cached.up end
  local up = cjson.decode(dict:get("up:" .. name) or "null")
  parsed[name] = {gen = gen, up = up}
  return up
end

local function inflight(addr)
  return dict:get("inflight:" .. addr) or 0
end

local function cookie_name(name)
  return "berth_" .. name
end

local function pick_side(name, up, ctx)
  local sides = up.sides
  if up.sticky then
    local want = ngx.var["cookie_" .. cookie_name(name)]
    if want then
      for _, side in ipairs(sides) do
        if side.rev == want and side.weight > 0 and #side.peers > 0 then return side end
      end
    end
  end
  local total = 0
  for _, side in ipairs(sides) do
    if #side.peers > 0 then total = total + side.weight end
  end
  local chosen
  if total <= 0 then
    for _, side in ipairs(sides) do
      if #side.peers > 0 then chosen = side; break end
    end
  else
    local r = math.random() * total
    for _, side in ipairs(sides) do
      if #side.peers > 0 and side.weight > 0 then
        chosen = side
        r = r - side.weight
        if r < 0 then break end
      end
    end
  end
  if chosen and up.sticky then ctx.berth_cookie = cookie_name(name) .. "=" .. chosen.rev end
  return chosen
end

-- least_conn over the side's peers, from the in-flight counts drain needs anyway; a retry
-- avoids the peer that just failed when another exists.
local function pick_peer(side, avoid)
  local best, best_n
  local n = #side.peers
  local start = math.random(n)
  for i = 0, n - 1 do
    local p = side.peers[(start + i - 1) % n + 1]
    if p.addr ~= avoid or n == 1 then
      local c = inflight(p.addr)
      if best == nil or c < best_n then best, best_n = p, c end
    end
  end
  return best
end

-- balancer_by_lua: called for the first try and for every retry of a request.
function M.balance(name)
  if not seeded then
    math.randomseed(ngx.now() * 1000 + ngx.worker.pid())
    seeded = true
  end
  local ctx = ngx.ctx
  local up = current(name)
  local previous = ctx.berth_peer
  if previous then
    dict:incr("inflight:" .. previous, -1, 0)   -- that try is over
  end
  local side = ctx.berth_side
  if not side or not up then
    side = up and pick_side(name, up, ctx)
  end
  if not side or #side.peers == 0 then
    ctx.berth_peer = nil
    ngx.log(ngx.ERR, "berth: no peer for upstream ", name)
    return ngx.exit(502)
  end
  local peer = pick_peer(side, previous)
  local host, port = peer.addr:match("^(.+):(%d+)$")
  local ok, err = ngx_balancer.set_current_peer(host, tonumber(port))
  if not ok then
    ngx.log(ngx.ERR, "berth: set_current_peer ", peer.addr, ": ", err)
    return ngx.exit(502)
  end
  dict:incr("inflight:" .. peer.addr, 1, 0)
  if not ctx.berth_tries then
    ctx.berth_tries = 1
    if #side.peers > 1 then ngx_balancer.set_more_tries(1) end
  end
  ctx.berth_peer, ctx.berth_up, ctx.berth_rev, ctx.berth_side = peer.addr, name, side.rev, side
end

function M.header_filter()
  local c = ngx.ctx.berth_cookie
  if c then
    local existing = ngx.header["Set-Cookie"]
    local value = c .. "; Path=/; HttpOnly; SameSite=Lax"
    if existing == nil then
      ngx.header["Set-Cookie"] = value
    elseif type(existing) == "table" then
      existing[#existing + 1] = value
      ngx.header["Set-Cookie"] = existing
    else
      ngx.header["Set-Cookie"] = {existing, value}
    end
  end
end

local function last(v)
  if v == nil then return nil end
  return v:match("([^,%s:]+)%s*$")
end

-- log_by_lua (http level): the request is over; count it for its peer and revision.
function M.log()
  local ctx = ngx.ctx
  local peer = ctx.berth_peer
  if not peer then return end
  local left = dict:incr("inflight:" .. peer, -1, 0)
  if left and left < 0 then dict:set("inflight:" .. peer, 0) end
  local key = ctx.berth_up .. "|" .. ctx.berth_rev
  local header = last(ngx.var.upstream_header_time)
  local status = last(ngx.var.upstream_status)
  local class = "error"
  if header and header ~= "-" and status then class = CLASSES[status:sub(1, 1)] or "error" end
  dict:incr("req|" .. key .. "|" .. class, 1, 0)
  local t = tonumber(last(ngx.var.upstream_response_time))
  if t then
    for _, le in ipairs(BUCKETS) do
      if t <= le then dict:incr("lat|" .. key .. "|" .. le, 1, 0) end
    end
    dict:incr("lat|" .. key .. "|+Inf", 1, 0)
    dict:incr("latsum|" .. key, t, 0)
  end
end

local function reply(status, body)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(body))
  return ngx.exit(status)
end

local function state()
  local out = {structure = dict:get("structure") or "", upstreams = {}, inflight = {},
               pid = ngx.worker.pid()}
  for name in (dict:get("names") or ""):gmatch("%S+") do
    out.upstreams[name] = cjson.decode(dict:get("up:" .. name) or "null")
  end
  for _, key in ipairs(dict:get_keys(0)) do
    local addr = key:match("^inflight:(.+)$")
    if addr then out.inflight[addr] = dict:get(key) end
  end
  return out
end

local function stats()
  local out = {requests = {}, latency = {}, latency_sum = {}}
  for _, key in ipairs(dict:get_keys(0)) do
    local kind = key:match("^(%a+)|")
    if kind == "req" then
      out.requests[key:sub(5)] = dict:get(key)
    elseif kind == "lat" then
      out.latency[key:sub(5)] = dict:get(key)
    elseif kind == "latsum" then
      out.latency_sum[key:sub(8)] = dict:get(key)
    end
  end
  return out
end

local function put_upstream(name)
  local known = false
  for n in (dict:get("names") or ""):gmatch("%S+") do
    if n == name then known = true end
  end
  if not known then return reply(404, {error = "unknown upstream " .. name}) end
  ngx.req.read_body()
  local up = cjson.decode(ngx.req.get_body_data() or "")
  if not valid_upstream(up) then return reply(400, {error = "bad peer set"}) end
  local ok, err = store(name, up)
  if not ok then return reply(500, {error = err}) end
  return reply(200, {upstream = name, applied = cjson.decode(dict:get("up:" .. name))})
end

-- content_by_lua of the control server (unix socket only; see the upstreams file).
function M.control()
  local uri, method = ngx.var.uri, ngx.req.get_method()
  if uri == "/berth/state" and method == "GET" then return reply(200, state()) end
  if uri == "/berth/stats" and method == "GET" then return reply(200, stats()) end
  local name = uri:match("^/berth/upstreams/([%w_.-]+)$")
  if name and method == "PUT" then return put_upstream(name) end
  return reply(404, {error = "no such endpoint"})
end

return M

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
-- Berth changes it through `control()`, served on a unix socket only:
--   GET /berth/state             peer sets, structure, in-flight counts
--   GET /berth/stats             traffic by upstream, revision and status class
--   PUT /berth/upstreams/NAME    set an upstream's peer set (JSON body)
--   GET /berth/probe?host=IP&port=N&path=/p&timeout=S
--                                Berth's HTTP gate probe, made by nginx: for tasks on
--                                networks only the edge reaches (Swarm overlays). host is
--                                an IP literal (never a name), port 1..65535, path starts
--                                with / (<= 1024 bytes, no space or control chars), timeout
--                                seconds in (0, 30] (default 2) bounds the whole exchange.
--                                200 {"ok", "status", "detail", "ms"}; bad arguments: 400.

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

-- GET /berth/probe: one GET on a fresh connection from nginx, with HttpProber's verdicts
-- and wording (controller/adapters/http_prober.py): ok for 2xx and 3xx, "HTTP 503",
-- "connection refused", "timeout after 2s: ...".
local PROBE_MAX_TIMEOUT = 30
local PROBE_MAX_PATH = 1024
local PROBE_MAX_READ = 64 * 1024

local function ipv4(s)
  local parts = {s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")}
  if #parts ~= 4 then return false end
  for _, p in ipairs(parts) do
    if #p > 3 or (#p > 1 and p:sub(1, 1) == "0") or tonumber(p) > 255 then return false end
  end
  return true
end

local function ipv6(s)
  if #s > 45 or not s:match("^[%x:.]+$") then return false end
  local head, tail = s:match("^(.*:)(%d+%.[%d.]+)$")
  if tail then                         -- an embedded IPv4 (::ffff:1.2.3.4) is two groups
    if not ipv4(tail) then return false end
    s = head .. "0:0"
  end
  if not s:match("^[%x:]+$") or s:find(":::", 1, true) then return false end
  local _, doubles = s:gsub("::", "")
  if doubles > 1 then return false end
  if (s:sub(1, 1) == ":" and s:sub(1, 2) ~= "::")
      or (s:sub(-1) == ":" and s:sub(-2) ~= "::") then
    return false
  end
  local groups = 0
  for g in s:gmatch("[^:]+") do
    if #g > 4 then return false end
    groups = groups + 1
  end
  if doubles == 1 then return groups <= 7 end
  return groups == 8
end

-- The arguments, or nil and the complaint (naming the argument).
local function probe_args()
  local args, err = ngx.req.get_uri_args(16)
  if err then return nil, "too many arguments" end
  for k, v in pairs(args) do
    if type(v) ~= "string" then return nil, tostring(k) .. ": give it once, with a value" end
  end
  local host = args.host
  if not host or host == "" then return nil, "host: required (an IP address)" end
  host = host:match("^%[(.*)%]$") or host
  local family
  if ipv4(host) then family = 4 elseif ipv6(host) then family = 6 else
    return nil, "host: must be an IPv4 or IPv6 address, not a name"
  end
  local port = args.port
  if not port or not port:match("^%d+$") or #port > 5
      or tonumber(port) < 1 or tonumber(port) > 65535 then
    return nil, "port: must be an integer 1..65535"
  end
  local path = args.path
  if not path or path:sub(1, 1) ~= "/" then return nil, "path: must start with /" end
  if #path > PROBE_MAX_PATH then
    return nil, "path: longer than " .. PROBE_MAX_PATH .. " bytes"
  end
  if path:find("[%z\1-\32\127]") then
    return nil, "path: no spaces or control characters (CR, LF...)"
  end
  local timeout = 2
  if args.timeout ~= nil then
    local t = args.timeout
    timeout = (t:match("^%d+%.?%d*$") or t:match("^%.%d+$")) and tonumber(t)
    if not timeout or timeout <= 0 or timeout > PROBE_MAX_TIMEOUT then
      return nil, "timeout: must be seconds in (0, " .. PROBE_MAX_TIMEOUT .. "]"
    end
  end
  local hostport = (family == 6 and "[" .. host .. "]" or host) .. ":" .. port
  return {host = host, family = family, port = tonumber(port), path = path,
          timeout = timeout, hostport = hostport}
end

-- One exchange, bounded by a.timeout as a whole: each step gets what is left of it.
-- Returns status (or nil) and detail.
local function probe_once(a)
  local deadline = ngx.now() + a.timeout
  local sock = ngx.socket.tcp()
  local function left()
    return math.max(1, math.floor((deadline - ngx.now()) * 1000))
  end
  local function failed(err, doing)
    sock:close()
    if err == "timeout" then
      return nil, string.format("timeout after %gs: timed out %s", a.timeout, doing)
    end
    return nil, err
  end
  sock:settimeout(left())
  local ok, err = sock:connect(a.family == 6 and "[" .. a.host .. "]" or a.host, a.port)
  if not ok then return failed(err, "connecting") end
  sock:settimeout(left())
  ok, err = sock:send("GET " .. a.path .. " HTTP/1.1\r\nHost: " .. a.hostport
    .. "\r\nConnection: close\r\nUser-Agent: berth-probe\r\nAccept: */*\r\n\r\n")
  if not ok then return failed(err, "sending the request") end
  -- Read up to the end of the headers (bounded), then drain what the body may be.
  local got, size, status = {}, 0, nil
  local head_end, length
  while true do
    sock:settimeout(left())
    local data, rerr = sock:receiveany(PROBE_MAX_READ - size)
    if not data then
      if rerr == "closed" then break end
      if status == nil then return failed(rerr, "reading the status line") end
      return failed(rerr, "reading the response")
    end
    size = size + #data
    if not head_end then
      got[#got + 1] = data
      local text = table.concat(got)
      got = {text}
      if status == nil and text:find("\n", 1, true) then
        local line = text:match("^([^\r\n]*)")
        local code = line:match("^HTTP/%d%.%d (%d%d%d)")
        if not code then
          sock:close()
          return nil, "bad status line: " .. line:sub(1, 80)
        end
        status = tonumber(code)
      end
      local e = text:find("\r\n\r\n", 1, true)
      if e then
        head_end = e + 3
        local cl = text:sub(1, e):lower():match("\ncontent%-length:%s*(%d+)")
        if cl and not text:sub(1, e):lower():find("\ntransfer%-encoding:") then
          length = head_end + tonumber(cl)
        end
        got = nil
      end
    end
    if size >= PROBE_MAX_READ or (length and size >= length) then break end
  end
  sock:close()
  if status == nil then
    if size >= PROBE_MAX_READ then return nil, "no status line in the first 64 KiB" end
    return nil, "connection closed before a status line"
  end
  return status, "HTTP " .. status
end

local function probe()
  local a, why = probe_args()
  if not a then return reply(400, {error = why}) end
  ngx.update_time()
  local t0 = ngx.now()
  local status, detail = probe_once(a)
  ngx.update_time()
  local ms = math.floor((ngx.now() - t0) * 1000 + 0.5)
  return reply(200, {ok = status ~= nil and status >= 200 and status < 400,
                     status = status or cjson.null, detail = detail, ms = ms})
end

-- content_by_lua of the control server (unix socket only; see the upstreams file).
function M.control()
  local uri, method = ngx.var.uri, ngx.req.get_method()
  if uri == "/berth/state" and method == "GET" then return reply(200, state()) end
  if uri == "/berth/stats" and method == "GET" then return reply(200, stats()) end
  if uri == "/berth/probe" and method == "GET" then return probe() end
  local name = uri:match("^/berth/upstreams/([%w_.-]+)$")
  if name and method == "PUT" then return put_upstream(name) end
  return reply(404, {error = "no such endpoint"})
end

return M

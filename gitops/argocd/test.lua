-- Tests of the Argo CD health and actions of a Siskin Rollout against real
-- Rollout objects captured from sandbox runs (testdata/*.json, saved from
-- `kubectl get rollout -o json`). Run: lua5.4 gitops/argocd/test.lua
-- Exits non-zero if any check fails.

local here = arg[0]:match("^(.*)/[^/]*$") or "."
local script_dir = here .. "/siskin.io/Rollout"

-- A small JSON reader: enough for Kubernetes objects.
local function decode(text)
  local pos = 1
  local function ws() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local value
  local function str()
    local out, i = {}, pos + 1
    while true do
      local c = text:sub(i, i)
      if c == '"' then break end
      if c == "\\" then
        local n = text:sub(i + 1, i + 1)
        local map = { n = "\n", t = "\t", r = "\r", b = "\b", f = "\f", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" }
        if n == "u" then
          out[#out + 1] = utf8.char(tonumber(text:sub(i + 2, i + 5), 16))
          i = i + 6
        else
          out[#out + 1] = map[n]
          i = i + 2
        end
      else
        out[#out + 1] = c
        i = i + 1
      end
    end
    pos = i + 1
    return table.concat(out)
  end
  -- The items of an object or array up to `close`, each read by `item`.
  local function items(close, item)
    local t = {}
    pos = pos + 1
    ws()
    if text:sub(pos, pos) == close then pos = pos + 1 return t end
    while true do
      item(t)
      ws()
      local d = text:sub(pos, pos)
      pos = pos + 1
      if d == close then return t end
    end
  end
  local function member(t)
    ws()
    local k = str()
    ws()
    pos = pos + 1 -- ':'
    t[k] = value()
  end
  function value()
    ws()
    local c = text:sub(pos, pos)
    if c == "{" then
      return items("}", member)
    elseif c == "[" then
      return items("]", function(t) t[#t + 1] = value() end)
    elseif c == '"' then
      return str()
    elseif text:sub(pos, pos + 3) == "true" then pos = pos + 4 return true
    elseif text:sub(pos, pos + 4) == "false" then pos = pos + 5 return false
    elseif text:sub(pos, pos + 3) == "null" then pos = pos + 4 return nil
    else
      local s, e = text:find("^-?[%d.eE+-]+", pos)
      pos = e + 1
      return math.tointeger(tonumber(text:sub(s, e))) or tonumber(text:sub(s, e))
    end
  end
  return value()
end

local function read(path)
  local f = assert(io.open(path, "r"))
  local text = f:read("a")
  f:close()
  return text
end

local function fixture(name)
  return decode(read(here .. "/testdata/" .. name .. ".json"))
end

-- Runs a script as Argo CD does: the object in the global `obj`.
-- As render.sh hands them to Argo CD: an action is request.lua followed by
-- its own action.lua.
local function source(script)
  local text = read(script_dir .. "/" .. script)
  if script:match("/action%.lua$") then
    text = read(script_dir .. "/actions/request.lua") .. text
  end
  return text
end

local function run(script, object)
  local env = setmetatable({ obj = object }, { __index = _G })
  local chunk = assert(load(source(script), script, "t", env))
  return chunk()
end

local failures, checks = 0, 0
local function check(what, ok, detail)
  checks = checks + 1
  if not ok then
    failures = failures + 1
    print("FAIL " .. what .. (detail and (": " .. detail) or ""))
  end
end

-- Health.
local expected = {
  healthy = "Healthy",
  progressing = "Progressing",
  paused = "Suspended",
  aborted = "Degraded",
  invalid = "Degraded",
}
for name, status in pairs(expected) do
  local hs = run("health.lua", fixture(name))
  check("health of " .. name, hs.status == status, tostring(hs.status))
  check("health message of " .. name, type(hs.message) == "string" and #hs.message > 0)
end
local stale = fixture("healthy")
stale.metadata.generation = stale.status.observedGeneration + 1
check("a generation not yet observed is progressing", run("health.lua", stale).status == "Progressing")
local fresh = fixture("healthy")
fresh.status = nil
check("no status yet is progressing", run("health.lua", fresh).status == "Progressing")

-- Discovery: what each state offers.
local function enabled(name)
  local out = {}
  for action, def in pairs(run("actions/discovery.lua", fixture(name))) do
    if not def.disabled then out[#out + 1] = action end
  end
  table.sort(out)
  return table.concat(out, ",")
end
check("actions of a paused canary", enabled("paused") == "abort,promote,promote-full", enabled("paused"))
check("actions of a progressing canary", enabled("progressing") == "abort,promote,promote-full", enabled("progressing"))
check("actions of an aborted canary", enabled("aborted") == "retry", enabled("aborted"))
check("actions of a healthy rollout", enabled("healthy") == "", enabled("healthy"))
local manual = fixture("paused")
manual.status.pause.reason = "Manual"
local offered = {}
for action, def in pairs(run("actions/discovery.lua", manual)) do offered[action] = not def.disabled end
check("a manual pause offers resume", offered["resume"] == true)

-- Actions: the annotation exactly as the CLI writes it.
local pattern = "^(%l[%l-]*)@(%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ)@?(.*)$"
for _, action in ipairs({ "promote", "promote-full", "abort", "retry", "resume" }) do
  local object = fixture("paused")
  local canary = object.status.canaryRevision
  local out = run("actions/" .. action .. "/action.lua", object)
  local value = out.metadata.annotations["siskin.io/request"]
  local word, _, revision = tostring(value):match(pattern)
  check(action .. " writes <action>@<time>@<revision>", word == action and revision == canary, tostring(value))
  check(action .. " keeps the other annotations", out.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"] ~= nil)
end
local steady = fixture("healthy")
local out = run("actions/retry/action.lua", steady)
local word, _, revision = out.metadata.annotations["siskin.io/request"]:match(pattern)
check("without a canary the request names no revision", word == "retry" and revision == "", tostring(revision))

-- A pending abort wins, as in the CLI.
local pending = fixture("paused")
pending.metadata.annotations["siskin.io/request"] = "abort@2026-01-01T00:00:00Z@" .. pending.status.canaryRevision
local ok = pcall(run, "actions/promote/action.lua", pending)
check("a pending abort is not replaced by a promote", not ok)
ok = pcall(run, "actions/abort/action.lua", pending)
check("an abort may replace a pending abort", ok)
local handled = fixture("aborted")
ok = pcall(run, "actions/retry/action.lua", handled)
check("a handled abort does not block retry", ok)

print(string.format("%d checks, %d failed", checks, failures))
os.exit(failures == 0 and 0 or 1)

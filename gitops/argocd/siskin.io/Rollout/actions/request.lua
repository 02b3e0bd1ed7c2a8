-- Records a manual request exactly as `siskin <action>` does: the
-- annotation siskin.io/request = <action>@<RFC 3339 time>[@<canary
-- revision>]. The controller acts on each value once. A pending abort the
-- controller has not handled yet wins: no other request replaces it.
-- Argo CD runs each action alone: render.sh puts this function before each
-- action.lua, which is one line naming its action.
local function request(obj, action)
  local annotations = obj.metadata.annotations or {}
  local pending = annotations["siskin.io/request"]
  local status = obj.status or {}
  if pending ~= nil and action ~= "abort" and string.sub(pending, 1, 6) == "abort@"
    and status.lastHandledRequest ~= pending then
    error("an abort is pending and wins; " .. action .. " was not recorded")
  end
  local value = action .. "@" .. os.date("!%Y-%m-%dT%H:%M:%SZ")
  if status.canaryRevision ~= nil and status.canaryRevision ~= "" then
    value = value .. "@" .. status.canaryRevision
  end
  annotations["siskin.io/request"] = value
  obj.metadata.annotations = annotations
  return obj
end

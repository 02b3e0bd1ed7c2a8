-- Argo CD health of a Siskin Rollout, from what the controller writes in
-- status (phase, conditions, observedGeneration).
local hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the Siskin controller"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "waiting for the Siskin controller to observe generation " .. generation
  return hs
end
local function condition(type_)
  for _, c in ipairs(status.conditions or {}) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end
local message = status.message or ""
local phase = status.phase
if phase == "InvalidSpec" then
  hs.status = "Degraded"
elseif phase == "Aborted" then
  hs.status = "Degraded"
elseif phase == "Paused" then
  hs.status = "Suspended"
elseif phase == "Healthy" then
  local healthy = condition("Healthy")
  if healthy ~= nil and healthy.status == "True" then
    hs.status = "Healthy"
  else
    hs.status = "Progressing"
  end
else
  -- Pending, Queued, Progressing, Promoting.
  hs.status = "Progressing"
end
hs.message = message
return hs

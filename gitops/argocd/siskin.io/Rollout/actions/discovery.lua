-- Which Siskin requests make sense now; the others show disabled.
local status = obj.status or {}
local phase = status.phase
local inflight = status.canaryRevision ~= nil and status.abort == nil
  and (phase == "Progressing" or phase == "Paused" or phase == "Promoting")
local paused_for_human = status.pause ~= nil and status.pause.reason ~= "PauseStep"
local actions = {}
actions["promote"] = {["disabled"] = not inflight}
actions["promote-full"] = {["disabled"] = not inflight}
actions["abort"] = {["disabled"] = not inflight}
actions["retry"] = {["disabled"] = phase ~= "Aborted"}
actions["resume"] = {["disabled"] = not (inflight and paused_for_human)}
return actions

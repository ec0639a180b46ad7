-- wrk pacing for a fixed request rate (wrk2 is not packaged): each
-- connection waits between its requests so that all connections together
-- send about RATE requests per second.
--
--   wrk -t1 -c10 -d10s --latency -s pace.lua URL -- RATE CONNECTIONS THREADS
--
-- wrk's delay() is counted from the previous response, not from the previous
-- send, so the wait is corrected once per wall-clock second by the ratio of
-- the rate achieved in that second to the target (os.time() is the only
-- clock wrk's Lua has). wrk times a request from its first byte written, so
-- the wait never enters the latency figures.

local interval_ms = 10
local target = 1000
local sent = 0
local window_start = nil
local aligned = false

function init(args)
  local rate = tonumber(args[1] or "1000")
  local conns = tonumber(args[2] or "10")
  local threads = tonumber(args[3] or "1")
  target = rate / threads
  interval_ms = (conns / threads) * 1000 / target
end

function delay()
  local now = os.time()
  if window_start == nil then
    window_start = now
    sent = 0
  elseif now > window_start then
    -- The first window began mid-second; only whole seconds correct the wait.
    if aligned and now == window_start + 1 and sent > 0 then
      -- A full second has been counted: scale the wait by achieved/target.
      local factor = sent / target
      if factor < 0.5 then factor = 0.5 end
      if factor > 2 then factor = 2 end
      interval_ms = interval_ms * factor
    end
    window_start = now
    aligned = true
    sent = 0
  end
  sent = sent + 1
  -- wrk takes whole milliseconds: dither so the mean wait is interval_ms.
  return math.floor(interval_ms + math.random())
end

-- REST guard of the Switchboard gateway (Envoy http Lua filter, before the JSON
-- transcoder). The transcoder drops JSON fields and accepts query parameters the
-- contract does not know (Envoy has no option for body fields): a typo such as
-- "audiance" would silently fall back to a default. This filter refuses them with
-- 400 and a google.rpc.Status naming each offending field, answers 405 for a known
-- path with another verb, 414 for an oversized path and 431 for headers the services
-- would refuse (gRPC's metadata limit).
--
-- ROUTES, MESSAGES and LIMITS are rendered above this code by mesh/rest_guard.py from
-- the descriptor set (the same one the transcoder reads): the one source of truth.
-- A field is {k = kind, t = type name, r = repeated, map = value kind}; kinds: "s"
-- scalar or enum (its value is the transcoder's to check), "m" message, "w" a
-- well-known type written as a JSON scalar (Timestamp, Duration, wrappers), "o"
-- opaque (Struct, Value, Any: any JSON).

local MAX_DEPTH = 100

local function json_string(text)
  -- JSON-escape text the client sent: control bytes escaped, non-ASCII replaced (the
  -- field names of the contract are ASCII; this keeps the reply valid UTF-8).
  local escaped = text:gsub('[%c"\\\128-\255]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    if c:byte() >= 128 then return "\\ufffd" end
    return string.format("\\u%04x", c:byte())
  end)
  return '"' .. escaped .. '"'
end

local function reply(handle, status, code, message, violations, extra_headers)
  local details = ""
  if violations and #violations > 0 then
    local parts = {}
    for i, v in ipairs(violations) do
      parts[i] = '{"field":' .. json_string(v.field) .. ',"description":' .. json_string(v.description) .. "}"
    end
    details = '{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":['
      .. table.concat(parts, ",") .. "]}"
  end
  local body = '{"code":' .. code .. ',"message":' .. json_string(message) .. ',"details":[' .. details .. "]}"
  -- Tells local_reply_config that this body is a Status already (no second wrapping).
  handle:streamInfo():dynamicMetadata():set("switchboard", "status_json", true)
  local headers = { [":status"] = tostring(status), ["content-type"] = "application/json" }
  for k, v in pairs(extra_headers or {}) do headers[k] = v end
  handle:respond(headers, body)
end

-- JSON parser: values become {o = {keys..}, v = {key -> value}} for objects,
-- {a = {values..}} for arrays and {} for scalars. Errors raise {json = message}.
local parse_value

local function fail(message, pos)
  error({ json = message .. " at byte " .. pos }, 0)
end

local function skip_ws(s, pos)
  return s:find("[^ \t\r\n]", pos) or #s + 1
end

local ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function parse_string(s, pos)
  -- s:sub(pos, pos) == '"'; returns the decoded string and the position after it.
  local out, i = {}, pos + 1
  while true do
    local j = s:find('["\\%c]', i)
    if not j then fail("unterminated string", pos) end
    out[#out + 1] = s:sub(i, j - 1)
    local c = s:sub(j, j)
    if c == '"' then return table.concat(out), j + 1 end
    if c ~= "\\" then fail("control character in string", j) end
    local e = s:sub(j + 1, j + 1)
    if ESCAPES[e] then
      out[#out + 1] = ESCAPES[e]
      i = j + 2
    elseif e == "u" then
      local hex = s:sub(j + 2, j + 5)
      if not hex:match("^%x%x%x%x$") then fail("bad \\u escape", j) end
      local n = tonumber(hex, 16)
      out[#out + 1] = n < 128 and string.char(n) or "\255" -- non-ASCII: never a field name
      i = j + 6
    else
      fail("bad escape", j)
    end
  end
end

local function parse_object(s, pos, depth)
  local node = { o = {}, v = {} }
  pos = skip_ws(s, pos + 1)
  if s:sub(pos, pos) == "}" then return node, pos + 1 end
  while true do
    if s:sub(pos, pos) ~= '"' then fail("expected a field name", pos) end
    local key
    key, pos = parse_string(s, pos)
    pos = skip_ws(s, pos)
    if s:sub(pos, pos) ~= ":" then fail("expected ':'", pos) end
    local value
    value, pos = parse_value(s, skip_ws(s, pos + 1), depth + 1)
    if node.v[key] == nil then node.o[#node.o + 1] = key end
    node.v[key] = value
    pos = skip_ws(s, pos)
    local c = s:sub(pos, pos)
    if c == "}" then return node, pos + 1 end
    if c ~= "," then fail("expected ',' or '}'", pos) end
    pos = skip_ws(s, pos + 1)
  end
end

local function parse_array(s, pos, depth)
  local node = { a = {} }
  pos = skip_ws(s, pos + 1)
  if s:sub(pos, pos) == "]" then return node, pos + 1 end
  while true do
    local value
    value, pos = parse_value(s, pos, depth + 1)
    node.a[#node.a + 1] = value
    pos = skip_ws(s, pos)
    local c = s:sub(pos, pos)
    if c == "]" then return node, pos + 1 end
    if c ~= "," then fail("expected ',' or ']'", pos) end
    pos = skip_ws(s, pos + 1)
  end
end

parse_value = function(s, pos, depth)
  if depth > MAX_DEPTH then fail("nested too deeply", pos) end
  local c = s:sub(pos, pos)
  if c == "{" then return parse_object(s, pos, depth) end
  if c == "[" then return parse_array(s, pos, depth) end
  if c == '"' then
    local _, after = parse_string(s, pos)
    return {}, after
  end
  for _, literal in ipairs({ "true", "false", "null" }) do
    if s:sub(pos, pos + #literal - 1) == literal then return {}, pos + #literal end
  end
  local number = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
  if number then return {}, pos + #number end
  fail("unexpected character", pos)
end

local function parse_json(s)
  local value, pos = parse_value(s, skip_ws(s, 1), 0)
  pos = skip_ws(s, pos)
  if pos <= #s then fail("unexpected data after the value", pos) end
  return value
end

-- Schema walk: appends {field, description} for every key the contract lacks.
local check_message

local function check_value(field, node, where, out)
  if field.k == "o" or field.k == "w" or node == nil then return end
  if field.r then
    if node.a then
      for i, item in ipairs(node.a) do check_value({ k = field.k, t = field.t }, item, where .. "[" .. (i - 1) .. "]", out) end
    end
    return
  end
  if field.map then
    if node.o then
      for _, key in ipairs(node.o) do
        check_value({ k = field.map, t = field.t }, node.v[key], where .. "[" .. json_string(key) .. "]", out)
      end
    end
    return
  end
  if field.k == "m" and node.o then check_message(field.t, node, where, out) end
end

check_message = function(type_name, node, where, out)
  local fields = MESSAGES[type_name]
  if not fields then return end
  for _, key in ipairs(node.o) do
    local path = where == "" and key or where .. "." .. key
    local field = fields[key]
    if field == nil then
      if #out < 20 then
        out[#out + 1] = { field = path, description = "unknown field: " .. type_name .. " has no field " .. json_string(key) }
      end
    else
      check_value(field, node.v[key], path, out)
    end
  end
end

local function url_decode(text)
  text = text:gsub("%+", " ")
  return (text:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function query_field_known(type_name, name)
  -- A query parameter names a field by its dotted path: each step but the last a
  -- singular message field, the last a scalar, an enum (repeated allowed) or a
  -- well-known type written as a JSON string or number (Timestamp, wrappers...).
  if name == "" or name:find("^%.") or name:find("%.%.") or name:find("%.$") then return false end
  local parts = {}
  for part in name:gmatch("[^.]+") do parts[#parts + 1] = part end
  for i, part in ipairs(parts) do
    local fields = MESSAGES[type_name]
    local field = fields and fields[part]
    if field == nil or field.map then return false end
    if i == #parts then return field.k == "s" or field.k == "w" end
    if field.k ~= "m" or field.r then return false end
    type_name = field.t
  end
  return false
end

local function check_query(route, query, out)
  for pair in query:gmatch("[^&]+") do
    local name = url_decode(pair:match("^[^=]*"))
    local why = nil
    if route.b ~= "" then
      why = "this route takes its fields from the JSON body, not the query string"
    elseif not query_field_known(route.m, name) then
      why = "unknown query parameter: " .. route.m .. " has no such field"
    end
    if why and #out < 20 then out[#out + 1] = { field = name, description = why } end
  end
end

local function find_route(verb, path)
  -- As the transcoder does: a path that a custom-verb template (`/x/{id}:cancel`) matches
  -- is that template's, never a plain one's whose last variable would swallow `:cancel`.
  local other_verbs, custom = {}, false
  for _, route in ipairs(ROUTES) do
    if (route.x or not custom) and path:match(route.p) then
      if route.v == verb then return route, nil end
      other_verbs[#other_verbs + 1] = route.v
      custom = custom or route.x
    end
  end
  return nil, other_verbs
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local content_type = headers:get("content-type") or ""
  if content_type:find("^application/grpc") then return end -- gRPC and gRPC-Web: protobuf, no JSON
  -- local_reply_config answers REST callers with Status JSON (the transcoder turns the
  -- request into gRPC, so its headers no longer tell).
  handle:streamInfo():dynamicMetadata():set("switchboard", "rest", true)
  local raw = headers:get(":path") or ""
  if #raw > LIMITS.max_path_bytes then
    reply(handle, 414, 3, "the request path is longer than " .. LIMITS.max_path_bytes .. " bytes")
    return
  end
  local header_bytes = 0
  for name, value in pairs(headers) do
    if name:sub(1, 1) ~= ":" then header_bytes = header_bytes + #name + #value + 32 end
  end
  if header_bytes > LIMITS.max_header_bytes then
    reply(handle, 431, 3, "the request headers take " .. header_bytes .. " bytes, more than " .. LIMITS.max_header_bytes)
    return
  end
  local path, query = raw:match("^([^?]*)%??(.*)$")
  local verb = headers:get(":method")
  local route, other_verbs = find_route(verb, path)
  if route == nil then
    if #other_verbs > 0 then
      reply(handle, 405, 12, verb .. " is not allowed on " .. path .. "; allowed: " .. table.concat(other_verbs, ", "),
        nil, { allow = table.concat(other_verbs, ", ") })
    end
    return -- not an API path: the router serves it or answers 404
  end
  local violations = {}
  if query ~= "" then check_query(route, query, violations) end
  -- Not content-length: an HTTP/2 request may carry a body without one. body() is nil
  -- at once for a request that ended with its headers.
  local buffer = handle:body()
  if buffer ~= nil then
    local text = buffer and buffer:getBytes(0, buffer:length()) or ""
    if route.b == "" then
      if text:find("[^ \t\r\n]") then
        reply(handle, 400, 3, verb .. " " .. path .. " takes no request body; its fields come from the path and query string")
        return
      end
    elseif text:find("[^ \t\r\n]") then
      local ok, parsed = pcall(parse_json, text)
      if not ok then
        local message = type(parsed) == "table" and parsed.json or tostring(parsed)
        reply(handle, 400, 3, "the request body is not valid JSON: " .. message)
        return
      end
      local target = route.b == "*" and { k = "m", t = route.m } or MESSAGES[route.m][route.b]
      check_value(target, parsed, route.b == "*" and "" or route.b, violations)
    end
  end
  if #violations > 0 then
    local names = {}
    for i, v in ipairs(violations) do names[i] = v.field end
    reply(handle, 400, 3, "unknown field(s) in the request: " .. table.concat(names, ", "), violations)
  end
end

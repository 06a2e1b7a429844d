-- TFTT webhook for Orthanc 1.10+ (Lua 5.3): announce each stable study to TFTT.
--
-- On OnStableStudy it POSTs, to the URL in the environment variable TFTT_WEBHOOK_URL:
--
--   {"study_uid":"<StudyInstanceUID>","series":["<SeriesInstanceUID>",...],"calling_aet":"<AET>"|null,
--    "requester":"orthanc"}
--
-- with the headers
--
--   Content-Type: application/json
--   X-TFTT-Signature: sha256=<hex HMAC-SHA256 of the exact body under TFTT_WEBHOOK_SECRET>
--
-- * series: every series of the study, sorted (RestApiGet('/studies/<id>/series')).
-- * calling_aet: the AE title that sent the study's first instance over DICOM (instance
--   metadata "RemoteAET"); null when it arrived over HTTP (REST or STOW-RS).
-- * Orthanc's Lua has no HMAC, so SHA-256 and HMAC are implemented below in plain Lua 5.3
--   (64-bit integers and bitwise operators) and checked against known vectors at load time.
-- * Orthanc's HttpPost does not retry and returns nil on failure: TFTT reconciles missed
--   announcements from Orthanc's /changes feed. The log never carries UIDs or patient data.
--
-- Configuration (see orthanc.json.example next to this file): "LuaScripts":
-- ["/etc/orthanc/tftt-webhook.lua"], a small "StableAge", and both environment variables in
-- Orthanc's environment, e.g. /etc/systemd/system/orthanc.service.d/tftt.conf:
--
--   [Service]
--   Environment=TFTT_WEBHOOK_URL=http://127.0.0.1:8765/hooks/pacs
--   Environment=TFTT_WEBHOOK_SECRET=<the same secret as TFTT's web.webhook_hmac_secret>
--
-- The receiver checks the signature with tftt.pacs.webhook_signature.verify().

TfttWebhook = {}

local MASK = 0xffffffff

local K = {
   0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
   0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
   0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
   0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
   0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
   0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
   0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
   0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local function rrot(x, n)
   return ((x >> n) | (x << (32 - n))) & MASK
end

-- SHA-256 of a byte string; returns the 32-byte binary digest.
function TfttWebhook.sha256(message)
   local h = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }
   local length = #message
   local padded = message .. "\128" .. string.rep("\0", (55 - length) % 64)
                  .. string.pack(">I8", length * 8)
   local w = {}
   for chunk = 1, #padded, 64 do
      for i = 1, 16 do
         w[i] = string.unpack(">I4", padded, chunk + (i - 1) * 4)
      end
      for i = 17, 64 do
         local x, y = w[i - 15], w[i - 2]
         local s0 = rrot(x, 7) ~ rrot(x, 18) ~ (x >> 3)
         local s1 = rrot(y, 17) ~ rrot(y, 19) ~ (y >> 10)
         w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & MASK
      end
      local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
      for i = 1, 64 do
         local s1 = rrot(e, 6) ~ rrot(e, 11) ~ rrot(e, 25)
         local ch = (e & f) ~ ((~e) & g)
         local t1 = (hh + s1 + ch + K[i] + w[i]) & MASK
         local s0 = rrot(a, 2) ~ rrot(a, 13) ~ rrot(a, 22)
         local maj = (a & b) ~ (a & c) ~ (b & c)
         local t2 = (s0 + maj) & MASK
         hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & MASK, c, b, a, (t1 + t2) & MASK
      end
      h[1] = (h[1] + a) & MASK
      h[2] = (h[2] + b) & MASK
      h[3] = (h[3] + c) & MASK
      h[4] = (h[4] + d) & MASK
      h[5] = (h[5] + e) & MASK
      h[6] = (h[6] + f) & MASK
      h[7] = (h[7] + g) & MASK
      h[8] = (h[8] + hh) & MASK
   end
   return string.pack(">I4I4I4I4I4I4I4I4", h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8])
end

function TfttWebhook.hex(bytes)
   return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

function TfttWebhook.unhex(text)
   return (text:gsub("%x%x", function(pair) return string.char(tonumber(pair, 16)) end))
end

local function xor_with(bytes, value)
   return (bytes:gsub(".", function(c) return string.char(c:byte() ~ value) end))
end

-- HMAC-SHA256 (RFC 2104) of message under key; returns the lower-case hex digest.
function TfttWebhook.hmac_sha256_hex(key, message)
   if #key > 64 then
      key = TfttWebhook.sha256(key)
   end
   key = key .. string.rep("\0", 64 - #key)
   local inner = TfttWebhook.sha256(xor_with(key, 0x36) .. message)
   return TfttWebhook.hex(TfttWebhook.sha256(xor_with(key, 0x5c) .. inner))
end

-- A JSON string literal (UIDs and AE titles are ASCII; control characters are escaped).
function TfttWebhook.json_string(value)
   local escapes = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r',
                     ['\t'] = '\\t' }
   local escaped = tostring(value):gsub('[%c"\\]', function(c)
      return escapes[c] or string.format("\\u%04x", c:byte())
   end)
   return '"' .. escaped .. '"'
end

-- The exact body that is signed and sent.
function TfttWebhook.body(study_uid, series, calling_aet)
   local quoted = {}
   for i, uid in ipairs(series) do
      quoted[i] = TfttWebhook.json_string(uid)
   end
   local aet = "null"
   if calling_aet ~= nil then
      aet = TfttWebhook.json_string(calling_aet)
   end
   return '{"study_uid":' .. TfttWebhook.json_string(study_uid)
      .. ',"series":[' .. table.concat(quoted, ",") .. ']'
      .. ',"calling_aet":' .. aet
      .. ',"requester":"orthanc"}'
end

local function self_test()
   local checks = {
      { TfttWebhook.hex(TfttWebhook.sha256("")),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
      { TfttWebhook.hex(TfttWebhook.sha256("abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
      { TfttWebhook.hex(TfttWebhook.sha256(string.rep("a", 1000))),
        "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3" },
      { TfttWebhook.hmac_sha256_hex(string.rep("\11", 20), "Hi There"),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
      { TfttWebhook.hmac_sha256_hex(string.rep("\170", 131),
                                    "Test Using Larger Than Block-Size Key - Hash Key First"),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
   }
   for _, check in ipairs(checks) do
      if check[1] ~= check[2] then
         return false
      end
   end
   return true
end

local URL = os.getenv("TFTT_WEBHOOK_URL")
local SECRET = os.getenv("TFTT_WEBHOOK_SECRET")
TfttWebhook.ready = false

if not self_test() then
   print("tftt-webhook: SHA-256 self-test FAILED; studies will not be announced")
elseif URL == nil or URL == "" or SECRET == nil or SECRET == "" then
   print("tftt-webhook: TFTT_WEBHOOK_URL or TFTT_WEBHOOK_SECRET is not set; "
         .. "studies will not be announced")
else
   TfttWebhook.ready = true
   print("tftt-webhook: ready")
end

local function calling_aet_of(studyId)
   local instances = ParseJson(RestApiGet("/studies/" .. studyId .. "/instances"))
   if #instances == 0 then
      return nil
   end
   local ok, value = pcall(RestApiGet, "/instances/" .. instances[1]["ID"] .. "/metadata/RemoteAET")
   if ok and value ~= nil and value ~= "" then
      return value
   end
   return nil
end

function OnStableStudy(studyId, tags, metadata)
   if not TfttWebhook.ready then
      print("tftt-webhook: not configured; Orthanc study " .. studyId .. " not announced")
      return
   end
   local series = {}
   for _, item in ipairs(ParseJson(RestApiGet("/studies/" .. studyId .. "/series"))) do
      table.insert(series, item["MainDicomTags"]["SeriesInstanceUID"])
   end
   table.sort(series)
   local body = TfttWebhook.body(tags["StudyInstanceUID"], series, calling_aet_of(studyId))
   local headers = {
      ["Content-Type"] = "application/json",
      ["X-TFTT-Signature"] = "sha256=" .. TfttWebhook.hmac_sha256_hex(SECRET, body),
   }
   local ok, answer = pcall(HttpPost, URL, body, headers)
   if ok and answer ~= nil then
      print("tftt-webhook: announced Orthanc study " .. studyId)
   else
      print("tftt-webhook: announcing Orthanc study " .. studyId
            .. " FAILED; TFTT reconciles from /changes")
   end
end

-- OpenDKIM (rsa-sha256) setup policy, rendered by mailbridge.
-- Mail from this host's users and networks is signed by the key(s) of its
-- From: domain; mail forwarded from outside is signed by the key(s) of the
-- forwarding domain, so Gmail sees a valid signature of that domain next
-- to the SRS envelope sender. Everything else is only verified.
-- The signing table: domain -> names of its active keys in KeyTable.
-- OpenDKIM's own SigningTable picks keys by the From: address only, which
-- cannot sign forwarded mail for the domain that forwards it.
local signing_keys = {
  ["example.net"] = { "s2026a._domainkey.example.net" },
}
local forwarded = {
  ["escalations@example.net"] = true,
  ["postmaster@example.net"] = true,
}
local fallback = "example.net"

local function signer_of(domain)
  if signing_keys[domain] then
    return domain
  end
  return fallback
end

local function sign_as(domain)
  for _, key in ipairs(signing_keys[domain]) do
    odkim.sign(ctx, key)
  end
end

local from = odkim.get_fromdomain(ctx)
if from ~= nil then
  from = string.lower(from)
end
local internal = odkim.internal_ip(ctx) == 1
  or odkim.get_mtasymbol(ctx, "{auth_authen}") ~= nil
if internal and from ~= nil and signing_keys[from] then
  sign_as(from)
  return nil
end

for _, rcpt in ipairs(odkim.get_rcptarray(ctx)) do
  local address = string.lower(string.gsub(rcpt, "[<>]", ""))
  local domain = string.match(address, "@([^@]+)$")
  if domain ~= nil and (forwarded[address] or forwarded["@" .. domain]) then
    local signer = signer_of(domain)
    if signer ~= nil then
      sign_as(signer)
      return nil
    end
  end
end

odkim.verify(ctx)
return nil

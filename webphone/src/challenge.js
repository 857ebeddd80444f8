// JsSIP keeps only the last WWW-Authenticate (or Proxy-Authenticate) header
// of a 401/407 and knows only MD5 digest. The node offers MD5 first and then
// SHA-256 (RFC 8760), so without this JsSIP would keep SHA-256 and give up
// ("Authentication Error"). Here a later challenge does not replace an MD5
// one already read, so JsSIP answers the challenge it can.

import SIPMessage from "jssip/lib/SIPMessage.js";

const CHALLENGES = { "www-authenticate": "WWW-Authenticate", "proxy-authenticate": "Proxy-Authenticate" };
const md5 = (raw) => !/algorithm\s*=\s*"?(?!md5\b)[\w-]+/i.test(raw);

const proto = SIPMessage.IncomingResponse.prototype;
const setHeader = proto.setHeader;

proto.setHeader = function keepMd5Challenge(name, value) {
  const key = CHALLENGES[String(name).toLowerCase()];
  const kept = key ? this.headers?.[key]?.[0]?.raw : undefined;
  if (kept !== undefined && md5(kept) && !md5(value)) return;
  setHeader.call(this, name, value);
};

// The agent's desk: login, state, the call panel with its screen pop,
// wrap-up and the calls of the day. State lives in `desk`; render() draws
// the page from it, so every event handler only changes `desk` and renders.

import { Api, ApiError } from "./api.js";
import { Cti } from "./cti.js";
import { label, language, setLanguage, t } from "./i18n.js";
import { Phone, inboundAudio, outboundAudio } from "./phone.js";
import { draw } from "./render.js";
import { Ringtone } from "./ringtone.js";

// Used when the API does not list the tenant's reasons (the config's default).
const DEFAULT_REASONS = ["break", "lunch", "training", "meeting"];
// The tenant's disposition codes come with the agent (GET /api/agents/{id}); these
// until then, or when the page runs without the API.
const DEFAULT_DISPOSITIONS = ["resolved", "follow-up", "escalated", "sale", "wrong-number", "other"];
const OFFER_MATCH_MS = 30000; // a CTI offer and a SIP INVITE this close belong together
const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];

const $ = (id) => document.getElementById(id);
const api = new Api();
const ringtone = new Ringtone();

const desk = {
  ext: null,
  name: "",
  tenant: "",
  sipOnly: false,
  reasons: DEFAULT_REASONS,
  dispositions: null, // the tenant's codes, once the API said them
  crmUrl: "", // a template such as https://crm.example/search?phone={number}
  status: null,
  reason: "",
  statusSince: Date.now(),
  wrapupUntil: null, // local ms
  sip: "registering",
  lost: false, // the SIP socket dropped and is not registered again yet
  ctiUp: true,
  microphone: "ok", // ok | blocked | missing
  call: null, // {session, pop, started, answered, held, muted, keypad}
  offer: null, // the latest call.offered for me, with .receivedAt
  wrapup: null, // {entry} awaiting a disposition
  history: [],
  queues: {}, // name -> the last queue.stats event, with .receivedAt
  notice: "", // a passing message (transfer done, state refused, ...)
};

let phone = null;
let cti = null;

function render() {
  draw(desk);
}

// ---------------------------------------------------------------------------
// Login and logout

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  ringtone.unlock(); // the click is the gesture that lets the page make sound
  const username = $("username").value.trim();
  const password = $("password").value;
  $("login-error").textContent = t("loggingIn");
  $("login-button").disabled = true;
  try {
    await logIn(username, password);
    $("login-error").textContent = "";
  } catch (err) {
    $("login-error").textContent = err.status === 401 ? t("badLogin") : t("loginFailed", { message: err.message });
  } finally {
    $("login-button").disabled = false;
  }
});

async function logIn(username, password) {
  let session = null;
  try {
    session = await api.login(username, password);
  } catch (err) {
    // A node without the API (404): the phone alone, with the SIP credentials.
    if (!(err instanceof ApiError) || (err.status !== 404 && err.status !== 405)) throw err;
  }
  desk.sipOnly = session === null;
  if (session && !session.agent) {
    api.forget();
    throw new ApiError(403, "not_agent", t("notAgent"));
  }
  desk.ext = session ? session.agent : username;
  desk.tenant = session?.tenant ?? "";
  desk.name = desk.ext;
  if (!desk.sipOnly) {
    const view = await api.agent(desk.ext);
    desk.name = view.name || desk.ext;
    setStatus(view.status, view.reason);
    if (Array.isArray(view.not_ready_reasons) && view.not_ready_reasons.length) {
      desk.reasons = view.not_ready_reasons;
    }
    if (Array.isArray(view.dispositions) && view.dispositions.length) {
      desk.dispositions = view.dispositions;
    }
    desk.crmUrl = view.crm_url || "";
  }
  phone = new Phone({
    ext: desk.ext,
    password,
    name: desk.name,
    onStatus: onSipStatus,
    onIncoming,
  });
  phone.microphone = $("microphone").value;
  phone.start();
  if (!desk.sipOnly) {
    cti = new Cti(api, { onEvent: onCti, onStatus: (up) => ((desk.ctiUp = up), render()) });
    cti.start();
  }
  $("login-view").hidden = true;
  $("desk-view").hidden = false;
  fillReasons();
  fillDispositions();
  await checkMicrophone();
  await listDevices();
  render();
}

async function logOut() {
  if (!desk.sipOnly) {
    try {
      await api.setState(desk.ext, "logged-out");
    } catch {
      /* leaving anyway */
    }
  }
  desk.call?.session.terminate();
  phone?.stop();
  cti?.stop();
  api.forget();
  phone = cti = null;
  ringtone.stop();
  Object.assign(desk, { ext: null, lost: false, queues: {}, status: null, call: null, offer: null, wrapup: null, notice: "" });
  $("desk-view").hidden = true;
  $("login-view").hidden = false;
  $("password").value = "";
  render();
}

// ---------------------------------------------------------------------------
// Agent state

function setStatus(status, reason) {
  if (status !== desk.status || reason !== desk.reason) desk.statusSince = Date.now();
  desk.status = status;
  desk.reason = reason || "";
  if (status !== "wrap-up") desk.wrapupUntil = null;
}

async function changeState(state, reason) {
  desk.notice = "";
  try {
    const view = await api.setState(desk.ext, state, reason);
    setStatus(view.status, view.reason);
  } catch (err) {
    desk.notice = t("stateFailed", { message: err.message });
  }
  render();
}

$("btn-available").addEventListener("click", () => changeState("available"));
$("btn-not-ready").addEventListener("click", () => changeState("not-ready", $("reason").value));
$("btn-logout").addEventListener("click", logOut);

function fillReasons() {
  const select = $("reason");
  const chosen = select.value;
  select.replaceChildren(
    ...desk.reasons.map((r) => new Option(label("reason", r), r, false, r === chosen)),
  );
}

// ---------------------------------------------------------------------------
// The CTI feed

function onCti(event) {
  const mine = event.agent === desk.ext || (Array.isArray(event.agents) && event.agents.includes(desk.ext));
  switch (event.type) {
    case "agent.state":
      if (event.agent === desk.ext) setStatus(event.status, event.reason);
      if (event.agent === desk.ext && event.status === "wrap-up" && typeof event.until === "number"
          && typeof event.at === "number") {
        desk.wrapupUntil = Date.now() + (event.until - event.at) * 1000; // (the node's clock is not ours)
      }
      break;
    case "agent.wrapup":
      if (event.agent === desk.ext && typeof event.until === "number" && typeof event.at === "number") {
        desk.wrapupUntil = Date.now() + (event.until - event.at) * 1000;
      }
      break;
    case "state.ok":
      if (event.agent === desk.ext) setStatus(event.status, event.reason);
      break;
    case "call.offered":
      if (!mine) break;
      desk.offer = { ...event, receivedAt: Date.now() };
      if (desk.call && !desk.call.pop && !desk.call.answered) desk.call.pop = takeOffer(desk.call.callId);
      break;
    case "offer.ended":
      if (mine && desk.offer && desk.offer.call_id === event.call_id) desk.offer = null;
      break;
    case "queue.stats":
      desk.queues[event.queue] = { ...event, receivedAt: Date.now() };
      break;
    case "error":
      desk.notice = event.message || event.error;
      break;
    default:
      return; // queue stats and the rest: nothing on this page
  }
  render();
}

// The offer (screen pop) of an incoming call: the one whose call_id the node put in
// the INVITE's X-Switch-Call header; without it (another node, a direct call), the
// latest offer within OFFER_MATCH_MS.
function takeOffer(callId) {
  const offer = desk.offer;
  if (!offer) return null;
  if (callId) {
    if (String(offer.call_id) !== callId) return null;
  } else if (Date.now() - offer.receivedAt > OFFER_MATCH_MS) {
    return null;
  }
  desk.offer = null;
  return offer;
}

// ---------------------------------------------------------------------------
// The phone

function onSipStatus(status, detail) {
  desk.sip = status;
  // Lost from the drop until registered again (JsSIP's reconnect attempts between).
  if (status === "disconnected") desk.lost = true;
  if (status === "registered") desk.lost = false;
  if (status === "registrationFailed") desk.sipDetail = detail;
  render();
}

function onIncoming(session, request) {
  if (desk.call) {
    session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
    return;
  }
  const identity = session.remote_identity;
  const callId = request?.getHeader?.("X-Switch-Call") || "";
  const call = {
    session,
    callId,
    pop: takeOffer(callId),
    sipNumber: identity?.uri?.user || "",
    sipName: identity?.display_name || "",
    started: Date.now(),
    answered: null,
    held: false,
    muted: false,
    keypad: false,
  };
  desk.call = call;
  ringtone.start();
  session.on("peerconnection", (e) => attachAudio(e.peerconnection));
  session.on("accepted", () => {
    call.answered = Date.now();
    ringtone.stop();
    render();
  });
  session.on("confirmed", () => {
    if (session.connection) attachAudio(session.connection);
  });
  session.on("hold", () => ((call.held = session.isOnHold().local), render()));
  session.on("unhold", () => ((call.held = session.isOnHold().local), render()));
  session.on("muted", () => ((call.muted = true), render()));
  session.on("unmuted", () => ((call.muted = false), render()));
  session.on("ended", () => callEnded(call));
  session.on("failed", () => callEnded(call));
  render();
}

function attachAudio(pc) {
  const audio = $("remote-audio");
  const show = () => {
    const tracks = pc.getReceivers().map((r) => r.track).filter(Boolean);
    if (tracks.length) audio.srcObject = new MediaStream(tracks);
  };
  pc.addEventListener("track", show);
  show();
}

function callEnded(call) {
  if (desk.call !== call) return;
  ringtone.stop();
  desk.call = null;
  const pop = call.pop || {};
  const entry = {
    at: call.started,
    number: pop.number || call.sipNumber,
    name: pop.name || call.sipName,
    queue: pop.queue || "",
    callId: pop.call_id ?? null,
    seconds: call.answered ? Math.round((Date.now() - call.answered) / 1000) : 0,
    answered: Boolean(call.answered),
    disposition: "",
  };
  desk.history.unshift(entry);
  if (entry.answered) {
    desk.wrapup = { entry };
    $("disposition").value = "";
    $("notes").value = "";
    $("wrapup-result").textContent = "";
  } else {
    desk.notice = t("missed", { caller: entry.number || t("unknownCaller") });
  }
  render();
}

function answer() {
  const call = desk.call;
  if (!call || call.answered || call.session.direction !== "incoming") return;
  if (call.session.status !== call.session.C.STATUS_WAITING_FOR_ANSWER) return;
  ringtone.stop();
  call.session.answer(phone.answerOptions());
  render();
}

function decline() {
  const call = desk.call;
  if (!call || call.answered) return;
  call.session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
}

function hangUp() {
  desk.call?.session.terminate();
}

function toggleHold() {
  const call = desk.call;
  if (!call?.answered) return;
  if (call.session.isOnHold().local) call.session.unhold();
  else call.session.hold();
}

function toggleMute() {
  const call = desk.call;
  if (!call?.answered) return;
  if (call.session.isMuted().audio) call.session.unmute({ audio: true });
  else call.session.mute({ audio: true });
}

function toggleKeypad() {
  if (!desk.call?.answered) return;
  desk.call.keypad = !desk.call.keypad;
  render();
}

function dtmf(key) {
  const call = desk.call;
  if (!call?.answered) return;
  // In the media (RFC 4733, the browser's RTCDTMFSender): it survives the
  // node's transcoding and reaches a trunk as telephone-events.
  call.session.sendDTMF(key, { transportType: "RFC2833" });
}

function transfer(text) {
  const call = desk.call;
  if (!call?.answered || !text.trim()) return;
  const target = text.trim();
  call.session.refer(phone.target(target), {
    eventHandlers: {
      accepted: () => ((desk.notice = t("transferred", { target })), render()),
      failed: () => ((desk.notice = t("transferFailed", { target })), render()),
    },
  });
}

$("btn-answer").addEventListener("click", answer);
$("btn-decline").addEventListener("click", decline);
$("btn-hangup").addEventListener("click", hangUp);
$("btn-hold").addEventListener("click", toggleHold);
$("btn-mute").addEventListener("click", toggleMute);
$("btn-keypad").addEventListener("click", toggleKeypad);
$("transfer-form").addEventListener("submit", (e) => {
  e.preventDefault();
  transfer($("transfer-to").value);
});

const keypad = $("keypad");
for (const key of KEYS) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = key;
  button.setAttribute("aria-label", t("digit", { key }));
  button.addEventListener("click", () => dtmf(key));
  keypad.append(button);
}

// ---------------------------------------------------------------------------
// Wrap-up

$("wrapup-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const wrapup = desk.wrapup;
  if (!wrapup) return;
  const disposition = $("disposition").value;
  const notes = $("notes").value;
  const result = $("wrapup-result");
  const keep = () => {
    wrapup.entry.disposition = disposition;
    desk.wrapup = null;
  };
  if (desk.sipOnly || wrapup.entry.callId === null) {
    keep();
    desk.notice = t("savedLocally", { message: desk.sipOnly ? "SIP only" : "no call id" });
    render();
    return;
  }
  try {
    await api.saveDisposition(wrapup.entry.callId, disposition, notes);
    keep();
    desk.notice = t("saved");
  } catch (err) {
    if (err.status === 404 || err.status === 405) {
      keep();
      desk.notice = t("savedLocally", { message: err.message });
    } else {
      result.textContent = t("saveFailed", { message: err.message });
      return;
    }
  }
  render();
});

function fillDispositions() {
  const select = $("disposition");
  const chosen = select.value;
  select.replaceChildren(
    new Option(t("chooseDisposition"), ""),
    ...(desk.dispositions || DEFAULT_DISPOSITIONS).map((d) => new Option(label("disp", d), d, false, d === chosen)),
  );
}

// ---------------------------------------------------------------------------
// Microphone, speaker, presence

async function checkMicrophone() {
  let state = "ok";
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    for (const track of stream.getTracks()) track.stop();
  } catch (err) {
    state = err?.name === "NotFoundError" || err?.name === "OverconstrainedError" ? "missing" : "blocked";
  }
  if (state !== desk.microphone || state !== "ok") {
    // The ACD sets an agent without a microphone not ready, and back when it returns.
    cti?.send({ type: "presence", microphone: state === "ok" });
  }
  desk.microphone = state;
  render();
}

async function listDevices() {
  if (!navigator.mediaDevices?.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind) => {
    const chosen = select.value;
    const options = devices
      .filter((d) => d.kind === kind)
      .map((d, i) => new Option(d.label || `${kind} ${i + 1}`, d.deviceId, false, d.deviceId === chosen));
    select.replaceChildren(new Option(t("defaultDevice"), ""), ...options.filter((o) => o.value !== "default" && o.value !== ""));
    select.value = chosen && [...select.options].some((o) => o.value === chosen) ? chosen : "";
  };
  fill($("microphone"), "audioinput");
  fill($("speaker"), "audiooutput");
  $("speaker").disabled = typeof $("remote-audio").setSinkId !== "function";
}

$("microphone").addEventListener("change", () => {
  if (phone) phone.microphone = $("microphone").value;
});
$("speaker").addEventListener("change", () => {
  const id = $("speaker").value;
  $("remote-audio").setSinkId?.(id).catch(() => {});
  ringtone.setSink(id);
});
navigator.mediaDevices?.addEventListener?.("devicechange", async () => {
  await listDevices();
  if (desk.ext) await checkMicrophone();
});
navigator.permissions
  ?.query({ name: "microphone" })
  .then((status) => {
    status.onchange = () => desk.ext && checkMicrophone();
  })
  .catch(() => {});

// ---------------------------------------------------------------------------
// Keyboard shortcuts (not while typing in a field)

document.addEventListener("keydown", (e) => {
  if (!desk.ext || e.ctrlKey || e.metaKey || e.altKey) return;
  const tag = e.target?.tagName;
  if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
  const key = e.key.toLowerCase();
  const actions = { a: answer, d: decline, h: hangUp, o: toggleHold, m: toggleMute, k: toggleKeypad };
  if (actions[key]) {
    e.preventDefault();
    actions[key]();
  } else if (key === "t" && desk.call?.answered) {
    e.preventDefault();
    $("transfer-to").focus();
  } else if (desk.call?.keypad && KEYS.includes(e.key)) {
    dtmf(e.key);
  }
});

// ---------------------------------------------------------------------------
// Language, and the page's start

function applyLanguage(lang) {
  setLanguage(lang);
  localStorage.setItem("webphone.language", lang);
  $("language").value = language();
  fillReasons();
  fillDispositions();
  for (const b of keypad.children) b.setAttribute("aria-label", t("digit", { key: b.textContent }));
  render();
}

$("language").addEventListener("change", () => applyLanguage($("language").value));
const saved = localStorage.getItem("webphone.language");
applyLanguage(saved || (navigator.language?.startsWith("zh") ? "zh" : "en"));
setInterval(() => desk.ext && render(), 1000); // the timers

// For diagnostics (and the browser tests): the current call's audio figures.
window.webphone = {
  inboundAudio: () => inboundAudio(desk.call?.session),
  outboundAudio: () => outboundAudio(desk.call?.session),
  session: () => desk.call?.session ?? null,
  // The call's node id (X-Switch-Call) and the offer its screen pop came from.
  popMatch: () => (desk.call ? { callId: desk.call.callId, offer: desk.call.pop?.call_id ?? null } : null),
  get registered() {
    return Boolean(phone?.registered);
  },
  get ringing() {
    return ringtone.ringing;
  },
};

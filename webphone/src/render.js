// Draws the desk (main.js's `desk` object) into the page: the header, the
// banner, state, the call panel with its screen pop, wrap-up, the agent's
// queues and calls of the day. It only reads `desk`; it changes nothing.

import { label, language, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);

export function clock(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, "0");
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function crmLink(pop, number, desk) {
  const template = pop.crm_url || pop.variables?.crm_url || pop.ivr?.variables?.crm_url || desk.crmUrl;
  if (!template) return null;
  const url = template.replace(/\{number\}/g, encodeURIComponent(number || ""));
  if (!/^https?:\/\//i.test(url)) return null; // never a javascript: link
  const a = document.createElement("a");
  a.href = url;
  a.target = "_blank";
  a.rel = "noopener";
  a.textContent = t("openCrm");
  return a;
}

function renderPop(call, desk) {
  const pop = call.pop || {};
  const number = pop.number || call.sipNumber;
  const name = pop.name || call.sipName;
  $("pop-caller").textContent = [number, name && name !== number ? name : ""].filter(Boolean).join(" · ") || t("unknownCaller");
  $("pop-did").textContent = [pop.did, pop.line].filter(Boolean).join(" · ") || "–";
  $("pop-queue").textContent = pop.queue || "–";
  const waited = typeof pop.wait === "number" ? pop.wait + (Date.now() - pop.receivedAt) / 1000 : null;
  $("pop-wait").textContent = waited === null ? "–" : clock(call.answered ? (call.answered - pop.receivedAt) / 1000 + pop.wait : waited);
  const ivr = pop.ivr || {};
  const choices = [];
  if (ivr.digits) choices.push(Array.isArray(ivr.digits) ? ivr.digits.join(" ") : String(ivr.digits));
  const vars = { ...(ivr.variables || {}), ...(pop.variables || {}) };
  delete vars.crm_url;
  $("pop-ivr").textContent = choices.join(" · ") || "–";
  const crm = $("pop-crm");
  const facts = Object.entries(vars)
    .filter(([, v]) => v !== null && v !== "" && typeof v !== "object")
    .map(([k, v]) => `${k}: ${v}`);
  crm.replaceChildren(document.createTextNode(facts.join(" · ") || "–"));
  const link = crmLink(pop, number, desk);
  if (link) crm.append(" ", link);
}

export function draw(desk) {
  const loggedIn = Boolean(desk.ext);
  const call = desk.call;
  $("agent-name").textContent = loggedIn ? `${desk.name} (${desk.ext})` : "";

  // The header: agent state and the phone's registration.
  const pill = $("agent-state");
  pill.hidden = !loggedIn || desk.sipOnly || !desk.status;
  if (desk.status) {
    let text = label("state", desk.status);
    if (desk.reason && desk.status === "not-ready") text += ` – ${label("reason", desk.reason)}`;
    pill.textContent = text;
    pill.dataset.state = desk.status;
  }
  const sip = $("sip-status");
  sip.hidden = !loggedIn;
  const registered = desk.sip === "registered";
  sip.textContent = registered ? t("registered") : desk.sip === "unregistered" ? t("unregistered") : t("registering");
  sip.dataset.ok = String(registered);

  // The banner: what stops calls reaching the agent, most urgent first.
  let banner = "";
  if (loggedIn) {
    if (desk.lost) banner = t("connectionLost");
    else if (desk.sip === "registrationFailed") banner = t("registrationFailed", { cause: desk.sipDetail || "" });
    else if (desk.microphone === "blocked") banner = t("micBlocked");
    else if (desk.microphone === "missing") banner = t("micMissing");
    else if (!desk.ctiUp) banner = t("ctiLost");
  }
  $("banner").textContent = banner;
  $("banner").hidden = !banner;

  // State control.
  $("state-panel").hidden = desk.sipOnly;
  const since = (Date.now() - desk.statusSince) / 1000;
  let line = desk.status ? t("sinceFor", { state: label("state", desk.status), time: clock(since) }) : "";
  if (desk.status === "wrap-up" && desk.wrapupUntil) {
    line += ` (${t("wrapupLeft", { seconds: Math.max(0, Math.ceil((desk.wrapupUntil - Date.now()) / 1000)) })})`;
  }
  $("state-line").textContent = [line, desk.notice].filter(Boolean).join(" · ");
  $("btn-available").setAttribute("aria-pressed", String(desk.status === "available"));
  $("btn-not-ready").setAttribute("aria-pressed", String(desk.status === "not-ready"));
  $("idle-panel").querySelector("p").textContent = desk.sipOnly && loggedIn ? `${t("waiting")} ${t("sipOnly")}` : t("waiting");

  // The call.
  $("idle-panel").hidden = Boolean(call) || Boolean(desk.wrapup);
  $("call-panel").hidden = !call;
  if (call) {
    const ringing = !call.answered;
    const connecting = ringing && call.session.status !== call.session.C.STATUS_WAITING_FOR_ANSWER;
    $("call-title").textContent = ringing ? (connecting ? t("connecting") : t("incoming")) : call.held ? t("onHold") : t("onCall");
    $("call-panel").dataset.phase = ringing ? "ringing" : call.held ? "held" : "talking";
    renderPop(call, desk);
    $("call-timer").textContent = call.answered ? clock((Date.now() - call.answered) / 1000) : "";
    $("btn-answer").hidden = !ringing;
    $("btn-answer").disabled = connecting;
    $("btn-decline").hidden = !ringing;
    for (const id of ["btn-hold", "btn-mute", "btn-keypad", "btn-hangup"]) $(id).hidden = ringing;
    $("btn-hold").textContent = call.held ? t("resume") : t("hold");
    $("btn-hold").setAttribute("aria-pressed", String(call.held));
    $("btn-mute").textContent = call.muted ? t("unmute") : t("mute");
    $("btn-mute").setAttribute("aria-pressed", String(call.muted));
    $("btn-keypad").setAttribute("aria-expanded", String(call.keypad));
    $("keypad").hidden = !call.keypad || ringing;
    $("transfer-form").hidden = ringing;
  }

  // Wrap-up.
  $("wrapup-panel").hidden = !desk.wrapup;
  if (desk.wrapup) {
    const e = desk.wrapup.entry;
    $("wrapup-call").textContent = t("wrapupFor", { caller: e.number || t("unknownCaller"), duration: clock(e.seconds) });
  }

  // The agent's queues, as the CTI feed last told them.
  const queues = Object.values(desk.queues).sort((a, b) => a.queue.localeCompare(b.queue));
  $("queues-panel").hidden = !loggedIn || queues.length === 0;
  $("queues").querySelector("tbody").replaceChildren(
    ...queues.map((q) => {
      const tr = document.createElement("tr");
      tr.dataset.queue = q.queue;
      const longest = q.waiting ? q.longest_wait + (Date.now() - q.receivedAt) / 1000 : 0;
      for (const text of [q.queue, String(q.waiting ?? 0), q.waiting ? clock(longest) : "–", String(q.available ?? "–")]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      if (q.waiting) tr.className = "busy";
      return tr;
    }),
  );

  // Calls of the day.
  const rows = desk.history.map((e) => {
    const tr = document.createElement("tr");
    const when = new Date(e.at).toLocaleTimeString(language() === "zh" ? "zh-CN" : "en-GB", { hour: "2-digit", minute: "2-digit" });
    const cells = [when, [e.number, e.name].filter(Boolean).join(" · ") || t("unknownCaller"), e.queue || "–",
      e.answered ? clock(e.seconds) : "–", e.disposition ? label("disp", e.disposition) : ""];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    if (!e.answered) tr.className = "missed";
    return tr;
  });
  $("history").querySelector("tbody").replaceChildren(...rows);
  $("history-empty").hidden = rows.length > 0;
}

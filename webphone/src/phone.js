// The agent's SIP phone: JsSIP registered over the node's WebSocket (/sip),
// calls as WebRTC sessions. JsSIP reconnects a dropped socket by itself
// (1 s, doubling up to 10 s) and registers again once connected; this class
// reports each step through onStatus so that the page can say so.

import JsSIP from "jssip";
import "./challenge.js";

export class Phone {
  /**
   * @param {{ext: string, password: string, name?: string,
   *          onStatus: (status: string, detail?: string) => void,
   *          onIncoming: (session: object) => void}} options
   */
  constructor({ ext, password, name, onStatus, onIncoming }) {
    this.ext = ext;
    this.password = password;
    this.name = name;
    this.onStatus = onStatus;
    this.onIncoming = onIncoming;
    this.ua = null;
    this.microphone = ""; // deviceId; "" = the browser's default
  }

  start() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new JsSIP.WebSocketInterface(`${scheme}://${location.host}/sip`);
    this.ua = new JsSIP.UA({
      sockets: [socket],
      uri: `sip:${this.ext}@${location.hostname}`,
      password: this.password,
      display_name: this.name || undefined,
      register: true,
      register_expires: 300,
      user_agent: "switch-webphone",
      connection_recovery_min_interval: 1,
      connection_recovery_max_interval: 10,
    });
    const ua = this.ua;
    ua.on("connecting", () => this.onStatus("connecting"));
    ua.on("connected", () => this.onStatus("connected"));
    ua.on("disconnected", () => this.onStatus("disconnected"));
    ua.on("registered", () => this.onStatus("registered"));
    ua.on("unregistered", () => this.onStatus("unregistered"));
    ua.on("registrationFailed", (e) => this.onStatus("registrationFailed", e.cause));
    ua.on("newRTCSession", (e) => {
      if (e.originator === "remote") this.onIncoming(e.session);
    });
    ua.start();
  }

  stop() {
    if (!this.ua) return;
    const ua = this.ua;
    this.ua = null;
    ua.removeAllListeners();
    ua.stop(); // unregisters, ends calls, closes the socket
  }

  get registered() {
    return Boolean(this.ua?.isRegistered());
  }

  /** Options for session.answer(): the chosen microphone, no video. */
  answerOptions() {
    const audio = this.microphone ? { deviceId: { exact: this.microphone } } : true;
    return {
      mediaConstraints: { audio, video: false },
      pcConfig: { iceServers: [] },
    };
  }

  /** A SIP URI for what the agent typed in Transfer: an extension, a queue or a number. */
  target(text) {
    const trimmed = text.trim();
    if (/^sips?:/i.test(trimmed)) return trimmed;
    return `sip:${trimmed.replace(/[\s().-]/g, "")}@${location.hostname}`;
  }
}

/** Inbound audio of a session's peer connection: bytes, packets and energy so far. */
export async function inboundAudio(session) {
  const pc = session?.connection;
  if (!pc) return null;
  const stats = await pc.getStats();
  for (const report of stats.values()) {
    if (report.type === "inbound-rtp" && report.kind === "audio") {
      return {
        bytesReceived: report.bytesReceived ?? 0,
        packetsReceived: report.packetsReceived ?? 0,
        totalAudioEnergy: report.totalAudioEnergy ?? 0,
        audioLevel: report.audioLevel ?? 0,
      };
    }
  }
  return null;
}

/** Outbound audio of a session's peer connection: bytes and packets so far. */
export async function outboundAudio(session) {
  const pc = session?.connection;
  if (!pc) return null;
  const stats = await pc.getStats();
  for (const report of stats.values()) {
    if (report.type === "outbound-rtp" && report.kind === "audio") {
      return { bytesSent: report.bytesSent ?? 0, packetsSent: report.packetsSent ?? 0 };
    }
  }
  return null;
}
